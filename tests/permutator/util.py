"""Shared by the permutator tests: a tiny ViP that obeys the segment constraint, and
random variables built without jax RNG (XLA compiles of init dominate CPU test time)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# 32x32 input, patch 4 -> 8x8 tokens (C 32, 8 segments of 4), Downsample -> 4x4 (C 64, 4 segments of 16).
TINY = dict(patch_size=4, layers=(1, 1, 1, 1), transitions=(True, False, False, False),
            segment_dim=(8, 4, 4, 4), mlp_ratios=(3, 3, 3, 3), embed_dims=(32, 64, 64, 64))
TINY_IMAGE = 32


def random_variables(model: nn.Module, image_size: int, seed: int = 0, scale: float = 0.1):
    """Unboxed variables of `model` filled with N(0, scale^2) (LayerNorm scales around 1)."""
    abstract = nn.unbox(jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, image_size, image_size, 3)))))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        value = rng.normal(0.0, scale, leaf.shape)
        if getattr(path[-1], "key", None) == "scale":
            value += 1.0
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract)
