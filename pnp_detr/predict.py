"""Detect objects in one's own images with a trained or converted (PnP-)DETR, and draw
where the computation went.

  python -m pnp_detr.predict --config=configs/pnp_detr/pnp_detr_r50.py:demo \
      --checkpoint=/tmp/pnp_demo --out=/tmp/pnp_pictures IMAGE [IMAGE ...] [--alpha=0.5]

For each image it prints the detections above --threshold (class, score, xyxy box in the
image's pixels) and, with --out, writes `<name>.json` and `<name>.png`: the boxes with class
names and scores, and beside them the fine tokens the poll sampler kept at this α (the
feature cells PnP's encoder and decoder see at full resolution; the rest is pooled into M
coarse tokens) — the paper's Fig. 1 / Fig. 5 view. A file that cannot be read is reported
and skipped; the exit code is then 1.
"""
import json
import os
import sys

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags
from PIL import Image

from common import pictures
from common.runner import checkpoint_run
from pnp_detr import data, transforms
from pnp_detr.evaluation import postprocess


def category_names(config) -> dict[int, str]:
    """Raw category id -> name from the dataset's metadata, when it is prepared."""
    try:
        return {int(c["id"]): c["name"] for c in data.source_categories(data.source(config, config.data.eval_split))}
    except Exception as e:            # a missing dataset only costs the names
        logging.warning("no category names (%s); boxes are labelled by id", e)
        return {}


class Detector:
    def __init__(self, config, checkpoint: str, alpha: float):
        self.run = checkpoint_run(config, checkpoint)
        self.state = self.run.init_state()
        self.config, self.task = config, self.run.task
        self.alpha = alpha if self.task.uses_sampler else 1.0
        d = config.data
        self.resize = transforms.EvalTransform(d.eval_size, d.max_size)
        self.pad = data.PadToCanvas(d.canvases)
        self.mean = tuple(d.get("mean", transforms.IMAGENET_MEAN))
        self.std = tuple(d.get("std", transforms.IMAGENET_STD))
        self.forward = jax.jit(lambda s, b: self.task.predict_step(s, b, self.alpha))

    def __call__(self, image: Image.Image) -> dict:
        """Detections (all queries, best class each) and the polled cells of one image."""
        resized, _, _ = self.resize(image, np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))
        batch = self.pad([{"image": transforms.normalize(resized, self.mean, self.std)}])
        out = self.forward(self.state, {"image": batch["image"], "pixel_mask": batch["pixel_mask"]})
        orig = np.array([[image.height, image.width]], np.int32)
        scores, labels, boxes = postprocess(out["pred_logits"][-1], out["pred_boxes"][-1], orig)
        h_f, w_f = (int(v) for v in np.asarray(out["feature_shape"]).reshape(-1)[:2])
        cells = np.zeros(h_f * w_f, bool)
        if self.task.uses_sampler:
            index, valid = np.asarray(out["poll_index"][0]), np.asarray(out["poll_valid"][0])
            cells[index[valid]] = True
        return {"scores": np.asarray(scores[0]), "labels": np.asarray(labels[0]), "boxes": np.asarray(boxes[0]),
                "cells": cells.reshape(h_f, w_f), "canvas": batch["image"].shape[1:3], "resized": resized.size}


def polled_picture(image: Image.Image, cells: np.ndarray, canvas, resized) -> np.ndarray:
    """The polled feature cells over the image: the grid covers the padded canvas, of which
    the resized image is the top-left `resized` (w, h) part."""
    ch, cw = canvas
    rw, rh = resized
    padded = np.zeros((ch, cw, 3), np.uint8)
    padded[:rh, :rw] = np.asarray(image.resize((rw, rh), Image.BILINEAR))
    shaded = pictures.shade_cells(padded, cells)[:rh, :rw]
    return np.asarray(Image.fromarray(shaded).resize(image.size, Image.NEAREST))


def describe(result: dict, names: dict, threshold: float) -> list[dict]:
    keep = np.flatnonzero(result["scores"] >= threshold)
    keep = keep[np.argsort(-result["scores"][keep])]
    return [{"category_id": int(result["labels"][i]), "name": names.get(int(result["labels"][i]), str(int(result["labels"][i]))),
             "score": round(float(result["scores"][i]), 4),
             "box_xyxy": [round(float(v), 1) for v in result["boxes"][i]]} for i in keep]


def predict_files(config, checkpoint: str, paths: list[str], out_dir: str = "", alpha: float = 0.5,
                  threshold: float = 0.5) -> tuple[dict, list[str]]:
    """{path: detections} of every readable image, and the paths that failed (with why)."""
    detector = Detector(config, checkpoint, alpha)
    names = category_names(config)
    results, failed = {}, []
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    for path in paths:
        try:
            with Image.open(path) as f:
                image = f.convert("RGB")
        except Exception as e:
            failed.append(f"{path}: cannot read the image ({type(e).__name__}: {e})")
            continue
        r = detector(image)
        dets = describe(r, names, threshold)
        results[path] = dets
        if out_dir:
            stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0])
            zoom = max(1, round(384 / max(image.size)))          # small images are drawn enlarged
            view = image.resize((image.width * zoom, image.height * zoom), Image.NEAREST)
            boxes = zoom * np.array([d["box_xyxy"] for d in dets]).reshape(-1, 4)
            colors = pictures.palette(max(names, default=0) + 1 if names else 32)
            drawn = pictures.draw_boxes(np.asarray(view), boxes, [f"{d['name']} {d['score']:.2f}" for d in dets],
                                        [colors[d["category_id"] % len(colors)] for d in dets])
            panels, titles = [drawn], [f"{len(dets)} detections >= {threshold}"]
            if detector.task.uses_sampler:
                n, total = int(r["cells"].sum()), r["cells"].size
                panels.append(polled_picture(view, r["cells"], r["canvas"], r["resized"]))
                titles.append(f"polled: {n} of {total} cells (alpha={detector.alpha:g})")
            pictures.save_png(stem + ".png", pictures.image_grid(panels, titles))
            with open(stem + ".json", "w") as f:
                json.dump({"image": path, "alpha": detector.alpha, "detections": dets}, f, indent=1)
    return results, failed


def main():
    config = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).", lock_config=True)
    ckpt = flags.DEFINE_string("checkpoint", None, "Training workdir or converted checkpoint directory.")
    out = flags.DEFINE_string("out", "", "Directory for one PNG and one JSON per image.")
    alpha = flags.DEFINE_float("alpha", 0.5, "Poll ratio of the sampler (ignored by plain DETR).")
    threshold = flags.DEFINE_float("threshold", 0.5, "Detections with a lower score are not shown.")
    flags.mark_flags_as_required(["config", "checkpoint"])

    def run(argv):
        if len(argv) < 2:
            raise app.UsageError("give one or more image files")
        results, failed = predict_files(config.value, ckpt.value, argv[1:], out.value, alpha.value, threshold.value)
        for path, dets in results.items():
            print(f"{path}: " + ("; ".join(f"{d['name']} {d['score']:.2f} {d['box_xyxy']}" for d in dets) or "nothing"))
        for why in failed:
            print(why, file=sys.stderr)
        if failed:
            sys.exit(1)

    app.run(run)


if __name__ == "__main__":
    main()
