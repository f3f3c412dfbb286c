"""Spatial pipeline of the official video configs (mmaction 0.x semantics), on numpy clips.

train: resize short side to `short_side` (keep ratio) -> RandomResizedCrop (area range,
       log-uniform aspect, 10 tries, else a centred square; one box for the whole clip) ->
       resize to size x size ignoring aspect -> horizontal flip -> normalise.
test:  resize short side to `test_short_side` -> CenterCrop or ThreeCrop (left, right,
       middle along the long side) -> normalise. Multi-view = clips x crops.
Frames are stored JPEG-encoded; only the sampled indices are decoded. Mean/std are in
0..255 units as in the configs (Kinetics: ImageNet's; Diving-48/HMDB51/UCF101: (104,117,128)/1).
"""
import io
import math

import numpy as np
from PIL import Image


def decode_frames(encoded, indices: np.ndarray) -> list[Image.Image]:
    """Decode each distinct index once; returns frames in `indices` order (RGB PIL images)."""
    cache = {}
    out = []
    for i in np.asarray(indices).reshape(-1):
        i = int(i)
        if i not in cache:
            cache[i] = Image.open(io.BytesIO(bytes(encoded[i]))).convert("RGB")
        out.append(cache[i])
    return out


def short_side_size(w: int, h: int, short: int) -> tuple[int, int]:
    """mmcv.rescale_size((w, h), (inf, short)): both sides * short/min(w, h), rounded half up."""
    f = short / min(w, h)
    return int(w * f + 0.5), int(h * f + 0.5)


def resize_short_side(frames: list[Image.Image], short: int) -> list[Image.Image]:
    if short <= 0:
        return frames
    size = short_side_size(*frames[0].size, short)
    return [f if f.size == size else f.resize(size, Image.BILINEAR) for f in frames]


def rrc_box(w: int, h: int, area_range, aspect_range, rng: np.random.Generator, tries: int = 10):
    """mmaction RandomResizedCrop.get_crop_bbox -> (left, top, right, bottom)."""
    log_ar = (math.log(aspect_range[0]), math.log(aspect_range[1]))
    aspects = np.exp(rng.uniform(*log_ar, size=tries))
    areas = rng.uniform(*area_range, size=tries) * w * h
    cw = np.round(np.sqrt(areas * aspects)).astype(np.int64)
    ch = np.round(np.sqrt(areas / aspects)).astype(np.int64)
    for i in range(tries):
        if ch[i] <= h and cw[i] <= w:
            x, y = int(rng.integers(0, w - cw[i] + 1)), int(rng.integers(0, h - ch[i] + 1))
            return x, y, x + int(cw[i]), y + int(ch[i])
    s = min(w, h)
    x, y = (w - s) // 2, (h - s) // 2
    return x, y, x + s, y + s


def three_crop_boxes(w: int, h: int, size: int) -> list[tuple[int, int, int, int]]:
    """mmaction ThreeCrop: left/right/middle (or top/bottom/middle) size x size crops."""
    ws, hs = (w - size) // 2, (h - size) // 2
    if h == size:
        offs = [(0, 0), (2 * ws, 0), (ws, 0)]
    elif w == size:
        offs = [(0, 0), (0, 2 * hs), (0, hs)]
    else:
        raise ValueError(f"ThreeCrop needs one side equal to the crop size, got {w}x{h} for {size}")
    return [(x, y, x + size, y + size) for x, y in offs]


def center_crop_box(w: int, h: int, size: int) -> tuple[int, int, int, int]:
    x, y = (w - size) // 2, (h - size) // 2
    return x, y, x + size, y + size


def normalize(frames: list[Image.Image], mean, std) -> np.ndarray:
    x = np.stack([np.asarray(f, np.float32) for f in frames])
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


class TrainClipTransform:
    """Sampled frames of one clip -> float32 [T, size, size, 3]."""

    def __init__(self, d):
        self.short, self.size = int(d.short_side), int(d.image_size)
        self.area, self.aspect = tuple(d.rrc_scale), tuple(d.rrc_ratio)
        self.hflip, self.mean, self.std = float(d.hflip), tuple(d.mean), tuple(d.std)

    def __call__(self, frames: list[Image.Image], rng: np.random.Generator) -> np.ndarray:
        frames = resize_short_side(frames, self.short)
        box = rrc_box(*frames[0].size, self.area, self.aspect, rng)
        frames = [f.resize((self.size, self.size), Image.BILINEAR, box=box) for f in frames]
        if rng.random() < self.hflip:
            frames = [f.transpose(Image.FLIP_LEFT_RIGHT) for f in frames]
        return normalize(frames, self.mean, self.std)


class TestViewsTransform:
    """Frames of all clips ([clips, T] PIL images) -> float32 [clips * crops, T, size, size, 3]."""

    def __init__(self, d):
        self.short, self.size = int(d.test_short_side), int(d.image_size)
        self.crops, self.mean, self.std = int(d.test_crops), tuple(d.mean), tuple(d.std)
        if self.crops not in (1, 3):
            raise ValueError(f"data.test_crops must be 1 (centre) or 3 (ThreeCrop), got {self.crops}")

    def __call__(self, clips: list[list[Image.Image]]) -> np.ndarray:
        views = []
        for frames in clips:
            frames = resize_short_side(frames, self.short)
            w, h = frames[0].size
            boxes = [center_crop_box(w, h, self.size)] if self.crops == 1 else three_crop_boxes(w, h, self.size)
            for box in boxes:
                views.append(normalize([f.crop(box) for f in frames], self.mean, self.std))
        return np.stack(views)
