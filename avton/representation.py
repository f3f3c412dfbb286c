"""The person representation of sergeywong/cp-vton cp_dataset.py (exact) and AVTON's
all-type extension (reconstructed; the label sets are config switches).

CP-VTON, per person (H x W, NHWC here, values as the reference):
- `shape` [H, W, 1]: parse > 0 as an 8-bit image, PIL-bilinear resized to (W/16, H/16) and
  back, then ToTensor + Normalize(0.5, 0.5): [-1, 1];
- `head` [H, W, 3]: image * head - (1 - head), head = labels {1, 2, 4, 13};
- `pose` [H, W, 18]: per COCO-18 keypoint a filled PIL rectangle (x - r, y - r, x + r, y + r)
  drawn only if x > 1 and y > 1, normalised to {-1, +1};
- `agnostic` = concat(shape, head, pose): 22 channels;
- `parse_cloth` [H, W, 3]: image * garment + (1 - garment) (white elsewhere), garment =
  labels {5, 6, 7}; `garment_mask` [H, W, 1] in {0, 1}.
AVTON's all-type extension (`LABEL_SETS`): the garment labels and the limbs the LPM
predicts depend on the category (top / bottom / whole); `limb_mask` is the union of the
limb labels, `skin` the mean colour of the visible skin labels (ACGPN's
ger_average_color: a per-image constant map, zeros under `min_skin_pixels` pixels), and
`preserve` (optional) the image outside garment, limbs, head and background.
Images are uint8 RGB; parse maps uint8 LIP labels 0..19.
"""
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

NUM_LABELS = 20          # LIP
LIP_LABELS = ("background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks",
              "pants", "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg", "right-leg",
              "left-shoe", "right-shoe")
HEAD_LABELS = (1, 2, 4, 13)
NUM_KEYPOINTS = 18       # COCO-18 (OpenPose)
# garment labels and the limbs exposed/covered per category. "cpvton" is the reference
# (tops in VITON: upper-clothes, dress, coat); the other three are AVTON's (unverified).
LABEL_SETS = {
    "cpvton": dict(garment=(5, 6, 7), limbs=(14, 15), skin=(14, 15)),
    "top": dict(garment=(5, 7), limbs=(14, 15), skin=(14, 15, 13)),
    "bottom": dict(garment=(9, 12), limbs=(16, 17), skin=(16, 17, 14, 15, 13)),
    "whole": dict(garment=(6, 5, 9, 12), limbs=(14, 15, 16, 17), skin=(14, 15, 16, 17, 13)),
}
CATEGORIES = ("top", "bottom", "whole")


def normalize(x: np.ndarray) -> np.ndarray:
    """ToTensor + Normalize(0.5, 0.5) of uint8 data: [-1, 1] float32."""
    return (np.asarray(x, np.float32) / 255.0 - 0.5) / 0.5


def in_labels(parse: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    return np.isin(parse, np.asarray(labels)).astype(np.float32)


def shape_map(parse: np.ndarray) -> np.ndarray:
    h, w = parse.shape
    im = Image.fromarray(((parse > 0) * 255).astype(np.uint8))
    im = im.resize((w // 16, h // 16), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    return normalize(np.asarray(im))[..., None]


def pose_maps(keypoints: np.ndarray, height: int, width: int, radius: int = 5) -> np.ndarray:
    """[H, W, K] in {-1, 1}: cp_dataset.py's rectangles of half-size `radius`."""
    k = np.asarray(keypoints, np.float64).reshape(-1, 3)
    out = np.full((height, width, len(k)), -1.0, np.float32)
    for i, (x, y, _) in enumerate(k):
        if x > 1 and y > 1:
            one = Image.new("L", (width, height))
            ImageDraw.Draw(one).rectangle((x - radius, y - radius, x + radius, y + radius), "white", "white")
            out[..., i] = normalize(np.asarray(one))
    return out


def skin_colour(image: np.ndarray, parse: np.ndarray, labels: Sequence[int], min_pixels: int = 10) -> np.ndarray:
    """[3] mean colour in [-1, 1] over the pixels of `labels` (zeros under min_pixels)."""
    m = in_labels(parse, labels) > 0
    if m.sum() < min_pixels:
        return np.zeros(3, np.float32)
    return normalize(image)[m].mean(0).astype(np.float32)


def person(image: np.ndarray, parse: np.ndarray, keypoints: np.ndarray, *, radius: int = 5,
           label_set: Mapping | str = "cpvton", min_skin_pixels: int = 10, preserve: bool = False) -> dict:
    """Every map of the module doc, float32 NHWC (no batch axis)."""
    labels = LABEL_SETS[label_set] if isinstance(label_set, str) else label_set
    h, w = parse.shape
    im = normalize(image)
    head = in_labels(parse, HEAD_LABELS)[..., None]
    garment = in_labels(parse, labels["garment"])[..., None]
    limbs = in_labels(parse, labels["limbs"])[..., None]
    maps = {
        "image": im,
        "shape": shape_map(parse),
        "head": im * head - (1.0 - head),
        "pose": pose_maps(keypoints, h, w, radius),
        "parse_cloth": im * garment + (1.0 - garment),
        "garment_mask": garment,
        "limb_mask": limbs,
        "limb_image": im * limbs - (1.0 - limbs),
        "skin": np.broadcast_to(skin_colour(image, parse, labels["skin"], min_skin_pixels), (h, w, 3)).copy(),
    }
    parts = [maps["shape"], maps["head"], maps["pose"]]
    if preserve:
        keep = ((parse > 0) & (head[..., 0] == 0) & (garment[..., 0] == 0) & (limbs[..., 0] == 0))[..., None]
        maps["preserve"] = im * keep - (1.0 - keep)
        parts.append(maps["preserve"])
    maps["agnostic"] = np.concatenate(parts, -1)
    return maps


def agnostic_channels(preserve: bool = False, num_keypoints: int = NUM_KEYPOINTS) -> int:
    return 1 + 3 + num_keypoints + (3 if preserve else 0)


# BODY_25 (VITON-HD's openpose-json) -> COCO-18: drop MidHip (8) and the feet (19..24)
BODY25_TO_COCO18 = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])
