"""What the golden fixtures were made from, regenerated with numpy alone: the settings of
the official modules, random weights for a state_dict of given names and shapes, and the
padded input images. make_golden.py (with the official code) and the tests (without it)
both call these, so the fixtures store only names, shapes and outputs."""
import zlib

import numpy as np

# The official SortSampler at a small width: grid 8 x 10, three images of different valid
# sizes (rows, cols in cells), alpha 0.5; N_max = 40 <= every image's valid count.
SAMPLER_GRID = (8, 10)
SAMPLER_VALID = ((8, 10), (8, 6), (6, 7))
SAMPLER_DIM = 32
SAMPLER_CASES = {
    "default": dict(score_pred_net="2layer-fc-256", kproj_net="1layer-fc", unsample_abstract_number=6,
                    pos_embed_kproj=False),
    "options": dict(score_pred_net="2layer-fc-16", kproj_net="2layer-fc", unsample_abstract_number=5,
                    pos_embed_kproj=True),
}
SAMPLER_ALPHA = 0.5

# The whole model at the width of the `tiny` variant (pnp_detr/model.py VARIANTS["tiny"]).
MODEL_CANVAS = (128, 112)
MODEL_VALID = ((128, 112), (100, 72), (64, 112))   # pixels
MODEL_ALPHA = 0.5
MODEL_SEED = 0


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def random_tensor(name: str, shape, seed: int) -> np.ndarray:
    """Weights that keep activations O(1): N(0, 1/fan_in) kernels, small random biases,
    LayerNorm / FrozenBatchNorm affines near identity, positive running variances."""
    rng = _rng(seed, name)
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        x = rng.uniform(0.5, 1.5, shape)
    elif leaf == "running_mean":
        x = 0.1 * rng.standard_normal(shape)
    elif len(shape) == 1 and leaf == "weight":            # LayerNorm / BatchNorm scale
        x = 1.0 + 0.1 * rng.standard_normal(shape)
    elif len(shape) == 1:                                 # any bias
        x = 0.1 * rng.standard_normal(shape)
    elif name == "query_embed.weight":
        x = rng.standard_normal(shape)
    else:
        x = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return x.astype(np.float32)


def random_state_dict(names, shapes, seed: int) -> dict[str, np.ndarray]:
    return {n: random_tensor(n, s, seed) for n, s in zip(names, shapes)}


def valid_pixels(valid_sizes, canvas) -> np.ndarray:
    """[B, H, W] bool, True on each image's top-left valid region."""
    mask = np.zeros((len(valid_sizes),) + tuple(canvas), bool)
    for i, (h, w) in enumerate(valid_sizes):
        mask[i, :h, :w] = True
    return mask


def random_images(valid_sizes, canvas, seed: int) -> np.ndarray:
    """[B, H, W, 3] float32 normal noise, zero on the padding (as DETR's batching pads)."""
    x = np.random.default_rng(seed).standard_normal((len(valid_sizes),) + tuple(canvas) + (3,)).astype(np.float32)
    return x * valid_pixels(valid_sizes, canvas)[..., None]
