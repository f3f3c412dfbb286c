"""Vision Permutator (ViP), Hou et al. 2021 — Flax port of houqb/VisionPermutator:models/vip.py.

Tokens are channels-last B H W C throughout. A Permutator block is
    x <- x + DropPath(WeightedPermuteMLP(LN(x))) / skip_lam
    x <- x + DropPath(ChannelMLP(LN(x))) / skip_lam.
Weighted Permute-MLP splits C into G contiguous segments of S = C / G channels
(c = g*S + s) and mixes, per segment, all (height, s) pairs with one linear layer
(h-branch), all (width, s) pairs with another (w-branch), plus a per-token C x C
projection (c-branch); the three outputs are fused with per-channel softmax weights
predicted from their pooled sum, then projected. Because the official mlp_h / mlp_w
are C x C, a stage's token grid must satisfy H * S = W * S = C (segment_dim = H = W).

Parameter names mirror the official checkpoint (`network.{k}.{j}.attn.mlp_h` ->
`network_{k}_{j}/attn/mlp_h`), so permutator/convert.py is a rename table.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from common.layers import DropPath, Mlp, dense, drop_path_rates, torch_conv_init, trunc_normal
from common.layers.basic import auto_token_chunk, torch_bias_init
from common.layers.features import Taps

Dtype = Any

# houqb/VisionPermutator:models/vip.py, functions vip_s14 / vip_s7 / vip_m7 / vip_l7.
VARIANTS = {
    "vip_s14": dict(patch_size=14, layers=(4, 3, 8, 3), transitions=(False, False, False, False),
                    segment_dim=(16, 16, 16, 16), mlp_ratios=(3, 3, 3, 3),
                    embed_dims=(384, 384, 384, 384)),
    "vip_s7": dict(patch_size=7, layers=(4, 3, 8, 3), transitions=(True, False, False, False),
                   segment_dim=(32, 16, 16, 16), mlp_ratios=(3, 3, 3, 3),
                   embed_dims=(192, 384, 384, 384)),
    "vip_m7": dict(patch_size=7, layers=(4, 3, 14, 3), transitions=(False, True, False, False),
                   segment_dim=(32, 32, 16, 16), mlp_ratios=(3, 3, 3, 3),
                   embed_dims=(256, 256, 512, 512)),
    "vip_l7": dict(patch_size=7, layers=(8, 8, 16, 4), transitions=(True, False, False, False),
                   segment_dim=(32, 16, 16, 16), mlp_ratios=(3, 3, 3, 3),
                   embed_dims=(256, 512, 512, 512)),
}


def layer_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
    """PyTorch nn.LayerNorm defaults (eps 1e-5), with logical axis names."""
    return nn.LayerNorm(
        epsilon=1e-5, dtype=dtype, name=name,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


# ----------------------------------------------------------------- the permute operations
def mix_height(x: jax.Array, kernel: jax.Array, segment_dim: int) -> jax.Array:
    """h-branch: out[b,i,w,g*S+t] = sum_{h,s} x[b,h,w,g*S+s] * kernel[h*S+s, i*S+t].

    x: B H W C; kernel: (H*S, H*S) in Dense (in, out) layout, S = C // segment_dim.
    The (height, s) pairs are moved last by hand and mixed by one 2-D matmul, as the
    official code does: XLA:CPU's layout for the equivalent einsum ("bhwgs,hsit->biwgt")
    made fwd+bwd 1.4x (stage 2) to 1.9x (stage 1) slower (benchmarks/results.md).
    """
    b, h, w, c = x.shape
    s = c // segment_dim
    rows = x.reshape(b, h, w, segment_dim, s).transpose(0, 2, 3, 1, 4).reshape(-1, h * s)
    y = (rows @ kernel).reshape(b, w, segment_dim, h, s)
    return y.transpose(0, 3, 1, 2, 4).reshape(b, h, w, c)


def mix_width(x: jax.Array, kernel: jax.Array, segment_dim: int) -> jax.Array:
    """w-branch: out[b,h,v,g*S+t] = sum_{w,s} x[b,h,w,g*S+s] * kernel[w*S+s, v*S+t]."""
    b, h, w, c = x.shape
    s = c // segment_dim
    rows = x.reshape(b, h, w, segment_dim, s).transpose(0, 1, 3, 2, 4).reshape(-1, w * s)
    y = (rows @ kernel).reshape(b, h, segment_dim, w, s)
    return y.transpose(0, 1, 3, 2, 4).reshape(b, h, w, c)


def branch_weights(logits: jax.Array) -> jax.Array:
    """reweight output B x 3C (interleaved: branch k of channel c at 3c+k) -> softmax B x C x 3."""
    b, c3 = logits.shape
    return jax.nn.softmax(logits.reshape(b, c3 // 3, 3).astype(jnp.float32), axis=-1)


class AxisMix(nn.Module):
    """A bias-free C x C linear layer applied along the height or the width axis (mlp_h/mlp_w)."""
    segment_dim: int
    axis: str  # "height" | "width"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        kernel = self.param("kernel", nn.with_logical_partitioning(trunc_normal(0.02), ("embed", "mlp")),
                            (c, c), jnp.float32).astype(self.dtype)
        mix = mix_height if self.axis == "height" else mix_width
        return mix(x.astype(self.dtype), kernel, self.segment_dim)


def check_segments(height: int, width: int, channels: int, segment_dim: int) -> None:
    """The official mlp_h / mlp_w are C x C, so H * (C / segment_dim) and W * (C / segment_dim) must be C."""
    if channels % segment_dim:
        raise ValueError(f"segment_dim {segment_dim} does not divide the {channels} channels")
    s = channels // segment_dim
    if height * s != channels or width * s != channels:
        raise ValueError(
            f"Weighted Permute-MLP needs a {segment_dim}x{segment_dim} token grid for C={channels}, "
            f"segment_dim={segment_dim} (H*S = W*S = C with S = C/segment_dim), got {height}x{width}; "
            "ViP runs only at the input size its segment_dim was built for")


class WeightedPermuteMLP(nn.Module):
    segment_dim: int
    dtype: Dtype = jnp.float32
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x):
        _, height, width, c = x.shape
        check_segments(height, width, c, self.segment_dim)
        h = AxisMix(self.segment_dim, "height", self.dtype, name="mlp_h")(x)
        w = AxisMix(self.segment_dim, "width", self.dtype, name="mlp_w")(x)
        cb = dense(c, ("embed", "mlp"), use_bias=False, dtype=self.dtype, name="mlp_c")(x)
        pooled = jnp.mean(h + w + cb, axis=(1, 2))  # B C: mean of the raw sum (before weighting)
        logits = Mlp(c // 4, 3 * c, dtype=self.dtype, token_chunk=self.token_chunk, name="reweight")(pooled)
        alpha = branch_weights(logits).astype(h.dtype)[:, None, None]  # B 1 1 C 3
        x = h * alpha[..., 0] + w * alpha[..., 1] + cb * alpha[..., 2]
        return dense(c, ("mlp", "embed"), dtype=self.dtype, name="proj")(x)


class PermutatorBlock(nn.Module):
    segment_dim: int
    mlp_ratio: float = 3.0
    drop_path: float = 0.0
    skip_lam: float = 1.0
    dtype: Dtype = jnp.float32
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x, train: bool = False):
        c = x.shape[-1]
        drop = DropPath(self.drop_path, name="drop_path")
        y = WeightedPermuteMLP(self.segment_dim, self.dtype, self.token_chunk, name="attn")(
            layer_norm("norm1", self.dtype)(x))
        x = x + drop(y, deterministic=not train) / self.skip_lam
        y = Mlp(int(c * self.mlp_ratio), dtype=self.dtype, token_chunk=self.token_chunk, name="mlp")(
            layer_norm("norm2", self.dtype)(x))
        return x + drop(y, deterministic=not train) / self.skip_lam


class PatchConv(nn.Module):
    """Non-overlapping conv (kernel = stride = patch) with bias: the patch embedding and Downsample."""
    features: int
    patch: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1] * self.patch * self.patch
        return nn.Conv(
            self.features, (self.patch, self.patch), strides=self.patch, padding="VALID",
            dtype=self.dtype, name="proj",
            kernel_init=nn.with_logical_partitioning(torch_conv_init, (None, None, "conv_in", "conv_out")),
            bias_init=nn.with_logical_partitioning(torch_bias_init(fan_in), ("conv_out",)))(x)


class VisionPermutator(nn.Module):
    """`token_chunk` as common.layers.Mlp's. Feature taps (common/layers/features.py): "stem"
    (patch_embed), "stage1" .. "stage4" (each stage's blocks, before the next Downsample),
    "norm" (the last map after the final norm), "pooled", "head" (the logits)."""
    layers: Sequence[int]
    embed_dims: Sequence[int]
    segment_dim: Sequence[int]
    transitions: Sequence[bool]
    mlp_ratios: Sequence[float]
    patch_size: int
    num_classes: int = 1000
    drop_path_rate: float = 0.0
    skip_lam: float = 1.0
    dtype: Dtype = jnp.float32
    token_chunk: int = 0

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"stage{i + 1}" for i in range(len(self.layers)))

    @nn.compact
    def __call__(self, x, train: bool = False, features=None):
        """x: B H W 3 images -> logits B num_classes (float32)."""
        taps = Taps(features, self.stage_names, ("norm", "pooled", "head"))
        x = PatchConv(self.embed_dims[0], self.patch_size, self.dtype, name="patch_embed")(x)
        if taps.add("stem", x):
            return taps.out
        rates = drop_path_rates(self.drop_path_rate, self.layers)
        k = 0  # index into the official `network` ModuleList (blocks and Downsamples share it)
        for i, depth in enumerate(self.layers):
            for j in range(depth):
                x = PermutatorBlock(self.segment_dim[i], self.mlp_ratios[i], rates[i][j], self.skip_lam,
                                    self.dtype, self.token_chunk, name=f"network_{k}_{j}")(x, train)
            if taps.add(f"stage{i + 1}", x):
                return taps.out
            k += 1
            if i == len(self.layers) - 1:
                break
            if self.transitions[i] or self.embed_dims[i] != self.embed_dims[i + 1]:
                patch = 2 if self.transitions[i] else 1
                x = PatchConv(self.embed_dims[i + 1], patch, self.dtype, name=f"network_{k}")(x)
                k += 1
        x = layer_norm("norm", self.dtype)(x)
        if taps.add("norm", x):
            return taps.out
        x = jnp.mean(x, axis=(1, 2))
        if taps.add("pooled", x):
            return taps.out
        x = dense(self.num_classes, ("embed", "classes"), dtype=self.dtype, name="head")(x)
        return taps.finish(x.astype(jnp.float32))


def create_model(name: str, num_classes: int = 1000, dtype: Dtype = jnp.float32, token_chunk: int = -1,
                 **overrides) -> VisionPermutator:
    """A named variant (`vip_s7`, ...) with optional field overrides (e.g. drop_path_rate, tiny widths);
    `token_chunk=-1`: common.layers.basic.auto_token_chunk() of this machine, fixed at build time."""
    if name not in VARIANTS:
        raise KeyError(f"unknown ViP variant {name!r}; known: {', '.join(VARIANTS)}")
    cfg = {**VARIANTS[name], **overrides}
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    if isinstance(dtype, str):
        dtype = jnp.dtype(dtype)
    token_chunk = auto_token_chunk() if token_chunk < 0 else token_chunk
    return VisionPermutator(num_classes=num_classes, dtype=dtype, token_chunk=token_chunk, **cfg)
