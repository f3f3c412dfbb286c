"""A generated COCO-format detection folder: coloured shapes on a noisy background.

`write_coco_folder(root, split, num_images)` writes `root/images/<split>_NNNNNN.png` and
`root/annotations/instances_<split>.json` in the COCO format (images: id, file_name,
width, height; annotations: id, image_id, category_id, bbox [x, y, w, h], area,
iscrowd, segmentation; categories), which the `coco_format` reader then reads like COCO.

Three categories with non-contiguous ids, each one shape in one colour:
  1 "rectangle" (red), 3 "ellipse" (green), 18 "triangle" (blue).
Images are 96-192 px per side (both orientations), 1-5 non-overlapping objects each
(boxes are the tight boxes of the drawn pixels, area = pixel count). Image 0 of every
split has no object; image 1 of the validation split also holds an iscrowd=1 cluster of
small triangles (an RLE segmentation, as COCO's crowds). Deterministic in (style, split,
index). The `easy` style (the CPU demo) draws 64-96 px images with 1-3 objects of 16 px
to 0.6 of the side, so a small model learns them in minutes.
"""
import dataclasses
import json
import os

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = [
    {"id": 1, "name": "rectangle", "supercategory": "shape"},
    {"id": 3, "name": "ellipse", "supercategory": "shape"},
    {"id": 18, "name": "triangle", "supercategory": "shape"},
]
COLOURS = {1: (220, 40, 40), 3: (40, 200, 60), 18: (50, 80, 230)}


@dataclasses.dataclass(frozen=True)
class Style:
    sides: tuple[int, int] = (96, 192)         # image width and height, each uniform in [lo, hi]
    max_objects: int = 5
    min_object: int = 16                       # object box side in px, at least
    max_fraction: float = 0.55                 # and at most this fraction of the image side


STYLES = {"default": Style(), "easy": Style(sides=(64, 96), max_objects=3, max_fraction=0.6)}
MIN_SIDE, MAX_SIDE = STYLES["default"].sides
_SPLIT_SEED = {"train": 0, "val": 1}
_ID_BASE = {"train": 1_000, "val": 500_000}


def _draw(category: int, box: tuple[int, int, int, int], size: tuple[int, int], rng) -> np.ndarray:
    """Boolean mask [H, W] of one shape inside box (x0, y0, x1, y1), inclusive corners."""
    mask = Image.new("1", size)
    d = ImageDraw.Draw(mask)
    x0, y0, x1, y1 = box
    if category == 1:
        d.rectangle([x0, y0, x1, y1], fill=1)
    elif category == 3:
        d.ellipse([x0, y0, x1, y1], fill=1)
    else:
        apex = int(rng.integers(x0, x1 + 1))
        d.polygon([(x0, y1), (x1, y1), (apex, y0)], fill=1)
    return np.asarray(mask, bool)


def _tight_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]


def _rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths of the column-major mask, starting with zeros."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [len(flat)]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def _polygon(mask: np.ndarray) -> list[list[float]]:
    x, y, w, h = _tight_box(mask)
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _paint(canvas: np.ndarray, mask: np.ndarray, colour, rng) -> None:
    jitter = rng.integers(-25, 26, 3)
    canvas[mask] = np.clip(np.asarray(colour) + jitter, 0, 255).astype(np.uint8)


def make_image(split: str, index: int, style: str = "default"):
    """(uint8 [H, W, 3] image, list of annotation dicts without ids)."""
    st = STYLES[style]
    rng = np.random.default_rng([_SPLIT_SEED[split], index])
    w, h = (int(v) for v in rng.integers(st.sides[0], st.sides[1] + 1, 2))
    base = rng.integers(70, 180)
    canvas = np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
    anns, taken = [], np.zeros((h, w), bool)
    n_objects = 0 if index == 0 else int(rng.integers(1, st.max_objects + 1))
    for _ in range(n_objects):
        for _ in range(20):                      # rejection: objects do not overlap
            cat = int(rng.choice([c["id"] for c in CATEGORIES]))
            bw = int(rng.integers(st.min_object, int(st.max_fraction * w) + 1))
            bh = int(rng.integers(st.min_object, int(st.max_fraction * h) + 1))
            x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
            if taken[y0:y0 + bh, x0:x0 + bw].any():
                continue
            mask = _draw(cat, (x0, y0, x0 + bw - 1, y0 + bh - 1), (w, h), rng)
            taken[y0:y0 + bh, x0:x0 + bw] = True
            _paint(canvas, mask, COLOURS[cat], rng)
            anns.append({"category_id": cat, "bbox": _tight_box(mask), "area": float(mask.sum()),
                         "iscrowd": 0, "segmentation": _polygon(mask)})
            break
    if split == "val" and index == 1:            # a crowd: a cluster of small triangles
        crowd = np.zeros((h, w), bool)
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        for k in range(4):
            cx, cy = x0 + 20 * (k % 2), y0 + 20 * (k // 2)
            crowd |= _draw(18, (cx, cy, cx + 15, cy + 15), (w, h), rng)
        crowd &= ~taken
        if crowd.any():
            _paint(canvas, crowd, COLOURS[18], rng)
            anns.append({"category_id": 18, "bbox": _tight_box(crowd), "area": float(crowd.sum()),
                         "iscrowd": 1, "segmentation": _rle(crowd)})
    return canvas, anns


def write_coco_folder(root: str, split: str, num_images: int, style: str = "default") -> str:
    """Writes the split's images and annotation file under root; returns the json path."""
    if split not in _SPLIT_SEED:
        raise ValueError(f"split {split!r} is not one of {sorted(_SPLIT_SEED)}")
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not one of {sorted(STYLES)}")
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        image, anns = make_image(split, i, style)
        image_id = _ID_BASE[split] + 7 * i
        name = f"{split}_{i:06d}.png"
        Image.fromarray(image).save(os.path.join(root, "images", name))
        images.append({"id": image_id, "file_name": name, "height": image.shape[0], "width": image.shape[1],
                       "license": 1})
        for a in anns:
            annotations.append({"id": _ID_BASE[split] * 10 + len(annotations) + 1, "image_id": image_id, **a})
    data = {"info": {"description": f"synthetic shapes, {style} style (pnp_detr.synthetic_shapes)", "version": "1.0"},
            "licenses": [{"id": 1, "name": "generated"}],
            "images": images, "annotations": annotations, "categories": CATEGORIES}
    path = os.path.join(root, "annotations", f"instances_{split}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path
