"""What the golden fixtures were made from, regenerated with numpy alone: the settings of
the official modules, random weights for a state_dict of given names and shapes, and the
inputs. make_golden.py (with the official code) and the tests (without it) both call
these, so the fixtures store only names, shapes and outputs."""
import zlib

import numpy as np

GMM_SIZE = (256, 192)       # the official GMM's Linear(64 * 4 * 3) fixes the input size
GMM_BATCH = 2
TOM_NGF, TOM_SIZE = 4, (128, 64)          # UnetGenerator(25, 4, 6, ngf=4, InstanceNorm2d)
REFINE_IN, REFINE_OUT, REFINE_SIZE = 37, 14, (32, 32)   # ACGPN Refine at full width
D_IN, D_NDF, D_SIZE = 27, 8, (64, 48)     # MultiscaleDiscriminator(27, 8, 3, IN, num_D=2, feats)
SAMPLE_SIZE, SAMPLE_OUT = (12, 10), (9, 7)    # grid_sample image / grid sizes
SEED = 0
DATASET_SAMPLE = (3, "train", 64, 48, "top")   # synthetic.make_sample arguments
DATASET_RADIUS = 2


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def random_tensor(name: str, shape, seed: int = SEED) -> np.ndarray:
    """N(0, 1/fan_in) kernels, small biases, BN affines near identity, positive running
    variances: activations stay O(1) through every network."""
    rng = _rng(seed, name)
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        x = rng.uniform(0.5, 1.5, shape)
    elif leaf == "running_mean":
        x = 0.1 * rng.standard_normal(shape)
    elif leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    elif len(shape) == 1 and leaf == "weight":
        x = 1.0 + 0.1 * rng.standard_normal(shape)
    elif len(shape) == 1:
        x = 0.1 * rng.standard_normal(shape)
    else:
        x = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(np.prod(shape[1:])))
    return x.astype(np.float32)


def random_state_dict(names, shapes, seed: int = SEED) -> dict[str, np.ndarray]:
    return {str(n): random_tensor(str(n), s, seed) for n, s in zip(names, shapes)}


def inputs(name: str, shape, seed: int = SEED) -> np.ndarray:
    """NCHW float32 inputs in [-1, 1]."""
    return _rng(seed, "input/" + name).uniform(-1, 1, shape).astype(np.float32)


def random_theta(batch: int, n: int = 50, scale: float = 0.15, seed: int = SEED) -> np.ndarray:
    return (scale * _rng(seed, "theta").standard_normal((batch, n))).astype(np.float32)


def control_point_cases(seed: int = SEED) -> np.ndarray:
    """[3, 25, 2] ACGPN-order source points inside (-1, 1): a regular grid (every term at its
    floor), a mildly and a strongly perturbed one (terms above their floors)."""
    v = np.linspace(-0.9, 0.9, 5)
    yy, xx = np.meshgrid(v, v, indexing="ij")
    regular = np.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    rng = _rng(seed, "points")
    cases = [regular, regular + 0.05 * rng.standard_normal(regular.shape),
             regular + 0.3 * rng.standard_normal(regular.shape)]
    return np.clip(np.stack(cases), -0.99, 0.99).astype(np.float32)
