"""MetaFormer / PoolFormer (Yu et al., CVPR 2022), NHWC, faithful to sail-sg/poolformer.

Block:  x = x + DropPath(ls1 * Mixer(Norm1(x)));  x = x + DropPath(ls2 * Mlp(Norm2(x)))
Mixers: pooling (AvgPool3x3, count_include_pad=False, minus the input), identity,
attention (head_dim 32), spatial FC over the tokens, frozen random mixing.
Module names follow the official checkpoint (`patch_embed`, `network_<i>[_<j>]`, `norm`,
`head`) so metaformer/convert.py is a rename table. The head is the official one
(GroupNorm on the whole map -> mean -> fc), not timm's pool -> LayerNorm -> fc.
"""
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers import DropPath, Mlp, dense, dot_product_attention, drop_path_rates
from common.layers.basic import auto_token_chunk, torch_bias_init, torch_conv_init
from common.layers.features import Taps

# Stage layout of the released models (paper Table 1 / official sail-sg/poolformer models/poolformer.py,
# poolformer_s12..poolformer_m48).
S_DIMS, M_DIMS = (64, 128, 320, 512), (96, 192, 384, 768)
VARIANTS = {
    "poolformer_s12": dict(depths=(2, 2, 6, 2), dims=S_DIMS, layer_scale_init=1e-5, crop_pct=0.9),
    "poolformer_s24": dict(depths=(4, 4, 12, 4), dims=S_DIMS, layer_scale_init=1e-5, crop_pct=0.9),
    "poolformer_s36": dict(depths=(6, 6, 18, 6), dims=S_DIMS, layer_scale_init=1e-6, crop_pct=0.9),
    "poolformer_m36": dict(depths=(6, 6, 18, 6), dims=M_DIMS, layer_scale_init=1e-6, crop_pct=0.95),
    "poolformer_m48": dict(depths=(8, 8, 24, 8), dims=M_DIMS, layer_scale_init=1e-6, crop_pct=0.95),
    # Ablation / hybrid models of official models/metaformer.py (paper Table 5): S12 layout.
    "metaformer_id_s12": dict(depths=(2, 2, 6, 2), dims=S_DIMS, mixers=("identity",) * 4, crop_pct=0.9),
    "metaformer_pppa_s12_224": dict(depths=(2, 2, 6, 2), dims=S_DIMS, norm="ln", crop_pct=0.95,
                                    mixers=("pooling", "pooling", "pooling", "attention"),
                                    pos_embed_stages=(3,)),
    "metaformer_ppaa_s12_224": dict(depths=(2, 2, 6, 2), dims=S_DIMS, norm="ln", crop_pct=0.95,
                                    mixers=("pooling", "pooling", "attention", "attention"),
                                    pos_embed_stages=(2,)),
    "metaformer_pppf_s12_224": dict(depths=(2, 2, 6, 2), dims=S_DIMS, crop_pct=0.9,
                                    mixers=("pooling", "pooling", "pooling", "spatial_fc")),
    "metaformer_ppff_s12_224": dict(depths=(2, 2, 6, 2), dims=S_DIMS, crop_pct=0.95,
                                    mixers=("pooling", "pooling", "spatial_fc", "spatial_fc")),
}
# Ablation (paper Table 5): frozen random token mixing, not released officially.
VARIANTS["metaformer_random_s12"] = dict(depths=(2, 2, 6, 2), dims=S_DIMS, mixers=("random",) * 4,
                                         crop_pct=0.9)


def norm_layer(kind: str, name: str, dtype) -> nn.Module:
    """GN(1) ("MLN": stats over H, W, C) or LayerNormChannel (over C); eps 1e-5 as official."""
    scale = nn.with_logical_partitioning(nn.initializers.ones, ("embed",))
    bias = nn.with_logical_partitioning(nn.initializers.zeros, ("embed",))
    if kind == "gn":
        return nn.GroupNorm(num_groups=1, epsilon=1e-5, use_fast_variance=False, dtype=dtype,
                            scale_init=scale, bias_init=bias, name=name)
    if kind == "ln":
        return nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, dtype=dtype,
                            scale_init=scale, bias_init=bias, name=name)
    raise ValueError(f"unknown norm {kind!r}: gn | ln")


class ConvEmbed(nn.Module):
    """Stem (7x7/4, pad 2) and downsampling (3x3/2, pad 1) convs: bias, no norm, PyTorch init."""
    features: int
    kernel: int
    stride: int
    padding: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1] * self.kernel * self.kernel
        return nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                       padding=[(self.padding, self.padding)] * 2, dtype=self.dtype, name="proj",
                       kernel_init=nn.with_logical_partitioning(
                           torch_conv_init, (None, None, "conv_in", "conv_out")),
                       bias_init=nn.with_logical_partitioning(torch_bias_init(fan_in), ("conv_out",)))(x)


def _box_sum(x, k: int):
    """Sum over the k x k window around each pixel of [B, H, W, C] (zero padding), as shifted
    slices; NumPy in, NumPy out (the constant counts below), else JAX."""
    h, w, p = x.shape[1], x.shape[2], k // 2
    xp = (np if isinstance(x, np.ndarray) else jnp).pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    return sum(xp[:, i:i + h, j:j + w] for i in range(k) for j in range(k))


def _inverse_counts(h: int, w: int, k: int) -> np.ndarray:
    """[1, H, W, 1]: 1 / the number of in-image pixels of each k x k window (count_include_pad=False)."""
    return 1.0 / _box_sum(np.ones((1, h, w, 1), np.float32), k)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def pool_minus_identity(x, k: int):
    """AvgPool(k, stride 1, pad k//2, count_include_pad=False)(x) - x.

    As shifted slices rather than XLA:CPU's reduce-window (3x faster forward at stage-1 shapes),
    with the backward written out: the box sum is its own adjoint, so the input gradient is
    box_sum(g / counts) - g (autodiff of the slices would pad and add 9 copies: 4x slower than
    reduce-window's backward). `python benchmarks/pooling_micro.py` measures both.
    """
    return _box_sum(x, k) * _inverse_counts(x.shape[1], x.shape[2], k).astype(x.dtype) - x


def _pool_fwd(x, k):
    return pool_minus_identity(x, k), None


def _pool_bwd(k, _, g):
    return (_box_sum(g * _inverse_counts(g.shape[1], g.shape[2], k).astype(g.dtype), k) - g,)


pool_minus_identity.defvjp(_pool_fwd, _pool_bwd)


class Pooling(nn.Module):
    """AvgPool(K, stride 1, pad K//2, count_include_pad=False)(x) - x."""
    pool_size: int = 3

    @nn.compact
    def __call__(self, x):
        return pool_minus_identity(x, self.pool_size)


class Attention(nn.Module):
    """MHSA over the H*W tokens (row-major), head_dim 32, qkv without bias."""
    head_dim: int = 32
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        heads = c // self.head_dim
        t = x.reshape(b, h * w, c)
        qkv = dense(3 * c, ("embed", "heads"), name="qkv", use_bias=False, dtype=self.dtype)(t)
        qkv = qkv.reshape(b, h * w, 3, heads, self.head_dim)
        out = dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]).reshape(b, h * w, c)
        out = dense(c, ("heads", "embed"), name="proj", dtype=self.dtype)(out)
        return out.reshape(b, h, w, c)


class SpatialFc(nn.Module):
    """y[b, m, c] = sum_n W[m, n] x[b, n, c] over a fixed number of tokens N = H*W."""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        t = jnp.swapaxes(x.reshape(b, h * w, c), 1, 2)          # B C N
        t = dense(h * w, ("tokens", None), name="fc", use_bias=False, dtype=self.dtype)(t)
        return jnp.swapaxes(t, 1, 2).reshape(b, h, w, c)


class RandomMixing(nn.Module):
    """X' = softmax(U[0,1) N x N) X, frozen: kept in the non-trainable `constants` collection."""

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        n = h * w
        mat = self.variable("constants", "random_matrix",
                            lambda: jax.nn.softmax(jax.random.uniform(self.make_rng("params"), (n, n)),
                                                   axis=-1))
        t = jnp.einsum("mn,bnc->bmc", mat.value.astype(x.dtype), x.reshape(b, n, c))
        return t.reshape(b, h, w, c)


def make_mixer(kind: str, pool_size: int, dtype) -> nn.Module:
    if kind == "pooling":
        return Pooling(pool_size, name="token_mixer")
    if kind == "attention":
        return Attention(dtype=dtype, name="token_mixer")
    if kind == "spatial_fc":
        return SpatialFc(dtype=dtype, name="token_mixer")
    if kind == "random":
        return RandomMixing(name="token_mixer")
    if kind == "identity":
        return lambda x: x
    raise ValueError(f"unknown token mixer {kind!r}")


class MetaFormerBlock(nn.Module):
    mixer: str = "pooling"
    norm: str = "gn"
    pool_size: int = 3
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dropout: float = 0.0
    layer_scale_init: float = 1e-5
    dtype: jnp.dtype = jnp.float32
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x, train: bool = False):
        c = x.shape[-1]
        ls = nn.with_logical_partitioning(nn.initializers.constant(self.layer_scale_init), ("embed",))
        ls1 = self.param("layer_scale_1", ls, (c,))
        ls2 = self.param("layer_scale_2", ls, (c,))
        y = make_mixer(self.mixer, self.pool_size, self.dtype)(norm_layer(self.norm, "norm1", self.dtype)(x))
        x = x + DropPath(self.drop_path)(ls1.astype(y.dtype) * y, deterministic=not train)
        y = Mlp(int(c * self.mlp_ratio), dropout=self.dropout, dtype=self.dtype, token_chunk=self.token_chunk,
                name="mlp")(
            norm_layer(self.norm, "norm2", self.dtype)(x), deterministic=not train)
        return x + DropPath(self.drop_path)(ls2.astype(y.dtype) * y, deterministic=not train)


class MetaFormer(nn.Module):
    """Four stages (strides 4/8/16/32); `token_chunk` as common.layers.Mlp's.

    Feature taps (common/layers/features.py): "stem" (patch_embed, stride 4), "stage1" ..
    "stage4", "norm" (the last map after the final norm), "pooled", "head". The dense-prediction
    backbone of the official detection / segmentation code (`fork_feat`) passes the stage maps
    of the levels in `out_norm_levels` through their own GN(1) (`norm0/2/4/6`): (0, 1, 2, 3),
    RetinaNet mode (1, 2, 3)."""
    depths: Sequence[int] = (2, 2, 6, 2)
    dims: Sequence[int] = S_DIMS
    mixers: Sequence[str] = ("pooling",) * 4
    norm: str = "gn"
    pool_size: int = 3
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    layer_scale_init: float = 1e-5
    pos_embed_stages: Sequence[int] = ()
    out_norm_levels: Sequence[int] = ()
    crop_pct: float = 0.9
    dtype: jnp.dtype = jnp.float32
    token_chunk: int = 0

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"stage{i + 1}" for i in range(len(self.depths)))

    @nn.compact
    def __call__(self, x, train: bool = False, features=None):
        taps = Taps(features, self.stage_names, ("norm", "pooled", "head"))
        x = x.astype(self.dtype)
        x = ConvEmbed(self.dims[0], 7, 4, 2, self.dtype, name="patch_embed")(x)
        if taps.add("stem", x):
            return taps.out
        rates = drop_path_rates(self.drop_path_rate, self.depths)
        index = 0     # position in the official `network` list
        for i, depth in enumerate(self.depths):
            if i > 0:
                x = ConvEmbed(self.dims[i], 3, 2, 1, self.dtype, name=f"network_{index}")(x)
                index += 1
            if i in self.pos_embed_stages:
                pos = self.param(f"network_{index}", nn.with_logical_partitioning(
                    nn.initializers.zeros, (None, None, None, "embed")), (1,) + x.shape[1:])
                x = x + pos.astype(x.dtype)
                index += 1
            for j in range(depth):
                x = MetaFormerBlock(self.mixers[i], self.norm, self.pool_size, self.mlp_ratio, rates[i][j],
                                    self.drop_rate, self.layer_scale_init, self.dtype, self.token_chunk,
                                    name=f"network_{index}_{j}")(x, train)
            if taps.wants(f"stage{i + 1}"):
                out = norm_layer("gn", f"norm{index}", self.dtype)(x) if i in self.out_norm_levels else x
                if taps.add(f"stage{i + 1}", out):
                    return taps.out
            index += 1
        x = norm_layer(self.norm, "norm", self.dtype)(x)
        if taps.add("norm", x):
            return taps.out
        x = jnp.mean(x, axis=(1, 2))
        if taps.add("pooled", x):
            return taps.out
        return taps.finish(dense(self.num_classes, ("embed", "classes"), name="head", dtype=self.dtype)(x))


def create_model(name: str, num_classes: int = 1000, dtype=jnp.float32, token_chunk: int = -1,
                 **overrides) -> MetaFormer:
    """`token_chunk=-1`: common.layers.basic.auto_token_chunk() of this machine, fixed at build time."""
    if name not in VARIANTS:
        raise KeyError(f"unknown MetaFormer variant {name!r}; known: {sorted(VARIANTS)}")
    token_chunk = auto_token_chunk() if token_chunk < 0 else token_chunk
    return MetaFormer(**{**VARIANTS[name], "num_classes": num_classes, "dtype": dtype, "token_chunk": token_chunk,
                         **overrides})
