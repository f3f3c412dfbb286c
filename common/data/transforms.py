"""Per-image classification transforms (timm/DeiT semantics) on numpy HWC uint8 images.

train: RandomResizedCrop (random bilinear/bicubic) -> flip -> RandAugment -> normalise
       -> random erasing ('pixel' mode); Mixup/CutMix run batch-wise on device (mixup.py).
eval:  resize the short side to floor(size / crop_pct) (bicubic) -> center crop.
"""
import math

import numpy as np
from PIL import Image

from common.data.randaugment import RandAugment

_INTERP = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def to_pil(image: np.ndarray) -> Image.Image:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=2)
    return Image.fromarray(image.astype(np.uint8))


def rrc_box(width, height, scale, ratio, rng):
    """torchvision RandomResizedCrop.get_params: 10 tries, then a center crop."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def random_erasing(x: np.ndarray, prob: float, rng: np.random.Generator,
                   area=(0.02, 1 / 3), log_aspect=(math.log(0.3), math.log(1 / 0.3))) -> np.ndarray:
    """timm RandomErasing(mode='pixel', count 1) on a normalised HWC image."""
    if prob <= 0 or rng.random() >= prob:
        return x
    h, w, c = x.shape
    for _ in range(10):
        target = h * w * rng.uniform(*area)
        aspect = math.exp(rng.uniform(*log_aspect))
        eh, ew = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if eh < h and ew < w:
            top, left = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            x = x.copy()
            x[top:top + eh, left:left + ew] = rng.standard_normal((eh, ew, c)).astype(np.float32)
            return x
    return x


def color_jitter(img: Image.Image, strength: float, rng: np.random.Generator) -> Image.Image:
    """torchvision ColorJitter(brightness=s, contrast=s, saturation=s, hue=0): each factor
    uniform in [1 - s, 1 + s], applied in a random order."""
    from PIL import ImageEnhance
    ops = [ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color]
    for i in rng.permutation(3):
        img = ops[i](img).enhance(rng.uniform(max(0.0, 1 - strength), 1 + strength))
    return img


class TrainTransform:
    def __init__(self, d):
        self.size = int(d.image_size)
        self.scale, self.ratio = tuple(d.rrc_scale), tuple(d.rrc_ratio)
        self.hflip, self.erase = float(d.hflip), float(d.random_erasing)
        self.mean, self.std = tuple(d.mean), tuple(d.std)
        self.randaugment = RandAugment(d.randaugment) if d.randaugment else None
        self.jitter = float(d.get("color_jitter", 0.0))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = to_pil(image)
        x, y, w, h = rrc_box(img.size[0], img.size[1], self.scale, self.ratio, rng)
        interp = Image.BILINEAR if rng.random() < 0.5 else Image.BICUBIC
        img = img.resize((self.size, self.size), interp, box=(x, y, x + w, y + h))
        if rng.random() < self.hflip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self.jitter > 0:
            img = color_jitter(img, self.jitter, rng)
        if self.randaugment is not None:
            img = self.randaugment(img, rng)
        out = normalize(np.asarray(img), self.mean, self.std)
        return random_erasing(out, self.erase, rng)


class EvalTransform:
    def __init__(self, d):
        self.size = int(d.image_size)
        self.resize = int(math.floor(self.size / float(d.crop_pct)))
        self.interp = _INTERP[d.eval_interpolation]
        self.mean, self.std = tuple(d.mean), tuple(d.std)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = to_pil(image)
        w, h = img.size
        scale = self.resize / min(w, h)
        nw, nh = (self.resize, max(self.resize, int(h * scale))) if w <= h else \
            (max(self.resize, int(w * scale)), self.resize)
        img = img.resize((nw, nh), self.interp)
        left, top = int(round((nw - self.size) / 2.0)), int(round((nh - self.size) / 2.0))
        img = img.crop((left, top, left + self.size, top + self.size))
        return normalize(np.asarray(img), self.mean, self.std)
