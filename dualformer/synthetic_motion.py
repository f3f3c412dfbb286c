"""`synthetic_motion`: moving-shape videos whose label can only be read from motion.

Each video: 24-40 frames of 80x64 RGB (non-square, variable length), a smooth random
background gradient with slight per-frame noise, and one shape (bar, square or triangle: drawn at
random, independent of the label) of random colour, size and orientation. The label is the
motion, in time-reversal pairs so that frame order matters:
0 right, 1 left, 2 down, 3 up, 4 rotate clockwise, 5 rotate anticlockwise, 6 grow, 7 shrink.
Speeds are jittered. A single frame carries no information about the label.

`write_videos(root, split, n)` writes real video files (MPEG-4 in .mp4, through OpenCV) and
a list file `synthetic_motion_{split}_list_videos.txt` in mmaction's format, so that the
same builder and decoder that read Kinetics read them. Horizontal flip swaps classes 0/1
and 4/5: configs on this data (as on SSv2) disable flipping.
"""
import os

import numpy as np

CLASSES = ("right", "left", "down", "up", "rotate_cw", "rotate_ccw", "grow", "shrink")
WIDTH, HEIGHT = 80, 64
FPS = 25


def _polygon(kind: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    if kind == "bar":
        pts = np.array([[-1.2, -0.3], [1.2, -0.3], [1.2, 0.3], [-1.2, 0.3]])
    elif kind == "square":
        pts = np.array([[-0.7, -0.7], [0.7, -0.7], [0.7, 0.7], [-0.7, 0.7]])
    else:
        pts = np.array([[0.0, -1.0], [0.9, 0.7], [-0.9, 0.7]])
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]]) * size
    return np.round(pts + [cx, cy]).astype(np.int32)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A random colour with a smooth random gradient: varied across videos, calm within one,
    so the moving shape is the only local structure (per-token LayerNorm would otherwise
    amplify background texture to the shape's level)."""
    base = rng.uniform(30, 120, 3)
    gx, gy = rng.uniform(-0.4, 0.4, (2, 3))
    xs, ys = np.meshgrid(np.arange(WIDTH) - WIDTH / 2, np.arange(HEIGHT) - HEIGHT / 2)
    return np.clip(base + xs[..., None] * gx + ys[..., None] * gy, 0, 255)


def render(label: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [F, HEIGHT, WIDTH, 3] RGB frames of one video of class `label`."""
    import cv2
    n = int(rng.integers(24, 41))
    kind = ("bar", "square", "triangle")[int(rng.integers(3))]
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    size = rng.uniform(7.0, 10.0)
    angle = rng.uniform(0, np.pi)
    t = np.arange(n, dtype=np.float64)
    speed = min(rng.uniform(1.0, 1.6), 54.0 / (n - 1))  # pixels / frame; the path stays inside
    travel = speed * (n - 1)
    cx = np.full(n, rng.uniform(14, WIDTH - 14))
    cy = np.full(n, rng.uniform(14, HEIGHT - 14))
    sizes, angles = np.full(n, size), np.full(n, angle)
    if label in (0, 1):  # horizontal: start where the whole path stays inside
        start = rng.uniform(12, WIDTH - 12 - travel)
        cx = start + speed * t if label == 0 else (start + travel) - speed * t
    elif label in (2, 3):
        travel = min(travel, HEIGHT - 26)
        v = travel / (n - 1)
        start = rng.uniform(12, HEIGHT - 12 - travel)
        cy = start + v * t if label == 2 else (start + travel) - v * t
    elif label in (4, 5):
        omega = rng.uniform(0.08, 0.14) * (1 if label == 4 else -1)
        angles = angle + omega * t
    else:
        lo, hi = rng.uniform(4.0, 6.0), rng.uniform(11.0, 14.0)
        sizes = np.linspace(lo, hi, n) if label == 6 else np.linspace(hi, lo, n)
    bg = _background(rng)
    frames = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(n):
        img = np.clip(bg + rng.normal(0, 2, bg.shape), 0, 255).astype(np.uint8)
        cv2.fillPoly(img, [_polygon(kind, cx[i], cy[i], sizes[i], angles[i])], colour, lineType=cv2.LINE_AA)
        frames[i] = img
    return frames


def write_video(path: str, frames: np.ndarray) -> None:
    import cv2
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), FPS, (frames.shape[2], frames.shape[1]))
    if not w.isOpened():
        raise RuntimeError(f"OpenCV cannot write MPEG-4 video to {path}")
    for f in frames:
        w.write(f[:, :, ::-1])  # OpenCV wants BGR
    w.release()


def write_videos(root: str, split: str, n: int, seed: int = 0) -> str:
    """n videos (classes balanced, seeded by split and index) + the list file; returns its path."""
    folder = os.path.join(root, f"videos_{split}")
    os.makedirs(folder, exist_ok=True)
    lines = []
    for i in range(n):
        label = i % len(CLASSES)
        rng = np.random.default_rng([seed, {"train": 0, "val": 1}[split], i])
        rel = f"{CLASSES[label]}/{split}_{i:05d}.mp4"
        os.makedirs(os.path.join(folder, CLASSES[label]), exist_ok=True)
        write_video(os.path.join(folder, rel), render(label, rng))
        lines.append(f"{rel} {label}")
    list_file = os.path.join(root, f"synthetic_motion_{split}_list_videos.txt")
    with open(list_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    return list_file
