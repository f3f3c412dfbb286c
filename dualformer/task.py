"""`video_classification`: the classification task on video clips (DualFormer recipes).

Differs from `classification` only where the official mmaction recipes do:
- data: frames sampled as clip_len x interval (or uniformly, SSv2) from the JPEG frames of
  the video builders, mmaction's train augmentation; evaluation on clips x crops views;
- loss: plain softmax cross-entropy on hard labels (no mixup, no smoothing);
- evaluation: softmax of every view, averaged per video (`average_clips='prob'`), then
  top-1 / top-5 and mean class accuracy;
- prediction on one's own files (common.predict): a video file decoded with OpenCV into the
  same test views, scored by the same view averaging;
- optimizer: the official parameter groups and per-epoch cosine, declared in the configs
  (`optim.groups`, `schedule.name = "cosine_by_epoch"`).
"""
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from common.classification import ClassificationTask, PredictElement
from common.tasks import register_task
from dualformer import sampling
from dualformer.video_transforms import TestViewsTransform, TrainClipTransform, decode_frames


def clip_indices(d, num_frames: int, num_clips: int, rng=None) -> np.ndarray:
    """[num_clips, clip_len] frame indices under the config's sampler."""
    if d.frame_uniform:
        return sampling.uniform_clip(num_frames, int(d.clip_len), rng=rng)
    return sampling.dense_clips(num_frames, int(d.clip_len), int(d.frame_interval), num_clips, rng=rng)


def average_view_probs(logits: jnp.ndarray, num_views: int) -> jnp.ndarray:
    """[B * V, K] view logits -> [B, K] mean of the views' softmax."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return probs.reshape(-1, num_views, probs.shape[-1]).mean(axis=1)


def mean_class_accuracy(class_correct, class_labels, class_preds) -> float:
    """mmaction mean_class_accuracy: recall averaged over every class that occurs as a
    label or as a prediction (a class only ever predicted counts as 0)."""
    present = (np.asarray(class_labels) + np.asarray(class_preds)) > 0
    recall = np.asarray(class_correct) / np.maximum(np.asarray(class_labels), 1)
    return float(recall[present].mean()) if present.any() else 0.0


@register_task("video_classification")
class VideoClassificationTask(ClassificationTask):

    def dummy_input(self, batch: int = 1) -> jnp.ndarray:
        d = self.config.data
        return jnp.zeros((batch, int(d.clip_len), int(d.image_size), int(d.image_size), 3), jnp.float32)

    def num_views(self) -> int:
        d = self.config.data
        return (1 if d.frame_uniform else int(d.test_clips)) * int(d.test_crops)

    # ------------------------------------------------------------------ data
    def train_element(self, record: Mapping, rng: np.random.Generator) -> dict:
        if not hasattr(self, "_train_tf"):
            self._train_tf = TrainClipTransform(self.config.data)
        inds = clip_indices(self.config.data, int(record["num_frames"]), 1, rng)[0]
        clip = self._train_tf(decode_frames(record["frames"], inds), rng)
        return {"image": clip, "label": np.int32(record["label"])}

    def test_views(self, num_frames: int, frames_at) -> tuple[np.ndarray, np.ndarray]:
        """(float32 [clips * crops, T, size, size, 3] views, [clips, T] frame indices) of a video
        of `num_frames` frames; `frames_at(indices)` returns those frames as RGB PIL images."""
        if not hasattr(self, "_eval_tf"):
            self._eval_tf = TestViewsTransform(self.config.data)
        inds = clip_indices(self.config.data, num_frames, int(self.config.data.test_clips))
        return self._eval_tf([frames_at(row) for row in inds]), inds

    def eval_element(self, record: Mapping) -> dict:
        views, _ = self.test_views(int(record["num_frames"]), lambda inds: decode_frames(record["frames"], inds))
        return {"image": views, "label": np.int32(record["label"])}

    # ------------------------------------------------------------------ prediction on files
    input_suffixes = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
    picture_frames = 8

    def predict_element(self, path: str) -> PredictElement:
        """A video file decoded with OpenCV into the test views of the eval pipeline; the
        picture shows up to `picture_frames` of the sampled frames."""
        try:
            import cv2  # noqa: F401
        except ImportError as e:
            raise ModuleNotFoundError("reading video files needs OpenCV: pip install -e '.[data]'") from e
        from dualformer.video_builders import read_video
        frames = read_video(path)
        clip_len = int(self.config.data.clip_len)
        if len(frames) < clip_len:
            raise ValueError(f"the video has {len(frames)} frames, fewer than one clip of {clip_len} "
                             "(data.clip_len)")
        views, inds = self.test_views(len(frames), lambda row: [Image.fromarray(frames[i]) for i in row])
        used = np.unique(inds)
        shown = used[np.linspace(0, len(used) - 1, min(self.picture_frames, len(used))).round().astype(int)]
        return PredictElement(views, [(f"frame {i}", frames[i]) for i in shown],
                              {"num_frames": len(frames), "views": len(views), "clip_frames": inds.tolist()})

    # ------------------------------------------------------------------ training
    def mix(self, rng, batch):
        return batch["image"], jax.nn.one_hot(batch["label"], self.num_classes), {}

    # ------------------------------------------------------------------ evaluation
    def predict_probs(self, state, batch) -> jnp.ndarray:
        """[B, K]: the softmax of every view of batch["image"] [B, V, T, H, W, 3], averaged per video."""
        views = batch["image"]
        b, v = views.shape[:2]
        outputs = self.predict_step(state, {"image": views.reshape((b * v,) + views.shape[2:])})
        return average_view_probs(self.logits(outputs), v)

    def eval_step(self, state, batch) -> dict:
        b = batch["image"].shape[0]
        probs = self.predict_probs(state, batch)
        sums = self.eval_metrics(jnp.log(jnp.maximum(probs, 1e-12)), batch)
        mask = batch.get("mask", jnp.ones((b,), jnp.float32))
        labels = jax.nn.one_hot(batch["label"], self.num_classes) * mask[:, None]
        preds = jax.nn.one_hot(jnp.argmax(probs, -1), self.num_classes) * mask[:, None]
        return {**sums, "class_labels": labels.sum(0), "class_preds": preds.sum(0),
                "class_correct": (labels * preds).sum(0)}

    def finalize_eval(self, sums) -> dict:
        out = super().finalize_eval(sums)
        out["mean_class_accuracy"] = 100.0 * mean_class_accuracy(
            sums["class_correct"], sums["class_labels"], sums["class_preds"])
        return out
