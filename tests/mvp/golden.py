"""What the golden fixtures were made from, regenerated with numpy alone: the tiny official
configuration, random weights for a state_dict of given names and shapes, the images and
the cameras. make_golden.py (with the official code) and the tests (without it) both call
these, so the fixture stores only names, shapes and outputs."""
import zlib

import numpy as np

# The official model at the width of our `tiny` variant (mvp/model.py VARIANTS["tiny"]).
TINY = dict(depth=18, deconv=32, d_model=32, heads=4, points=4, ffn=64, layers=2, persons=4, joints=15, views=3,
            image_size=(192, 96), space_center=(0.0, 0.0, 800.0), space_size=(8000.0, 8000.0, 2000.0))
IMAGE_WH = (320, 180)
SEED = 0


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def random_tensor(name: str, shape, seed: int) -> np.ndarray:
    """Weights that keep activations O(1) and exercise every path: N(0, 1/fan_in) kernels,
    small random biases, BN / LN affines near identity with non-trivial running statistics,
    N(0, 1) query embeddings and offsets of a few feature pixels."""
    rng = _rng(seed, name)
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    if leaf == "running_var":
        x = rng.uniform(0.5, 1.5, shape)
    elif leaf == "running_mean":
        x = 0.1 * rng.standard_normal(shape)
    elif "embedding" in name or "view_embed" in name or "level_embed" in name:
        x = rng.standard_normal(shape)
    elif "sampling_offsets.bias" in name:
        x = 2.0 * rng.standard_normal(shape)
    elif len(shape) == 1 and leaf == "weight":
        x = 1.0 + 0.1 * rng.standard_normal(shape)
    elif len(shape) == 1:
        x = 0.1 * rng.standard_normal(shape)
    elif "deconv_layers" in name:                      # ConvTranspose (in, out, k, k): fan-in = in*k*k/4
        x = rng.standard_normal(shape) / np.sqrt(shape[0] * shape[2] * shape[3] / 4)
    else:
        x = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return x.astype(np.float32)


def random_state_dict(names, shapes, seed: int = SEED) -> dict:
    """decoder.pose_embed.* is the same module as pose_embed.*: the same tensors."""
    return {n: random_tensor(n.removeprefix("decoder."), s, seed) if n.startswith("decoder.pose_embed.")
            else random_tensor(n, s, seed) for n, s in zip(names, shapes)}


def inputs(seed: int = SEED):
    """(images [1, V, H, W, 3] float32 normalised-like noise, list of V camera dicts (mvp.cameras
    layout, float64), 3-D people [P, 15, 3] mm with visibility)."""
    from mvp import synthetic
    rng = np.random.default_rng(seed)
    cams = synthetic.ring_cameras(rng, TINY["views"], IMAGE_WH, distortion=True)
    w, h = TINY["image_size"]
    images = rng.standard_normal((1, TINY["views"], h, w, 3)).astype(np.float32)
    poses = synthetic.people(rng, 3)
    vis = np.ones(poses.shape[:2])
    vis[0, 5] = 0
    return images, cams, poses, vis


def project_points(seed: int = SEED) -> np.ndarray:
    """[B=1, V, N, 3] world points in mm, in front of, beside and behind the cameras."""
    rng = np.random.default_rng(seed + 1)
    pts = rng.uniform([-3000, -3000, 0], [3000, 3000, 2000], (TINY["views"], 40, 3))
    pts[:, -5:] *= 3.0                                        # far away: behind some cameras
    return pts[None]


def features(seed: int = SEED):
    """Backbone outputs given to the decoder directly (the head-only fixture): 3 levels of
    [V, C, H_l, W_l] float32 (torch layout), stride 4, 8, 16 of the tiny input."""
    rng = np.random.default_rng(seed + 2)
    w, h = TINY["image_size"]
    return [rng.standard_normal((TINY["views"], TINY["deconv"], h // s, w // s)).astype(np.float32)
            for s in (4, 8, 16)]


def hard_cameras(cams):
    """The head-only case: view 1 sees nothing (principal point 5000 px off the image), view 2
    is turned to face away from the room (every joint behind it: no z > 0 check, so some
    project mirrored into the image and count as visible, as in the official code)."""
    out = [dict(c) for c in cams]
    out[1]["c"] = out[1]["c"] + np.array([5000.0, 0.0])
    flip = np.diag([-1.0, 1.0, -1.0])                 # 180 degrees about the camera's y axis
    out[2]["R"] = flip @ out[2]["R"]
    return out
