"""Weights and inputs that make_golden.py (beside the official code) and the tests build
alike from a seed, so the fixtures hold only names, shapes, label maps and outputs.
NumPy only: make_golden.py loads this file by path next to the official package."""
import numpy as np


def random_state_dict(names, shapes, seed: int = 0) -> dict:
    """A generator state_dict: conv weights ~ N(0, 2 / (fan_in + fan_out)) (xavier_normal),
    InstanceNorm affines 1 + 0.1 N / 0.1 N, biases 0.1 N; drawn in the order of `names`."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in zip(names, shapes):
        shape = tuple(int(s) for s in shape)
        if len(shape) == 4:
            receptive = shape[2] * shape[3]
            std = np.sqrt(2.0 / ((shape[0] + shape[1]) * receptive))
            out[name] = (rng.standard_normal(shape) * std).astype(np.float32)
        elif name.endswith("weight"):
            out[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return out


def random_images(seed: int, n: int, size: int) -> np.ndarray:
    """[n, size, size, 3] float32 in [-1, 1], smooth enough for instance norm to matter."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (n, size // 8, size // 8, 3))
    fine = rng.uniform(-0.2, 0.2, (n, size, size, 3))
    return np.clip(np.repeat(np.repeat(coarse, 8, 1), 8, 2) * 0.8 + fine, -1, 1).astype(np.float32)
