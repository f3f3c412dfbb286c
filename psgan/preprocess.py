"""Region masks, relative-position features, the inference crop and the post-processing of
wtjiang98/PSGAN (psgan/preprocess.py `PreProcess.process`, faceutils/dlibutils `crop`,
psgan/postprocess.py), in NumPy on the host.

MT parsing labels: 0 background, 1 face, 2/3 l/r brow, 4/5 l/r eye, 6 nose, 7 upper lip,
8 teeth, 9 lower lip, 10 hair, 11/12 ears, 13 neck. Regions, in the order [lip, skin, eye]:
lip = {7, 9}; skin = {1, 6}; eye = the skin pixels inside [min - 16, max + 16] boxes around
landmarks 42-47, then 36-41 (int() truncation, the max side + 1 exclusive), *moved* out of
skin. Where the two boxes overlap, the second box copies skin that the first one has already
zeroed: those pixels end in neither region, as in the official code.

Landmarks are (y, x) pixel coordinates of the image frame (68 dlib points). The features
`diff` [3, h, w, 136] hold (pixel_y - lm_y[k]) for k < 68 and (pixel_x - lm_x[k - 68]) after,
sampled at pixel (H/h i, W/w j) (torch's nearest resize), multiplied by each region's resized
mask and divided by their L2 norm over the 136 channels (masked pixels stay 0).
"""
import os

import numpy as np

from common.errors import DataError


class FaceError(DataError, ValueError):
    """A face whose image, label map or landmarks cannot be used; the message names the file."""


class FaceFileMissing(FaceError, FileNotFoundError):
    """A face file (image, label map, landmarks, list) that is not there."""

EYE_MARGIN = 16
LIP_CLASSES = (7, 9)
FACE_CLASSES = (1, 6)
NUM_LABELS = 14                 # the MT scheme 0..13
UP_RATIO, DOWN_RATIO, WIDTH_RATIO = 0.6 / 0.85, 0.2 / 0.85, 0.2 / 0.85


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """torch F.interpolate(mode="nearest"): source index floor(i * in / out)."""
    return np.minimum(np.floor(np.arange(size_out) * (size_in / size_out)).astype(np.int64), size_in - 1)


def check_inputs(seg: np.ndarray, lms: np.ndarray, where: str = "") -> None:
    """Clear errors for a parsing map with unknown labels or landmarks of the wrong shape."""
    name = f"{where}: " if where else ""
    if seg.ndim != 2:
        raise FaceError(f"{name}parsing map must be a 2-D label image, got shape {seg.shape}")
    bad = np.setdiff1d(np.unique(seg), np.arange(NUM_LABELS))
    if bad.size:
        raise FaceError(f"{name}parsing map has labels {bad.tolist()} outside the MT scheme 0..{NUM_LABELS - 1}")
    if lms.shape != (68, 2) or not np.all(np.isfinite(lms)):
        raise FaceError(f"{name}landmarks must be a finite (68, 2) (y, x) array, got {lms.shape}")


def _copy_area(tar: np.ndarray, src: np.ndarray, lms: np.ndarray, m: int = EYE_MARGIN) -> None:
    """The official copy_area: tar[box] = src[box]; src[box] = 0 (Python slicing, int())."""
    left, top = int(min(lms[:, 1])) - m, int(min(lms[:, 0])) - m
    right, bottom = int(max(lms[:, 1])) + m + 1, int(max(lms[:, 0])) + m + 1
    tar[top:bottom, left:right] = src[top:bottom, left:right]
    src[top:bottom, left:right] = 0


def region_masks(seg: np.ndarray, lms: np.ndarray, eye_margin: int = EYE_MARGIN) -> np.ndarray:
    """[3, H, W] float32 masks (lip, skin, eye) of a label map at the image size; `eye_margin`
    is 16 at 256² (scale it with the image for other sizes)."""
    seg = np.asarray(seg)
    lip = np.isin(seg, LIP_CLASSES).astype(np.float32)
    face = np.isin(seg, FACE_CLASSES).astype(np.float32)
    eyes = np.zeros_like(face)
    _copy_area(eyes, face, lms[42:48], eye_margin)
    _copy_area(eyes, face, lms[36:42], eye_margin)
    return np.stack([lip, face, eyes])


def relative_positions(masks: np.ndarray, lms: np.ndarray, diff_size=(64, 64)) -> np.ndarray:
    """[3, h, w, 136] float32: masked, L2-normalised relative positions (see the module doc)."""
    _, height, width = masks.shape
    iy, ix = nearest_indices(height, diff_size[0]), nearest_indices(width, diff_size[1])
    lm = np.asarray(lms, np.float64).T.reshape(-1)                     # y0..y67, x0..x67
    ys = np.broadcast_to(iy[:, None, None].astype(np.float64), (len(iy), len(ix), 68))
    xs = np.broadcast_to(ix[None, :, None].astype(np.float64), (len(iy), len(ix), 68))
    diff = np.concatenate([ys - lm[None, None, :68], xs - lm[None, None, 68:]], -1).astype(np.float32)
    m = masks[:, iy][:, :, ix][..., None].astype(np.float32)          # [3, h, w, 1]
    d = diff[None] * m
    norm = np.sqrt(np.sum(d * d, axis=-1, keepdims=True, dtype=np.float32), dtype=np.float32)
    norm = np.where(norm == 0, np.float32(1e10), norm)
    return (d / norm).astype(np.float32)


def process(seg: np.ndarray, lms: np.ndarray, diff_size=(64, 64), where: str = "",
            eye_margin: int = EYE_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """`PreProcess.process`: (masks [3, H, W], diff [3, h, w, 136]) from a label map at the
    image size and its (y, x) landmarks in that frame."""
    check_inputs(np.asarray(seg), np.asarray(lms), where)
    masks = region_masks(seg, lms, eye_margin)
    return masks, relative_positions(masks, lms, diff_size)


# ---------------------------------------------------------------- inference crop / post-processing
def crop_box(image_size: tuple[int, int], face: tuple[int, int, int, int],
             up_ratio: float = UP_RATIO, down_ratio: float = DOWN_RATIO, width_ratio: float = WIDTH_RATIO):
    """faceutils.dlibutils.crop: the square crop (left, top, right, bottom) around a face box
    (left, top, right, bottom) of an image (width, height). dlib's height() / width() are
    bottom - top + 1; the side margins are a fraction of the *image* width (the official quirk)."""
    width, height = image_size
    fl, ft, fr, fb = face
    face_h = fb - ft + 1
    img_left = int(max(0, fl - width_ratio * width))
    img_top = int(max(0, ft - up_ratio * face_h))
    img_right = int(min(width, fr + width_ratio * width))
    img_bottom = int(min(height, fb + down_ratio * face_h))
    w, h = img_right - img_left, img_bottom - img_top
    # dlib rectangle(l, t, r, b).center() = ((l + r + 1) // 2, (t + b + 1) // 2) in absolute coordinates,
    # used by the official code as if relative to the crop
    cx, cy = (img_left + img_right + 1) // 2, (img_top + img_bottom + 1) // 2
    left, top, right, bottom = img_left, img_top, img_right, img_bottom
    if w > h:
        a, b = int(cx - h / 2), int(cx + h / 2)
        if a < 0:
            a, b = 0, h
        elif b > w:
            a, b = w - h, w
        left, right = img_left + a, img_left + a + (b - a)
    elif w < h:
        a, b = int(cy - w / 2), int(cy + w / 2)
        if a < 0:
            a, b = 0, w
        elif b > h:
            a, b = h - w, h
        top, bottom = img_top + a, img_top + a + (b - a)
    return left, top, right, bottom


def minmax_to_uint8(out: np.ndarray) -> np.ndarray:
    """Solver.test's output normalisation: (x - min) / (max - min + 1e-5), then ToPILImage's
    x * 255 truncated to uint8."""
    out = np.asarray(out, np.float32)
    out = (out - out.min()) / (out.max() - out.min() + np.float32(1e-5))
    return (out * 255).astype(np.uint8)


def detail_add_back(source: np.ndarray, result: np.ndarray, img_size: int = 256) -> np.ndarray:
    """PostProcess: resize the result to the source crop size and add the source's
    Laplacian detail source - up(down(source)), rounded and clipped to uint8."""
    import cv2
    source = np.asarray(source)
    height, width = source.shape[:2]
    small = cv2.resize(source, (img_size, img_size))
    detail = source.astype(np.float64) - cv2.resize(small, (width, height)).astype(np.float64)
    out = cv2.resize(np.asarray(result), (width, height)) + detail
    return out.round().clip(0, 255).astype(np.uint8)


def read_landmarks(path: str) -> np.ndarray:
    """A landmarks file of the MT release: a pickled (68, 2) (y, x) array under a .png name."""
    import pickle
    if not os.path.isfile(path):
        raise FaceFileMissing(f"{path}: no landmarks file (the MT layout keeps a pickled (68, 2) array "
                                "under landmarks/<same name as the image>)")
    try:
        with open(path, "rb") as f:
            lms = np.asarray(pickle.load(f), np.float64)
    except Exception as e:  # noqa: BLE001 - any unpickling failure: say which file
        raise FaceError(f"{path}: not a pickled landmarks array ({type(e).__name__}: {e})") from e
    if lms.shape != (68, 2):
        raise FaceError(f"{path}: landmarks must be (68, 2) (y, x), got {lms.shape}")
    return lms
