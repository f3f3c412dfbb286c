"""Synthetic faces in the MT release layout (the offline stand-in for the MT dataset).

A parametric 68-point face (dlib order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
outer lip 48-59, inner lip 60-67) under a random similarity transform, per-point jitter,
an open-mouth "expression" and a yaw-like horizontal squeeze; its parsing map rasterised
with PIL polygons in the MT label scheme (face 1, brows 2/3, eyes 4/5, nose 6, lips 7/9,
mouth interior 8, hair 10, neck 13); a skin tone with low-frequency shading. Makeup images
add a lipstick tint on 7/9, an eye-shadow falloff around the eyes, Gaussian blush on the
cheeks and a nose highlight.

`write_mt_folder(root, n_makeup, n_non_makeup, size)` writes exactly the official layout:
images/{makeup,non-makeup}/*.png, segs/... (uint8 label PNG), landmarks/... (a pickled
(68, 2) float (y, x) array under a .png name) and the lists makeup.txt / non-makeup.txt.
Only NumPy and PIL: tests/psgan/make_golden.py loads this file beside the official code.
"""
import os
import pickle

import numpy as np
from PIL import Image, ImageDraw

# canonical face: x right, y down, half-width ~1, origin between the eyes and the mouth
_JAW = [(-np.cos(t), 1.1 * np.sin(t)) for t in np.pi * (-0.1 + 1.2 * np.arange(17) / 16)]
_BROWS = [(-0.75 + 0.15 * k, -0.55 - 0.08 * np.sin(np.pi * k / 4)) for k in range(5)]
_BROWS += [(-x, y) for x, y in reversed(_BROWS)]
_NOSE = [(0.0, -0.4), (0.0, -0.23), (0.0, -0.06), (0.0, 0.1),
         (-0.2, 0.2), (-0.1, 0.23), (0.0, 0.25), (0.1, 0.23), (0.2, 0.2)]
_LEFT_EYE = [(-0.57, -0.3), (-0.47, -0.36), (-0.37, -0.36), (-0.27, -0.3), (-0.37, -0.25), (-0.47, -0.25)]
_RIGHT_EYE = [(0.27, -0.3), (0.37, -0.36), (0.47, -0.36), (0.57, -0.3), (0.47, -0.25), (0.37, -0.25)]
_OUTER_LIP = [(-0.25, 0.55), (-0.15, 0.47), (-0.05, 0.45), (0.0, 0.46), (0.05, 0.45), (0.15, 0.47),
              (0.25, 0.55), (0.15, 0.63), (0.05, 0.66), (0.0, 0.67), (-0.05, 0.66), (-0.15, 0.63)]
_INNER_LIP = [(-0.2, 0.55), (-0.07, 0.52), (0.0, 0.52), (0.07, 0.52),
              (0.2, 0.55), (0.07, 0.58), (0.0, 0.58), (-0.07, 0.58)]
TEMPLATE = np.array(_JAW + _BROWS + _NOSE + _LEFT_EYE + _RIGHT_EYE + _OUTER_LIP + _INNER_LIP, np.float64)
assert TEMPLATE.shape == (68, 2)
LOWER_LIP = [7, 8, 9, 10, 11]          # outer-lip indices (48 + k) that move with the jaw
LOWER_INNER = [5, 6, 7]                # inner-lip indices (60 + k)


def random_landmarks(rng: np.random.Generator, size: int, scale=(0.26, 0.32), lip_scale: float = 1.0) -> np.ndarray:
    """(68, 2) (x, y) pixel coordinates of a random face in a size x size frame; `scale` is the
    range of the face's half-width over the frame size, `lip_scale` enlarges the lips about
    their centre (a close-up stand-in whose lips cover more of the AMM's 1/4-size grid)."""
    p = TEMPLATE.copy()
    if lip_scale != 1.0:
        lips = slice(48, 68)
        centre = p[lips].mean(0)
        p[lips] = centre + (p[lips] - centre) * lip_scale
    open_ = rng.uniform(0.0, 0.12)
    p[[48 + k for k in LOWER_LIP], 1] += open_
    p[[60 + k for k in LOWER_INNER], 1] += open_
    p[8, 1] += 0.5 * open_
    yaw = rng.uniform(-0.25, 0.25)
    p[:, 0] = p[:, 0] * (1 - 0.5 * abs(yaw)) + yaw * 0.3 * (1 - np.abs(p[:, 0]))
    angle = rng.uniform(-0.17, 0.17)
    c, s = np.cos(angle), np.sin(angle)
    p = p @ np.array([[c, s], [-s, c]])
    half_width = size * rng.uniform(*scale)
    centre = size * (0.5 + rng.uniform(-0.04, 0.04, 2)) + np.array([0.0, size * 0.02])
    p = p * half_width + centre + rng.normal(0, size / 256, p.shape)
    return p


def parsing(lm: np.ndarray, size: int) -> np.ndarray:
    """MT label map [size, size] uint8 for landmarks (x, y)."""
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    pts = lambda idx: [tuple(lm[i]) for i in idx]   # noqa: E731
    centre = lm[27:36].mean(0)
    half_w = np.linalg.norm(lm[16] - lm[0]) / 2
    d.ellipse([centre[0] - 1.25 * half_w, centre[1] - 1.6 * half_w, centre[0] + 1.25 * half_w,
               centre[1] + 0.6 * half_w], fill=10)                                     # hair
    d.rectangle([lm[5][0], lm[8][1] - 0.2 * half_w, lm[11][0], size], fill=13)        # neck
    forehead = [tuple(lm[i] + (lm[i] - lm[30]) * 0.35) for i in range(26, 16, -1)]
    d.polygon(pts(range(17)) + forehead, fill=1)                                       # face
    for idx, lab in ((range(17, 22), 2), (range(22, 27), 3)):
        top = [tuple(lm[i] + np.array([0, -0.04 * half_w])) for i in idx]
        bottom = [tuple(lm[i] + np.array([0, 0.05 * half_w])) for i in reversed(list(idx))]
        d.polygon(top + bottom, fill=lab)                                              # brows
    d.polygon(pts([27]) + pts(range(31, 36)), fill=6)                                  # nose
    d.polygon(pts(range(36, 42)), fill=4)                                              # eyes
    d.polygon(pts(range(42, 48)), fill=5)
    d.polygon(pts(range(48, 55)) + pts([64, 63, 62, 61, 60]), fill=7)                  # upper lip
    d.polygon(pts([54, 55, 56, 57, 58, 59, 48]) + pts([60, 67, 66, 65, 64]), fill=9)   # lower lip
    d.polygon(pts(range(60, 68)), fill=8)                                              # mouth interior
    return np.asarray(img, np.uint8)


def _gauss(size, centre, sigma):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma ** 2))


COLOURS = {0: (90, 110, 130), 10: (45, 30, 25), 13: None, 1: None, 6: None, 2: (50, 35, 30), 3: (50, 35, 30),
           4: (235, 235, 235), 5: (235, 235, 235), 7: (185, 105, 105), 9: (185, 105, 105), 8: (240, 230, 220)}
LIPSTICKS = [(200, 20, 40), (150, 20, 90), (220, 70, 40), (120, 10, 30)]
SHADOWS = [(120, 60, 140), (150, 90, 60), (60, 80, 150), (170, 60, 90)]


def render(lm: np.ndarray, seg: np.ndarray, rng: np.random.Generator, makeup: bool) -> np.ndarray:
    """uint8 RGB image of a face: flat colours per label, shading, optional makeup."""
    size = seg.shape[0]
    skin = np.array([rng.uniform(170, 235), rng.uniform(120, 180), rng.uniform(95, 150)])
    img = np.zeros((size, size, 3))
    for lab, colour in COLOURS.items():
        img[seg == lab] = skin if colour is None else np.asarray(colour) + rng.normal(0, 8, 3)
    img[seg == 13] = skin * 0.85
    half_w = np.linalg.norm(lm[16] - lm[0]) / 2
    for centre in (lm[36:42].mean(0), lm[42:48].mean(0)):                   # irises
        img[_gauss(size, centre, 0.05 * half_w) > 0.5] = (60, 40, 30)
    shade = 1 + 0.08 * (_gauss(size, lm[30] + rng.normal(0, 0.3 * half_w, 2), 1.2 * half_w) - 0.5)
    img *= shade[..., None]
    if makeup:
        lips = np.isin(seg, (7, 9))
        tint = np.asarray(LIPSTICKS[rng.integers(len(LIPSTICKS))]) + rng.normal(0, 10, 3)
        img[lips] = 0.2 * img[lips] + 0.8 * tint
        skin_mask = np.isin(seg, (1,))
        shadow = np.asarray(SHADOWS[rng.integers(len(SHADOWS))])
        for eye in (lm[36:42], lm[42:48]):
            c = eye.mean(0) + np.array([0, -0.06 * half_w])
            w = _gauss(size, c, 0.16 * half_w) * skin_mask
            img = img * (1 - 0.7 * w[..., None]) + shadow * 0.7 * w[..., None]
        blush = np.asarray((230, 90, 110))
        for a, b in ((lm[2], lm[31]), (lm[14], lm[35])):
            w = 0.45 * _gauss(size, (a + b) / 2 + np.array([0, -0.08 * half_w]), 0.16 * half_w) * skin_mask
            img = img * (1 - w[..., None]) + blush * w[..., None]
        w = 0.35 * _gauss(size, lm[28:31].mean(0), 0.08 * half_w) * np.isin(seg, (1, 6))
        img = img * (1 - w[..., None]) + 255 * w[..., None]
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def face(rng: np.random.Generator, size: int, makeup: bool, **shape):
    """(image uint8 [size, size, 3], seg uint8 [size, size], landmarks (68, 2) (y, x));
    `shape`: random_landmarks' scale / lip_scale."""
    lm = random_landmarks(rng, size, **shape)
    seg = parsing(lm, size)
    return render(lm, seg, rng, makeup), seg, lm[:, ::-1].copy()


def write_mt_folder(root: str, n_makeup: int, n_non_makeup: int, size: int = 256, seed: int = 0,
                    prefix: str = "", **shape) -> None:
    """The official data/ layout with generated faces (see the module docstring); `shape` as `face`."""
    rng = np.random.default_rng(seed)
    for kind, n in (("makeup", n_makeup), ("non-makeup", n_non_makeup)):
        names = []
        for i in range(n):
            image, seg, lms = face(rng, size, makeup=kind == "makeup", **shape)
            name = f"{kind}/{prefix}{'m' if kind == 'makeup' else 'n'}{i:04d}.png"
            for sub in ("images", "segs", "landmarks"):
                os.makedirs(os.path.join(root, sub, kind), exist_ok=True)
            Image.fromarray(image).save(os.path.join(root, "images", name))
            Image.fromarray(seg).save(os.path.join(root, "segs", name))
            with open(os.path.join(root, "landmarks", name), "wb") as f:
                pickle.dump(lms, f)
            names.append(name)
        with open(os.path.join(root, f"{kind}.txt"), "w") as f:
            f.write("\n".join(names) + "\n")
