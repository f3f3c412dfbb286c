"""The synthetic calibrated multi-view stand-in of ../shared/specs/mvp.md section 6.4 (seeded,
nothing downloaded): cameras on a ring around the room, 1-3 stick-figure people with the
15-joint Panoptic skeleton, drawn in every view through the SAME `cameras.project_numpy`
(distortion included) that the model and the metrics use, so that only triangulation explains
the pixels. `frame(rng, cams)` gives one frame; mvp/data.py writes frames in the CMU Panoptic
file layout and reads them back through the real loader.
"""
import numpy as np

from mvp import cameras

IMAGE_WH = (320, 180)                  # original image, 16:9 as Panoptic (the crop pads)
SPACE_CENTER = (0.0, 0.0, 800.0)
SPACE_SIZE = (8000.0, 8000.0, 2000.0)
# neck nose mid-hip l-sho l-elb l-wri l-hip l-knee l-ank r-sho r-elb r-wri r-hip r-knee r-ank
JOINT_NAMES = ("neck", "nose", "mid-hip", "l-shoulder", "l-elbow", "l-wrist", "l-hip", "l-knee", "l-ankle",
               "r-shoulder", "r-elbow", "r-wrist", "r-hip", "r-knee", "r-ankle")
LIMBS = ((0, 1), (0, 2), (0, 3), (3, 4), (4, 5), (0, 9), (9, 10), (10, 11), (2, 6), (2, 12), (6, 7), (7, 8),
         (12, 13), (13, 14))
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                    [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0]], np.uint8)


def look_at(centre, target):
    """R (rows x, y, z of the camera in world axes): z towards the target, x = z x up, y = z x x."""
    z = np.asarray(target, np.float64) - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def ring_cameras(rng, views: int, image_wh=IMAGE_WH, distortion: bool = True, distance=(3500.0, 4500.0)) -> list[dict]:
    """V cameras evenly on a ring (radius `distance`, 3.5-4.5 m, height 1.5-2.5 m) looking at
    (0, 0, 900) +- 200 mm; fx = fy ~ 0.9 W, principal point at the centre +- 5 px; mild distortion."""
    w, h = image_wh
    cams = []
    for v in range(views):
        angle = 2 * np.pi * v / views + rng.uniform(-0.2, 0.2)
        radius, height = rng.uniform(*distance), rng.uniform(1500, 2500)
        centre = np.array([radius * np.cos(angle), radius * np.sin(angle), height])
        target = np.array([0.0, 0.0, 900.0]) + rng.uniform(-200, 200, 3)
        f = 0.9 * w * rng.uniform(0.95, 1.05)
        cams.append({"R": look_at(centre, target), "T": centre, "f": np.array([f, f]),
                     "c": np.array([w / 2, h / 2]) + rng.uniform(-5, 5, 2),
                     "k": rng.normal(0, 0.01, 3) if distortion else np.zeros(3),
                     "p": rng.normal(0, 0.001, 2) if distortion else np.zeros(2)})
    return cams


def _unit(v):
    return v / np.linalg.norm(v)


def skeleton(rng, root_xy, yaw: float, scale: float) -> np.ndarray:
    """[15, 3] joints in mm of one standing person (mid-hip at 950 mm x scale)."""
    j = np.zeros((15, 3))
    hip = np.array([0.0, 0.0, 950.0])
    neck = hip + [0, 0, 500]
    j[2], j[0], j[1] = hip, neck, neck + [0, 80, 150]
    for side, (sho, elb, wri, hp, kn, an) in ((-1, (3, 4, 5, 6, 7, 8)), (1, (9, 10, 11, 12, 13, 14))):
        j[sho] = neck + [side * 170, 0, -30]
        upper = _unit(np.array([side * rng.uniform(0.1, 1.0), rng.uniform(-0.6, 0.6), -rng.uniform(0.2, 1.0)]))
        lower = _unit(upper + rng.normal(0, 0.5, 3))
        j[elb] = j[sho] + 280 * upper
        j[wri] = j[elb] + 250 * lower
        j[hp] = hip + [side * 100, 0, 0]
        flex = np.deg2rad(rng.uniform(0, 30))
        j[kn] = j[hp] + 430 * np.array([0, np.sin(flex), -np.cos(flex)])
        j[an] = j[kn] + 420 * np.array([0, -np.sin(flex) * 0.5, -1.0]) / np.linalg.norm([0, np.sin(flex) * 0.5, 1.0])
    j = (j - [0, 0, 0]) * scale
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    j = j @ rot.T + [root_xy[0], root_xy[1], 0]
    j[:, 2] = np.maximum(j[:, 2], 0.0)
    return j


def people(rng, max_people: int = 3, spread: float = 1500.0) -> np.ndarray:
    """[P, 15, 3], 1..max_people persons with roots in |x|, |y| <= spread, >= 700 mm apart."""
    n = int(rng.integers(1, max_people + 1))
    roots = []
    while len(roots) < n:
        r = rng.uniform(-spread, spread, 2)
        if all(np.linalg.norm(r - o) >= 700 for o in roots):
            roots.append(r)
    return np.stack([skeleton(rng, r, rng.uniform(0, 2 * np.pi), rng.uniform(0.85, 1.15)) for r in roots])


def render(rng, poses, cam, image_wh=IMAGE_WH, radius: int = 3, noise: bool = True) -> np.ndarray:
    """[H, W, 3] uint8: noise (or black) background, persons far to near, limbs as 2 px grey
    lines and joints as discs (radius 3) in the per-joint colour, pixel centres at integers (cv2)."""
    import cv2
    w, h = image_wh
    img = rng.integers(0, 64, (h, w, 3)).astype(np.uint8) if noise else np.zeros((h, w, 3), np.uint8)
    depth = [float(np.mean(((p - cam["T"]) @ np.asarray(cam["R"]).T)[:, 2])) for p in poses]
    for i in np.argsort(depth)[::-1]:
        uv = cameras.project_numpy(poses[i], cam)
        z = ((poses[i] - cam["T"]) @ np.asarray(cam["R"]).T)[:, 2]
        if np.any(z <= 0):
            continue                                   # behind the camera: not drawn
        pts = np.round(uv).astype(np.int64)
        if np.any(np.abs(pts) > 10 * max(w, h)):
            continue
        for a, b in LIMBS:
            cv2.line(img, tuple(int(t) for t in pts[a]), tuple(int(t) for t in pts[b]), (160, 160, 160), 2)
        for j, p in enumerate(pts):
            cv2.circle(img, (int(p[0]), int(p[1])), radius, tuple(int(t) for t in PALETTE[j]), -1)
    return img


def frame(rng, cams, max_people: int = 3, hide_joint: bool = False, spread: float = 1500.0, radius: int = 3,
          noise: bool = True):
    """(images [V, H, W, 3] uint8, poses [P, 15, 3] mm, visibility [P, 15])."""
    poses = people(rng, max_people, spread)
    vis = np.ones(poses.shape[:2])
    if hide_joint:
        vis[0, int(rng.integers(3, 15))] = 0.0
    images = np.stack([render(rng, poses, c, radius=radius, noise=noise) for c in cams])
    return images, poses, vis
