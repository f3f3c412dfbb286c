"""COCO box AP on the host: DETR's PostProcess + CocoEvaluator (facebookresearch/detr
models/detr.py PostProcess, datasets/coco_eval.py) as a `common.evaluators` evaluator.

The jitted eval step turns the last decoder layer into per-query (score, label, xyxy box in
original-image pixels); this evaluator keeps every real image's detections and scores them
with pycocotools' COCOeval(iouType="bbox") against the split's ground truth (crowds
included), default parameters: AP at IoU .50:.05:.95, AP50, AP75, AP small/medium/large.
"""
import contextlib
import copy
import io

import jax
import jax.numpy as jnp
import numpy as np

from common import box_ops

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def postprocess(logits, boxes, orig_size):
    """[B, Q, K+1] logits, [B, Q, 4] cxcywh (relative) and [B, 2] (h, w) -> scores, labels
    (raw category ids) and xyxy boxes in pixels of the original image: softmax over all
    K+1 classes, best of the first K (no threshold, no NMS)."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[..., :-1]
    scores, labels = probs.max(-1), probs.argmax(-1)
    h, w = orig_size[:, 0].astype(jnp.float32), orig_size[:, 1].astype(jnp.float32)
    scale = jnp.stack([w, h, w, h], axis=-1)[:, None, :]
    return scores, labels.astype(jnp.int32), box_ops.box_cxcywh_to_xyxy(boxes.astype(jnp.float32)) * scale


class CocoEvaluator:
    def __init__(self, ground_truth: dict):
        self.ground_truth = ground_truth
        self._detections: list[np.ndarray] = []

    def add(self, outputs):
        keep = np.asarray(outputs["mask"]) > 0
        ids = np.asarray(outputs["image_id"])[keep]
        scores, labels = np.asarray(outputs["scores"])[keep], np.asarray(outputs["labels"])[keep]
        xyxy = np.asarray(outputs["boxes"], np.float64)[keep]
        xywh = np.concatenate([xyxy[..., :2], xyxy[..., 2:] - xyxy[..., :2]], -1)
        q = scores.shape[1]
        # rows: image_id, x, y, w, h, score, category_id (pycocotools' loadRes array form)
        self._detections.append(np.concatenate([
            np.repeat(ids, q)[:, None].astype(np.float64), xywh.reshape(-1, 4),
            scores.reshape(-1, 1), labels.reshape(-1, 1)], axis=1))

    def compute(self) -> dict:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        if not self._detections:
            raise ValueError("the evaluation split produced no batch")
        dets = np.concatenate(self._detections)
        with contextlib.redirect_stdout(io.StringIO()):       # pycocotools prints its progress
            gt = COCO()
            gt.dataset = copy.deepcopy(self.ground_truth)
            gt.createIndex()
            result = gt.loadRes(dets)
            ev = COCOeval(gt, result, iouType="bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        # pycocotools' -1 (no ground truth of that size) becomes NaN, not a score of -100
        stats = [float("nan") if v < 0 else 100.0 * float(v) for v in ev.stats[:6]]
        return {**dict(zip(METRICS, stats)),
                "images": int(len(np.unique(dets[:, 0]))) if len(dets) else 0}
