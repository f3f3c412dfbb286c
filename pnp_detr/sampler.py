"""The poll-and-pool sampler of PnP-DETR (paper Sec. 3; official models/transformer.py
`SortSampler`), with static shapes.

Official semantics, per image b with V_b valid feature cells:
- scores s = sigmoid(score_pred_net(x)) on the un-normalised projected features x;
- cells are ranked by stop_gradient(s), padded cells last; the top n_b = trunc(float32(V_b)
  * alpha) are polled: fine token = LayerNorm(x) * s (the only task-loss path into the score
  net), with the position embedding of its cell;
- the other valid cells are pooled into M coarse tokens: logits k_proj(LayerNorm(x)),
  softmax over those cells per coarse token, coarse = sum a * v_proj(LayerNorm(x)) and
  coarse pos = sum a * pos with the same weights; coarse tokens are never masked;
- sample_reg_loss = mean of s over the first N_max = max_b n_b polled slots of every image
  (masked slots included).

Static shapes: the fine slots have a fixed capacity N_cap and are masked beyond n_b. A
Python-float alpha gives N_cap = trunc(float32(L) * alpha) (one program per alpha); a jax
scalar (traced, e.g. drawn per training step) gives N_cap = trunc(float32(L) * max_alpha),
and n_b is clipped to N_cap. Unmasked outputs are those of the official code.

Deviations, all outside the official code's defined behaviour:
- an image with no cell left to pool (alpha near 1 on a tiny image) gets zero coarse
  tokens and positions, where the official softmax over an empty set gives NaN;
- with N_max = 0 the regulariser is 0 (the official mean over nothing is NaN);
- torch's (unstable) sort orders the tied padded cells arbitrarily; here they follow in
  index order. This changes only which padded cells' scores enter the regulariser when
  an image has fewer valid cells than N_max.
v_proj is applied after pooling, (sum a LN(x)) W + b: equal to the official sum a (LN(x) W + b)
because the weights sum to one, and it costs M instead of L projections.
"""
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.basic import Dtype, dense, torch_bias_init, torch_linear_init

# score_pred_net options: hidden width (None: d, the input width) or no hidden layer
SCORE_NETS = {"2layer-fc-256": (None,), "2layer-fc-16": (16,), "1layer-fc": ()}
POOL_LOGIT_NETS = ("1layer-fc", "2layer-fc")
LN_EPS = 1e-5


class SampledTokens(NamedTuple):
    tokens: jax.Array       # [B, N_cap + M, d]: fine slots, then coarse tokens
    pos: jax.Array          # [B, N_cap + M, d] float32
    valid: jax.Array        # [B, N_cap + M] bool, True where attended
    poll_index: jax.Array   # [B, N_cap] int32: the feature cell (flat index) of each fine slot
    poll_valid: jax.Array   # [B, N_cap] bool: slot j < n_b
    sample_reg_loss: jax.Array   # scalar float32


def is_static(alpha) -> bool:
    return isinstance(alpha, (int, float, np.floating))


def slot_capacity(num_cells: int, alpha, max_alpha: float) -> int:
    """N_cap: the largest n_b that alpha (static) or any alpha <= max_alpha (traced) gives."""
    ratio = alpha if is_static(alpha) else max_alpha
    return int(np.float32(num_cells) * np.float32(ratio))


def poll_counts(valid, alpha, capacity: int):
    """n_b = trunc(float32(#valid cells) * alpha), as the official `sample_lens`; [B] int32."""
    n = (valid.sum(axis=1).astype(jnp.float32) * jnp.asarray(alpha, jnp.float32)).astype(jnp.int32)
    return jnp.minimum(n, capacity)


def normalize(x):
    """nn.LayerNorm(d, elementwise_affine=False), eps 1e-5, in float32."""
    x = x.astype(jnp.float32)
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + LN_EPS)


def take_cells(x, index):
    """x [B, L, ...] at index [B, N] -> [B, N, ...]."""
    return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


def pool_weights(logits, candidate):
    """Softmax over the cells (axis 1) of logits [B, L, M], restricted to candidate [B, L];
    all zeros for an image without candidates."""
    logits = jnp.where(candidate[..., None], logits, -jnp.inf)
    top = jax.lax.stop_gradient(jnp.max(logits, axis=1, keepdims=True))
    e = jnp.where(candidate[..., None], jnp.exp(logits - jnp.where(jnp.isfinite(top), top, 0.0)), 0.0)
    total = e.sum(axis=1, keepdims=True)
    return e / jnp.where(total > 0, total, 1.0)


def torch_dense(features: int, fan_in: int, axes, name: str, dtype: Dtype):
    """A Linear / 1x1 conv with PyTorch's default init U(+-1/sqrt(fan_in))."""
    return dense(features, axes, name=name, dtype=dtype, kernel_init=torch_linear_init,
                 bias_init=torch_bias_init(fan_in))


class SortSampler(nn.Module):
    """x [B, L, d] projected features, valid [B, L] bool (True = un-padded cell), pos
    [B, L, d] -> SampledTokens. Parameter names are the official ones (`score_pred_net_0`
    is `score_pred_net.0`); the initialisation is PyTorch's default."""
    num_pool_tokens: int = 30
    score_net: str = "2layer-fc-256"
    pool_logits_net: str = "1layer-fc"
    pos_in_pool_logits: bool = False
    max_alpha: float = 0.8
    dtype: Dtype = jnp.float32

    def score(self, x):
        if self.score_net not in SCORE_NETS:
            raise ValueError(f"unknown score_net {self.score_net!r}; known: {sorted(SCORE_NETS)}")
        hidden = SCORE_NETS[self.score_net]
        if not hidden:
            return torch_dense(1, x.shape[-1], ("embed", None), "score_pred_net", self.dtype)(x)
        width = hidden[0] or x.shape[-1]
        h = nn.relu(torch_dense(width, x.shape[-1], ("embed", "mlp"), "score_pred_net_0", self.dtype)(x))
        return torch_dense(1, width, ("mlp", None), "score_pred_net_2", self.dtype)(h)

    def pool_logits(self, x):
        d, m = x.shape[-1], self.num_pool_tokens
        if self.pool_logits_net == "1layer-fc":
            return torch_dense(m, d, ("embed", None), "k_proj", self.dtype)(x)
        if self.pool_logits_net != "2layer-fc":
            raise ValueError(f"unknown pool_logits_net {self.pool_logits_net!r}; known: {POOL_LOGIT_NETS}")
        h = nn.relu(torch_dense(d, d, ("embed", "mlp"), "k_proj_0", self.dtype)(x))
        return torch_dense(m, d, ("mlp", None), "k_proj_2", self.dtype)(h)

    @nn.compact
    def __call__(self, x, valid, pos, alpha) -> SampledTokens:
        b, cells, d = x.shape
        scores = jax.nn.sigmoid(self.score(x.astype(self.dtype)).astype(jnp.float32))[..., 0]     # [B, L]
        rank_key = jnp.where(valid, jax.lax.stop_gradient(scores), -1.0)
        capacity = slot_capacity(cells, alpha, self.max_alpha)
        n = poll_counts(valid, alpha, capacity)
        _, index = jax.lax.top_k(rank_key, capacity)           # descending; ties: lower index first
        slot_valid = jnp.arange(capacity)[None] < n[:, None]   # [B, N_cap]

        normed = normalize(x)
        polled_scores = take_cells(scores, index)
        fine = take_cells(normed, index) * polled_scores[..., None]
        fine_pos = take_cells(pos, index)

        polled = jnp.zeros((b, cells), bool).at[jnp.arange(b)[:, None], index].set(slot_valid)
        candidate = valid & ~polled
        logits_input = normed + pos if self.pos_in_pool_logits else normed
        weights = pool_weights(self.pool_logits(logits_input.astype(self.dtype)).astype(jnp.float32), candidate)
        pooled = jnp.einsum("blm,bld->bmd", weights, normed)
        has_candidates = candidate.any(axis=1)[:, None, None]
        coarse = torch_dense(d, d, ("embed", "mlp"), "v_proj", self.dtype)(pooled.astype(self.dtype))
        coarse = jnp.where(has_candidates, coarse.astype(jnp.float32), 0.0)
        coarse_pos = jnp.einsum("blm,bld->bmd", weights, pos.astype(jnp.float32))

        n_max = n.max()
        in_first_n_max = jnp.arange(capacity)[None] < n_max
        reg = jnp.where(in_first_n_max, polled_scores, 0.0).sum() / (b * jnp.maximum(n_max, 1)).astype(jnp.float32)

        m = self.num_pool_tokens
        return SampledTokens(
            tokens=jnp.concatenate([fine, coarse], axis=1).astype(self.dtype),
            pos=jnp.concatenate([fine_pos.astype(jnp.float32), coarse_pos], axis=1),
            valid=jnp.concatenate([slot_valid, jnp.ones((b, m), bool)], axis=1),
            poll_index=index.astype(jnp.int32), poll_valid=slot_valid, sample_reg_loss=reg)
