"""Causal linear attention (Katharopoulos et al. 2020, "Transformers are RNNs") with the
normalisation of idiap/fast-transformers, in a parallel form for training and a recurrent
form for sampling one step at a time with constant memory.

Per head, with the feature map phi(u) = elu(u) + 1 applied to the raw projected queries and
keys (no 1/sqrt(d) scaling):

    out_i = [sum_{j<=i} (phi(q_i) . phi(k_j)) v_j] * 1 / (phi(q_i) . sum_{j<=i} phi(k_j) + eps)

an inclusive prefix with eps = 1e-6 only in the denominator (fast-transformers
`CausalLinearAttention`; the recurrent dual `RecurrentLinearAttention` carries
S = sum phi(k) v^T [D, M] and z = sum phi(k) [D]).

The parallel form is chunked: inside a chunk of `chunk` positions a masked quadratic
product, across chunks a `lax.scan` that carries (S, z), so memory is O(L * chunk + D * M)
instead of the O(L * D * M) of a cumulative sum of outer products. Everything is computed
in float32 whatever the input dtype (sums over thousands of positions break in bfloat16).

Shapes: q, k [B, L, H, D], v [B, L, H, M] (parallel); [B, H, D] / [B, H, M] per step.
"""
from typing import Any, Callable, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from common.layers.basic import dense, torch_bias_init, torch_linear_init

EPS = 1e-6


def elu_feature_map(x: jax.Array) -> jax.Array:
    return jax.nn.elu(x) + 1.0


@flax.struct.dataclass
class LinearAttentionState:
    """The recurrent state of one attention layer: S [B, H, D, M] and z [B, H, D]."""
    s: jax.Array
    z: jax.Array

    @classmethod
    def zeros(cls, batch: int, heads: int, key_dim: int, value_dim: int) -> "LinearAttentionState":
        return cls(jnp.zeros((batch, heads, key_dim, value_dim), jnp.float32),
                   jnp.zeros((batch, heads, key_dim), jnp.float32))


def causal_linear_attention(q, k, v, *, eps: float = EPS, chunk: int = 64,
                            feature_map: Callable = elu_feature_map,
                            key_mask: jax.Array | None = None) -> jax.Array:
    """Parallel causal linear attention; `key_mask` [B, L] multiplies phi(k) (fast-transformers'
    key length mask; all ones by default). Returns [B, L, H, M] float32."""
    b, length, h, d = q.shape
    m = v.shape[-1]
    fq, fk = feature_map(q.astype(jnp.float32)), feature_map(k.astype(jnp.float32))
    v = v.astype(jnp.float32)
    if key_mask is not None:
        fk = fk * key_mask.astype(jnp.float32)[:, :, None, None]
    c = max(1, min(chunk, length))
    n = -(-length // c)
    pad = n * c - length
    if pad:
        fq, fk, v = (jnp.pad(a, ((0, 0), (0, pad), (0, 0), (0, 0))) for a in (fq, fk, v))
    # [n, B, H, c, D]
    to_chunks = lambda a: a.reshape(b, n, c, h, a.shape[-1]).transpose(1, 0, 3, 2, 4)  # noqa: E731
    fq, fk, v = to_chunks(fq), to_chunks(fk), to_chunks(v)
    causal = jnp.tril(jnp.ones((c, c), jnp.float32))

    def body(carry, xs):
        s, z = carry
        qc, kc, vc = xs
        scores = jnp.einsum("bhid,bhjd->bhij", qc, kc, precision="highest") * causal
        num = jnp.einsum("bhij,bhjm->bhim", scores, vc, precision="highest") + jnp.einsum(
            "bhid,bhdm->bhim", qc, s, precision="highest")
        den = scores.sum(-1) + jnp.einsum("bhid,bhd->bhi", qc, z, precision="highest")
        out = num * (1.0 / (den + eps))[..., None]
        s = s + jnp.einsum("bhjd,bhjm->bhdm", kc, vc, precision="highest")
        z = z + kc.sum(2)
        return (s, z), out

    init = LinearAttentionState.zeros(b, h, d, m)
    _, out = jax.lax.scan(body, (init.s, init.z), (fq, fk, v))
    out = out.transpose(1, 0, 3, 2, 4).reshape(b, n * c, h, m)
    return out[:, :length]


def recurrent_linear_attention(q, k, v, state: LinearAttentionState, *, eps: float = EPS,
                               feature_map: Callable = elu_feature_map):
    """One step: q, k [B, H, D], v [B, H, M] -> (out [B, H, M] float32, new state)."""
    fq, fk = feature_map(q.astype(jnp.float32)), feature_map(k.astype(jnp.float32))
    s = state.s + jnp.einsum("bhd,bhm->bhdm", fk, v.astype(jnp.float32), precision="highest")
    z = state.z + fk
    den = jnp.einsum("bhd,bhd->bh", fq, z, precision="highest")
    out = jnp.einsum("bhd,bhdm->bhm", fq, s, precision="highest") * (1.0 / (den + eps))[..., None]
    return out, LinearAttentionState(s, z)


class CausalLinearAttentionLayer(nn.Module):
    """fast-transformers `AttentionLayer` around causal linear attention: query/key/value
    projections d_model -> H*D (heads split head-major), the attention, out_projection
    H*M -> d_model; PyTorch-default Linear init. `__call__` is the parallel form over
    [B, L, C]; `step` takes one position [B, C] and the layer's state."""
    num_heads: int
    head_dim: int
    d_model: int
    chunk: int = 64
    eps: float = EPS
    dtype: Any = jnp.float32

    def setup(self):
        inner = self.num_heads * self.head_dim
        mk = lambda name, n, fan_in, axes: dense(n, axes, name=name, dtype=self.dtype,  # noqa: E731
                                                 kernel_init=torch_linear_init, bias_init=torch_bias_init(fan_in))
        self.query_projection = mk("query_projection", inner, self.d_model, ("embed", "heads"))
        self.key_projection = mk("key_projection", inner, self.d_model, ("embed", "heads"))
        self.value_projection = mk("value_projection", inner, self.d_model, ("embed", "heads"))
        self.out_projection = mk("out_projection", self.d_model, inner, ("heads", "embed"))

    def _heads(self, x):
        return x.reshape(*x.shape[:-1], self.num_heads, self.head_dim)

    def __call__(self, x: jax.Array, key_mask: jax.Array | None = None) -> jax.Array:
        q, k, v = (self._heads(p(x)) for p in (self.query_projection, self.key_projection, self.value_projection))
        out = causal_linear_attention(q, k, v, eps=self.eps, chunk=self.chunk, key_mask=key_mask)
        return self.out_projection(out.reshape(*x.shape[:-1], -1).astype(self.dtype))

    def step(self, x: jax.Array, state: LinearAttentionState):
        q, k, v = (self._heads(p(x)) for p in (self.query_projection, self.key_projection, self.value_projection))
        out, state = recurrent_linear_attention(q, k, v, state, eps=self.eps)
        return self.out_projection(out.reshape(*x.shape[:-1], -1).astype(self.dtype)), state

    def init_state(self, batch: int) -> LinearAttentionState:
        return LinearAttentionState.zeros(batch, self.num_heads, self.head_dim, self.head_dim)


def state_bytes(states: Sequence[LinearAttentionState]) -> int:
    """Bytes of a stack of recurrent states (the per-step memory of sampling)."""
    return sum(int(a.size) * a.dtype.itemsize for st in states for a in (st.s, st.z))
