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


def as_rows(fn: Callable, x: jax.Array) -> jax.Array:
    """fn applied to x [..., C] viewed as rows [N, C], reshaped back to x's leading dims.

    XLA:CPU runs a matmul with one row axis much faster than the same contraction with
    several leading axes (the weight gradient then contracts over all of them): fwd+bwd of a
    GELU MLP on [16, 16, 16, 384] tokens 191 -> 149 ms, on [16, 56, 56, 64] 214 -> 161 ms
    (benchmarks/results.md); whole train steps, interleaved in one process: a 16-block vision
    transformer 1.18x, a 3-D video transformer 1.05x, a CNN-like pooling network whose MLPs
    were already chunked into rows 1.01x. On GPU / TPU the reshape is free."""
    y = fn(x.reshape(-1, x.shape[-1]))
    return y.reshape(x.shape[:-1] + y.shape[-1:])


class Dense(nn.Dense):
    """nn.Dense (same parameters and init fields) over the rows of its input: see `as_rows`.
    Written out instead of calling nn.Dense's __call__ on the rows, so that captured
    intermediates hold one output of the input's shape per call; nn.Dense's `dot_general`
    injection fields are not used."""

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (inputs.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        inputs, kernel, bias = nn.dtypes.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        y = as_rows(lambda rows: jax.lax.dot_general(rows, kernel, (((1,), (0,)), ((), ())),
                                                     precision=self.precision), inputs)
        return y if bias is None else y + bias


def dense(features: int, axes: Sequence[str | None], *, name: str | None = None,
          use_bias: bool = True, dtype: Dtype = jnp.float32,
          kernel_init: Callable = trunc_normal(0.02),
          bias_init: Callable = nn.initializers.zeros) -> nn.Dense:
    """Dense (nn.Dense over rows) whose kernel (in, out) and bias (out,) carry logical axis names."""
    return Dense(
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


class DenseParams(nn.Module):
    """The kernel (in, out) and bias (out,) of a Dense layer, created under this module's
    name so the param tree is exactly nn.Dense's, for code that applies them itself."""
    features: int
    axes: Sequence[str | None]
    kernel_init: Callable = trunc_normal(0.02)

    @nn.compact
    def __call__(self, in_features: int):
        kernel = self.param("kernel", nn.with_logical_partitioning(self.kernel_init, tuple(self.axes)),
                            (in_features, self.features))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, (self.axes[-1],)),
                          (self.features,))
        return kernel, bias


def _mlp_rows(x, k1, b1, k2, b2):
    h = nn.gelu(x @ k1 + b1, approximate=False)
    return h @ k2 + b2


def chunked_rows(fn, x, chunk: int):
    """fn over the rows of x [N, C] in chunks of ~`chunk` rows, each recomputed in the
    backward pass (jax.checkpoint): the [chunk, hidden] intermediate stays in cache
    instead of streaming the whole [N, hidden] activation through memory several times.
    On a 2-core CPU this makes PoolFormer's MLP 1.6x faster forward and backward."""
    n = x.shape[0]
    n_chunks = -(-n // chunk)
    size = -(-n // n_chunks)
    pad = n_chunks * size - n
    xs = jnp.pad(x, ((0, pad), (0, 0))) if pad else x
    out = jax.lax.map(jax.checkpoint(fn), xs.reshape(n_chunks, size, x.shape[-1]))
    return out.reshape(n_chunks * size, -1)[:n]


def auto_token_chunk() -> int:
    """The `token_chunk` for this machine's default backend, for model factories to resolve
    once at build time: row chunking pays off where memory bandwidth, not FLOPs, limits
    (CPUs); on GPU/TPU the full-width matmul is faster."""
    return 1024 if jax.default_backend() == "cpu" else 0


class Mlp(nn.Module):
    """fc1 -> GELU (exact erf, as PyTorch's nn.GELU) -> dropout -> fc2 -> dropout, on the last axis.

    `token_chunk` > 0 evaluates the MLP over chunks of that many tokens (`chunked_rows`; 0:
    off); the result and the parameters are the same either way. XLA's cost analysis counts
    a loop body once, so count FLOPs with 0."""
    hidden_features: int
    out_features: int | None = None
    dropout: float = 0.0
    dtype: Dtype = jnp.float32
    kernel_init: Callable = trunc_normal(0.02)
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        out = self.out_features or x.shape[-1]
        k1, b1 = DenseParams(self.hidden_features, ("embed", "mlp"), self.kernel_init, name="fc1")(x.shape[-1])
        k2, b2 = DenseParams(out, ("mlp", "embed"), self.kernel_init, name="fc2")(self.hidden_features)
        k1, b1, k2, b2 = (p.astype(self.dtype) for p in (k1, b1, k2, b2))
        x = x.astype(self.dtype)
        dropping = self.dropout > 0 and not deterministic
        rows = x.reshape(-1, x.shape[-1])
        if self.token_chunk and not dropping and rows.shape[0] > self.token_chunk:
            return chunked_rows(lambda r: _mlp_rows(r, k1, b1, k2, b2), rows, self.token_chunk).reshape(
                x.shape[:-1] + (out,))
        h = nn.gelu(rows @ k1 + b1, approximate=False)  # rows: see `as_rows`
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        y = (h @ k2 + b2).reshape(x.shape[:-1] + (out,))
        return nn.Dropout(self.dropout)(y, deterministic=deterministic)


def dot_product_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v per head; q [B, Q, H, D], k and v [B, K, H, D] -> [B, Q, H, D].
    The softmax runs in float32 whatever the compute dtype."""
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * q.shape[-1] ** -0.5, k)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


@jax.custom_vjp
def gradient_barrier(x):
    """Identity whose cotangent is materialised (an optimization barrier in the backward pass).

    XLA:CPU otherwise fuses the residual stream's gradient, an elementwise sum over every later
    block, into each consumer that needs it transposed for a weight gradient, recomputing the
    whole chain once per consumer (22% of a 16-block vision transformer's train step). A
    barrier at each block's output keeps that sum in memory, computed once. Forward and
    values unchanged.
    """
    return x


def _barrier_fwd(x):
    return x, None


def _barrier_bwd(_, g):
    # XLA:CPU expands optimization_barrier before fusion; a conditional's operand is always
    # materialised. The predicate is data-dependent so that it is not folded away; both
    # branches return the cotangent (written differently: JAX drops a cond whose branches match).
    keep = jnp.isfinite(g.reshape(-1)[0])
    return (jax.lax.cond(keep, lambda t: t, lambda t: t * 1, g),)


gradient_barrier.defvjp(_barrier_fwd, _barrier_bwd)
