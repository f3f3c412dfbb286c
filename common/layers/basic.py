"""Small building blocks shared by the vision transformers and MLPs.

Every kernel is created with logical axis names (`nn.with_logical_partitioning`) so
that the same module shards by data, FSDP or tensor axes purely from config rules
(see common/sharding.py for the names and their default mapping).
"""
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any


def trunc_normal(std: float = 0.02) -> Callable:
    """timm's trunc_normal_(std) (cut at +-2 absolute, i.e. effectively untruncated)."""
    return nn.initializers.truncated_normal(stddev=std, lower=-2.0 / std, upper=2.0 / std)


# PyTorch's default Conv/Linear init: kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)).
torch_conv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
torch_linear_init = torch_conv_init


def torch_bias_init(fan_in: int) -> Callable:
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(features: int, axes: Sequence[str | None], *, name: str | None = None,
          use_bias: bool = True, dtype: Dtype = jnp.float32,
          kernel_init: Callable = trunc_normal(0.02),
          bias_init: Callable = nn.initializers.zeros) -> nn.Dense:
    """nn.Dense whose kernel (in, out) and bias (out,) carry logical axis names."""
    return nn.Dense(
        features, use_bias=use_bias, dtype=dtype, name=name,
        kernel_init=nn.with_logical_partitioning(kernel_init, tuple(axes)),
        bias_init=nn.with_logical_partitioning(bias_init, (axes[-1],)),
    )


def drop_path_rates(rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic-depth rate per block, linear over the *global* block index."""
    total = sum(depths)
    flat = np.linspace(0.0, rate, total) if total > 1 else np.zeros(total)
    out, start = [], 0
    for d in depths:
        out.append([float(r) for r in flat[start:start + d]])
        start += d
    return out


class DropPath(nn.Module):
    """Per-sample stochastic depth: drops the whole residual branch of a sample.

    Keeps a sample with probability 1 - rate and rescales the kept ones by 1/(1 - rate);
    identity at eval time. Uses the `drop_path` RNG stream.
    """
    rate: float

    @nn.compact
    def __call__(self, x, deterministic: bool):
        if deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = jax.random.bernoulli(self.make_rng("drop_path"), keep, shape)
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


class LayerScale(nn.Module):
    """Learnable per-channel scale (CaiT / PoolFormer); param name `scale`."""
    init_value: float

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.with_logical_partitioning(
            nn.initializers.constant(self.init_value), ("embed",)), (x.shape[-1],))
        return x * scale.astype(x.dtype)


class Mlp(nn.Module):
    """fc1 -> GELU (exact erf, as PyTorch's nn.GELU) -> dropout -> fc2 -> dropout, on the last axis."""
    hidden_features: int
    out_features: int | None = None
    dropout: float = 0.0
    dtype: Dtype = jnp.float32
    kernel_init: Callable = trunc_normal(0.02)

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        out = self.out_features or x.shape[-1]
        x = dense(self.hidden_features, ("embed", "mlp"), name="fc1", dtype=self.dtype,
                  kernel_init=self.kernel_init)(x)
        x = nn.gelu(x, approximate=False)
        x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
        x = dense(out, ("mlp", "embed"), name="fc2", dtype=self.dtype,
                  kernel_init=self.kernel_init)(x)
        return nn.Dropout(self.dropout)(x, deterministic=deterministic)
