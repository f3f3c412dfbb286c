"""timm's RandAugment (`rand-mM-mstdS-inc1`) on PIL images, with an explicit numpy RNG.

Matches timm.data.auto_augment: `n` ops drawn with replacement from the "increasing"
set, each applied with probability 0.5 at magnitude ~ N(M, S) clipped to [0, 10];
geometric ops fill with the ImageNet mean pixel.
"""
import re

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

FILL = (124, 116, 104)
_MAX = 10.0


def _signed(v, rng):
    return -v if rng.random() < 0.5 else v


def _affine(img, matrix):
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=FILL)


def _solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    lut = lut * len(img.getbands())
    return img.point(lut)


def _enhance(cls):
    return lambda img, m, rng: cls(img).enhance(1.0 + _signed(m / _MAX * 0.9, rng))


OPS = {
    "AutoContrast": lambda img, m, rng: ImageOps.autocontrast(img),
    "Equalize": lambda img, m, rng: ImageOps.equalize(img),
    "Invert": lambda img, m, rng: ImageOps.invert(img),
    "Rotate": lambda img, m, rng: img.rotate(_signed(m / _MAX * 30.0, rng), resample=Image.BILINEAR,
                                             fillcolor=FILL),
    "PosterizeIncreasing": lambda img, m, rng: ImageOps.posterize(img, 4 - int(m / _MAX * 4)),
    "SolarizeIncreasing": lambda img, m, rng: ImageOps.solarize(img, 256 - int(m / _MAX * 256)),
    "SolarizeAdd": lambda img, m, rng: _solarize_add(img, int(m / _MAX * 110)),
    "ColorIncreasing": _enhance(ImageEnhance.Color),
    "ContrastIncreasing": _enhance(ImageEnhance.Contrast),
    "BrightnessIncreasing": _enhance(ImageEnhance.Brightness),
    "SharpnessIncreasing": _enhance(ImageEnhance.Sharpness),
    "ShearX": lambda img, m, rng: _affine(img, (1, _signed(m / _MAX * 0.3, rng), 0, 0, 1, 0)),
    "ShearY": lambda img, m, rng: _affine(img, (1, 0, 0, _signed(m / _MAX * 0.3, rng), 1, 0)),
    "TranslateXRel": lambda img, m, rng: _affine(
        img, (1, 0, _signed(m / _MAX * 0.45, rng) * img.size[0], 0, 1, 0)),
    "TranslateYRel": lambda img, m, rng: _affine(
        img, (1, 0, 0, 0, 1, _signed(m / _MAX * 0.45, rng) * img.size[1])),
}


class RandAugment:
    def __init__(self, spec: str):
        m = re.fullmatch(r"rand((?:-[a-z]+[\d.]+)*)", spec)
        if not m:
            raise ValueError(f"bad RandAugment spec {spec!r}; expected e.g. 'rand-m9-mstd0.5-inc1'")
        args = dict(re.findall(r"-([a-z]+)([\d.]+)", m.group(1)))
        self.magnitude = float(args.get("m", 10))
        self.std = float(args.get("mstd", 0.5))
        self.num_ops = int(args.get("n", 2))
        if int(args.get("inc", 0)) != 1:
            raise ValueError("only the 'increasing' op set (inc1) is implemented")
        self.ops = list(OPS.values())

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        for i in rng.choice(len(self.ops), self.num_ops, replace=True):
            if rng.random() > 0.5:
                continue
            mag = float(np.clip(rng.normal(self.magnitude, self.std), 0.0, _MAX))
            img = self.ops[i](img, mag, rng)
        return img
