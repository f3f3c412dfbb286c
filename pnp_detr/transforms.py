"""DETR's detection augmentation with boxes (facebookresearch/detr datasets/transforms.py,
used unchanged by twangnh/pnp-detr datasets/coco.py `make_coco_transforms`).

Images travel as PIL images (resizing is PIL bilinear, as torchvision's F.resize on a PIL
image), boxes as float32 [n, 4] absolute xyxy pixels, labels [n]. Randomness comes from
the numpy Generator grain hands each record (the official code uses Python's `random`):
`random.random() < p` -> `rng.random() < p`, `random.randint(a, b)` -> `rng.integers(a, b + 1)`.

Train:  RandomHorizontalFlip(0.5), then RandomSelect(p=0.5) of
          RandomResize(scales, max_size)                       or
          RandomResize(crop_scales) -> RandomSizeCrop(*crop_size) -> RandomResize(scales, max_size)
Eval:   RandomResize([eval_size], max_size)
then ToTensor + Normalize (ImageNet mean/std) and boxes -> cxcywh / (w, h).
"""
from typing import Sequence

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resized_size(w: int, h: int, size: int, max_size: int | None = None) -> tuple[int, int]:
    """(h, w) after resizing the shorter side to `size` with the longer side <= max_size
    (detr datasets/transforms.py `resize.get_size_with_aspect_ratio`)."""
    if max_size is not None:
        lo, hi = float(min(w, h)), float(max(w, h))
        if hi / lo * size > max_size:
            size = int(round(max_size * lo / hi))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return int(size * h / w), size
    return size, int(size * w / h)


def resize(img: Image.Image, boxes: np.ndarray, size: int, max_size: int | None = None):
    w, h = img.size
    oh, ow = resized_size(w, h, size, max_size)
    if (oh, ow) != (h, w):
        img = img.resize((ow, oh), Image.BILINEAR)
    scale = np.array([ow / w, oh / h, ow / w, oh / h], np.float32)
    return img, boxes * scale


def hflip(img: Image.Image, boxes: np.ndarray):
    w = img.size[0]
    flipped = boxes[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], np.float32) + np.array([w, 0, w, 0], np.float32)
    return img.transpose(Image.FLIP_LEFT_RIGHT), flipped


def crop(img: Image.Image, boxes: np.ndarray, labels: np.ndarray, region: tuple[int, int, int, int]):
    """Crop to (top, left, height, width); boxes are clipped to the crop and those left
    with zero width or height are dropped (detr `crop`)."""
    i, j, h, w = region
    img = img.crop((j, i, j + w, i + h))
    b = (boxes - np.array([j, i, j, i], np.float32)).reshape(-1, 2, 2)
    b = np.clip(np.minimum(b, np.array([w, h], np.float32)), 0, None)
    keep = np.all(b[:, 1, :] > b[:, 0, :], axis=1)
    return img, b.reshape(-1, 4)[keep], labels[keep]


def random_size_crop(img, boxes, labels, rng: np.random.Generator, min_size: int, max_size: int):
    """detr `RandomSizeCrop` + torchvision `RandomCrop.get_params`. Where the image is
    smaller than min_size (only possible with small custom scales) the crop side is the
    image side; the official code raises in `random.randint` there."""
    W, H = img.size
    tw = int(rng.integers(min(min_size, W), min(W, max_size) + 1))
    th = int(rng.integers(min(min_size, H), min(H, max_size) + 1))
    i = int(rng.integers(0, H - th + 1))
    j = int(rng.integers(0, W - tw + 1))
    return crop(img, boxes, labels, (i, j, th, tw))


def normalize(img: Image.Image, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """uint8 RGB -> float32 [H, W, 3], (x / 255 - mean) / std (ToTensor + Normalize)."""
    x = np.asarray(img, np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def boxes_to_cxcywh(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Absolute xyxy -> cxcywh normalised by the (resized, un-padded) image size."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    cxcywh = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)
    return cxcywh / np.array([w, h, w, h], np.float32)


class TrainTransform:
    """Random flip, then either multi-scale resize or resize + random crop + resize."""

    def __init__(self, scales: Sequence[int], max_size: int, crop_scales: Sequence[int],
                 crop_size: Sequence[int], flip_prob: float = 0.5, select_prob: float = 0.5):
        self.scales, self.max_size = [int(s) for s in scales], int(max_size)
        self.crop_scales = [int(s) for s in crop_scales]
        self.crop_min, self.crop_max = (int(s) for s in crop_size)
        self.flip_prob, self.select_prob = float(flip_prob), float(select_prob)

    def __call__(self, img: Image.Image, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
        if rng.random() < self.flip_prob:
            img, boxes = hflip(img, boxes)
        if rng.random() >= self.select_prob:
            img, boxes = resize(img, boxes, self.crop_scales[rng.integers(len(self.crop_scales))])
            img, boxes, labels = random_size_crop(img, boxes, labels, rng, self.crop_min, self.crop_max)
        img, boxes = resize(img, boxes, self.scales[rng.integers(len(self.scales))], self.max_size)
        return img, boxes, labels


class EvalTransform:
    """Shorter side `size`, longer side <= max_size."""

    def __init__(self, size: int, max_size: int):
        self.size, self.max_size = int(size), int(max_size)

    def __call__(self, img: Image.Image, boxes: np.ndarray, labels: np.ndarray):
        img, boxes = resize(img, boxes, self.size, self.max_size)
        return img, boxes, labels
