"""DualFormer: local-global stratified transformer for video (Liang et al., ECCV 2022).

Layout B T H W C. The backbone is a 4-stage Twins-SVT made 3D: each stage starts with a
strided Conv3d patch embedding + LayerNorm, then alternates LW-MSA blocks (attention inside
non-overlapping 3D windows) and GP-MSA blocks (every token attends to a few hundred tokens
pooled from the whole volume by depth-wise convs at a fine and, in stages 0-1, a coarse
granularity). A depth-wise 3D conv position encoding (PEG) follows the first block of each
stage. Parameter names follow the official checkpoint (`backbone.blocks.0.1.attn.sr` ->
backbone/blocks_0_1/attn/sr), so conversion is a rename table.

Pooling kernels are derived from the input's token grid exactly as the official code derives
them from `video_size` (kernel = resolution // pyramid size, floor division); a kernel whose
volume is <= 1 turns GP-MSA into full global attention (stage 3 at 32 frames).
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.basic import (DropPath, Mlp, auto_token_chunk, dense, drop_path_rates, torch_bias_init,
                                 torch_conv_init)
from common.layers.depthwise import DepthwiseConv
from common.layers.features import Taps

Dtype = Any
Triple = tuple[int, int, int]

_BASE = dict(patch_size=(2, 4, 4), mlp_ratio=4.0, local_sizes=((8, 7, 7),) * 4,
             fine_pysizes=((8, 7, 7), (8, 7, 7), (8, 7, 7), (16, 7, 7)),
             coarse_pysizes=((4, 4, 4),) * 4)

# The attention-window settings of a variant (configs may override them for shorter clips).
WINDOW_KEYS = ("local_sizes", "fine_pysizes", "coarse_pysizes")

# sail-sg/dualformer configs/_base_/models/dualformer/dualformer_{tiny,small,base}.py
VARIANTS = {
    "dualformer_tiny": dict(_BASE, embed_dims=(64, 128, 256, 512), num_heads=(2, 4, 8, 16), depths=(2, 2, 10, 4)),
    "dualformer_small": dict(_BASE, embed_dims=(96, 192, 384, 768), num_heads=(3, 6, 12, 24), depths=(2, 2, 18, 2)),
    "dualformer_base": dict(_BASE, embed_dims=(128, 256, 512, 1024), num_heads=(4, 8, 16, 32),
                            depths=(2, 2, 18, 2)),
}


def layer_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
    # PyTorch's default eps (the official configs never pass norm_layer).
    return nn.LayerNorm(epsilon=1e-5, dtype=dtype, name=name,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


def conv3d(features: int, kernel: Sequence[int], in_features: int, *, name: str, dtype: Dtype,
           depthwise: bool = False, padding: Any = "VALID", stride: Sequence[int] | None = None) -> nn.Module:
    """Conv3d with PyTorch's default init (the official init function skips Conv3d).

    Depth-wise ones (groups = channels) run as `DepthwiseConv`: the same parameters, 25-200x
    faster than XLA:CPU's grouped convolution at these shapes (see its docstring).
    """
    kernel = tuple(int(k) for k in kernel)
    fan_in = (1 if depthwise else in_features) * int(np.prod(kernel))
    axes = (None, None, None, None, "embed") if depthwise else (None, None, None, "conv_in", "conv_out")
    inits = dict(kernel_init=nn.with_logical_partitioning(torch_conv_init, axes),
                 bias_init=nn.with_logical_partitioning(torch_bias_init(fan_in), (axes[-1],)))
    if depthwise:
        if features != in_features:
            raise ValueError(f"{name}: a depth-wise conv keeps the channels ({in_features} -> {features})")
        return DepthwiseConv(kernel, strides=tuple(stride or kernel), padding=padding, dtype=dtype, name=name,
                             **inits)
    return nn.Conv(features, kernel, strides=tuple(stride or kernel), padding=padding, dtype=dtype, name=name,
                   **inits)


def window_partition(x: jax.Array, size: Triple) -> jax.Array:
    """B D H W C -> B nW (ld lh lw) C; windows in row-major (nd, nh, nw) order."""
    b, d, h, w, c = x.shape
    ld, lh, lw = size
    if d % ld or h % lh or w % lw:
        raise ValueError(f"token grid {(d, h, w)} is not divisible by the local window {size}")
    x = x.reshape(b, d // ld, ld, h // lh, lh, w // lw, lw, c).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(b, -1, ld * lh * lw, c)


def window_merge(x: jax.Array, size: Triple, grid: Triple) -> jax.Array:
    """Inverse of window_partition: B nW L C -> B D H W C."""
    b, c = x.shape[0], x.shape[-1]
    (d, h, w), (ld, lh, lw) = grid, size
    x = x.reshape(b, d // ld, h // lh, w // lw, ld, lh, lw, c).transpose(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, d, h, w, c)


def multi_head_attention(q, k, v, num_heads: int, dtype: Dtype) -> jax.Array:
    """softmax(q k^T / sqrt(hd)) v over the second-to-last axis; q [..., N, C], k/v [..., M, C]."""
    hd = q.shape[-1] // num_heads
    split = lambda t: t.reshape(t.shape[:-1] + (num_heads, hd))
    q, k, v = split(q) * (hd ** -0.5), split(k), split(v)
    logits = jnp.einsum("...nhd,...mhd->...hnm", q, k, preferred_element_type=jnp.float32)
    attn = jax.nn.softmax(logits, axis=-1).astype(dtype)
    out = jnp.einsum("...hnm,...mhd->...nhd", attn, v)
    return out.reshape(out.shape[:-2] + (num_heads * hd,))


class LWAttention(nn.Module):
    """LW-MSA: full attention among the tokens of each non-overlapping 3D window."""
    dim: int
    num_heads: int
    local_size: Triple
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):  # B D H W C
        grid = x.shape[1:4]
        win = window_partition(x, self.local_size)
        qkv = dense(3 * self.dim, ("embed", "heads"), name="qkv", dtype=self.dtype)(win)
        q, k, v = jnp.split(qkv, 3, axis=-1)  # output ordered [q|k|v] x heads x head_dim
        out = multi_head_attention(q, k, v, self.num_heads, self.dtype)
        out = window_merge(out, self.local_size, grid)
        return dense(self.dim, ("heads", "embed"), name="proj", dtype=self.dtype)(out)


def fine_kernel(grid: Sequence[int], fine_pysize: Sequence[int]) -> Triple:
    return tuple(int(r) // int(p) for r, p in zip(grid, fine_pysize))


def coarse_kernels(grid: Sequence[int], coarse_pysize: Sequence[int], first: Sequence[int]) -> tuple[Triple, Triple]:
    """The coarse level's factorised (spatial, then temporal) depth-wise kernels, as official."""
    full = [int(r) // int(p) for r, p in zip(grid, coarse_pysize)]
    return tuple(int(k) for k in first), tuple(f // int(k) for f, k in zip(full, first))


class GPAttention(nn.Module):
    """GP-MSA: each token attends to the pooled pyramid of the whole volume.

    Context = LN(concat[sr(y), lr(y)]) where sr is a depth-wise conv with kernel = stride =
    grid // fine_pysize and (stages < coarse_stages) lr = dwconv(first) -> BN -> ReLU ->
    dwconv(grid // coarse_pysize // first). When the fine kernel volume is <= 1 there is no
    pooling and no norm: plain global attention.
    """
    dim: int
    num_heads: int
    stage: int
    fine_pysize: Triple
    coarse_pysize: Triple
    coarse_first_kernel: Triple = (1, 7, 7)
    coarse_stages: int = 2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):  # B D H W C
        b, d, h, w, c = x.shape
        q = dense(self.dim, ("embed", "heads"), name="q", dtype=self.dtype)(x.reshape(b, -1, c))
        k_fine = fine_kernel((d, h, w), self.fine_pysize)
        if np.prod(k_fine) > 1:
            ctx = [conv3d(c, k_fine, c, name="sr", dtype=self.dtype, depthwise=True)(x).reshape(b, -1, c)]
            if self.stage < self.coarse_stages:
                k1, k2 = coarse_kernels((d, h, w), self.coarse_pysize, self.coarse_first_kernel)
                y = conv3d(c, k1, c, name="lr_0", dtype=self.dtype, depthwise=True)(x)
                y = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
                                 name="lr_1",
                                 scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))(y)
                y = conv3d(c, k2, c, name="lr_3", dtype=self.dtype, depthwise=True)(nn.relu(y))
                ctx.append(y.reshape(b, -1, c))
            ctx = layer_norm("norm", self.dtype)(jnp.concatenate(ctx, axis=1))
        else:
            ctx = x.reshape(b, -1, c)
        kv = dense(2 * self.dim, ("embed", "heads"), name="kv", dtype=self.dtype)(ctx)
        k, v = jnp.split(kv, 2, axis=-1)
        out = multi_head_attention(q, k, v, self.num_heads, self.dtype)
        out = dense(self.dim, ("heads", "embed"), name="proj", dtype=self.dtype)(out)
        return out.reshape(b, d, h, w, c)


class DualFormerBlock(nn.Module):
    """Pre-norm block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x)))."""
    dim: int
    num_heads: int
    local: bool  # True: LW-MSA, False: GP-MSA
    stage: int
    local_size: Triple
    fine_pysize: Triple
    coarse_pysize: Triple
    coarse_first_kernel: Triple = (1, 7, 7)
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: Dtype = jnp.float32
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = layer_norm("norm1", self.dtype)(x)
        if self.local:
            y = LWAttention(self.dim, self.num_heads, self.local_size, self.dtype, name="attn")(y)
        else:
            y = GPAttention(self.dim, self.num_heads, self.stage, self.fine_pysize, self.coarse_pysize,
                            self.coarse_first_kernel, dtype=self.dtype, name="attn")(y, train)
        drop = DropPath(self.drop_path, name="drop_path")
        x = x + drop(y, deterministic=not train)
        y = Mlp(int(self.dim * self.mlp_ratio), dtype=self.dtype, token_chunk=self.token_chunk, name="mlp")(
            layer_norm("norm2", self.dtype)(x))
        return x + drop(y, deterministic=not train)


class PosCNN(nn.Module):
    """PEG: x + depth-wise Conv3d(k=3, pad=1)(x)."""
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        conv = conv3d(c, (3, 3, 3), c, name="proj_0", dtype=self.dtype, depthwise=True,
                      padding=((1, 1),) * 3, stride=(1, 1, 1))
        return x + conv(x)


class PatchEmbed(nn.Module):
    """Conv3d with kernel = stride = patch, then LayerNorm over channels."""
    dim: int
    patch: Triple
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = conv3d(self.dim, self.patch, x.shape[-1], name="proj", dtype=self.dtype)(x)
        return layer_norm("norm", self.dtype)(x)


class DualFormerBackbone(nn.Module):
    """B T H W 3 -> B T/2 H/32 W/32 C4 (official: the NCDHW map after `backbone.norm`).

    Feature taps (common/layers/features.py): "stem" (patch_embeds_0, stride (2, 4, 4)),
    "stage1" .. "stage4" (strides 4, 8, 16, 32 in space), "norm" (the output)."""
    embed_dims: Sequence[int]
    num_heads: Sequence[int]
    depths: Sequence[int]
    patch_size: Triple = (2, 4, 4)
    mlp_ratio: float = 4.0
    local_sizes: Sequence[Triple] = ((8, 7, 7),) * 4
    fine_pysizes: Sequence[Triple] = ((8, 7, 7), (8, 7, 7), (8, 7, 7), (16, 7, 7))
    coarse_pysizes: Sequence[Triple] = ((4, 4, 4),) * 4
    coarse_first_kernel: Triple = (1, 7, 7)
    drop_path_rate: float = 0.0
    dtype: Dtype = jnp.float32
    token_chunk: int = 0

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"stage{i + 1}" for i in range(len(self.depths)))

    @nn.compact
    def __call__(self, x, train: bool = False, features=None):
        taps = Taps.of(features, self.stage_names, ("norm",))
        x = x.astype(self.dtype)
        rates = drop_path_rates(self.drop_path_rate, self.depths)
        for i, depth in enumerate(self.depths):
            patch = tuple(self.patch_size) if i == 0 else (1, 2, 2)  # no temporal pooling after the stem
            x = PatchEmbed(self.embed_dims[i], patch, self.dtype, name=f"patch_embeds_{i}")(x)
            if i == 0 and taps.add("stem", x):
                return taps.out
            for j in range(depth):
                x = DualFormerBlock(
                    self.embed_dims[i], self.num_heads[i], local=(j % 2 == 0), stage=i,
                    local_size=tuple(self.local_sizes[i]), fine_pysize=tuple(self.fine_pysizes[i]),
                    coarse_pysize=tuple(self.coarse_pysizes[i]), coarse_first_kernel=tuple(self.coarse_first_kernel),
                    mlp_ratio=self.mlp_ratio, drop_path=rates[i][j], dtype=self.dtype, token_chunk=self.token_chunk,
                    name=f"blocks_{i}_{j}")(x, train)
                if j == 0:
                    x = PosCNN(self.dtype, name=f"pos_block_{i}")(x)
            if taps.add(f"stage{i + 1}", x):
                return taps.out
        return taps.finish(layer_norm("norm", self.dtype)(x), "norm")


class I3DHead(nn.Module):
    """mmaction I3DHead: mean over D H W -> Dropout -> Linear (init normal std 0.01)."""
    num_classes: int
    dropout: float = 0.5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jnp.mean(x, axis=(1, 2, 3))
        x = nn.Dropout(self.dropout)(x, deterministic=not train)
        return dense(self.num_classes, ("embed", "classes"), name="fc_cls", dtype=self.dtype,
                     kernel_init=nn.initializers.normal(0.01))(x)


class DualFormer(nn.Module):
    """Recognizer3D: backbone + I3D head. Input B T H W 3 -> logits B K (float32);
    `token_chunk` as common.layers.Mlp's. Feature taps (common/layers/features.py): the
    backbone's ("stem", "stage1" .. "stage4", "norm": the official backbone output), "pooled"
    (the head's mean over T H W), "head" (the logits)."""
    embed_dims: Sequence[int]
    num_heads: Sequence[int]
    depths: Sequence[int]
    num_classes: int = 400
    patch_size: Triple = (2, 4, 4)
    mlp_ratio: float = 4.0
    local_sizes: Sequence[Triple] = ((8, 7, 7),) * 4
    fine_pysizes: Sequence[Triple] = ((8, 7, 7), (8, 7, 7), (8, 7, 7), (16, 7, 7))
    coarse_pysizes: Sequence[Triple] = ((4, 4, 4),) * 4
    coarse_first_kernel: Triple = (1, 7, 7)
    drop_path_rate: float = 0.0
    head_dropout: float = 0.5
    dtype: Dtype = jnp.float32
    token_chunk: int = 0

    def setup(self):
        self.backbone = DualFormerBackbone(
            self.embed_dims, self.num_heads, self.depths, self.patch_size, self.mlp_ratio, self.local_sizes,
            self.fine_pysizes, self.coarse_pysizes, self.coarse_first_kernel, self.drop_path_rate, self.dtype,
            self.token_chunk)
        self.cls_head = I3DHead(self.num_classes, self.head_dropout, self.dtype)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"stage{i + 1}" for i in range(len(self.depths)))

    def __call__(self, x, train: bool = False, features=None):
        taps = Taps(features, self.stage_names, ("norm", "pooled", "head"))
        x = self.backbone(x, train, taps)
        if taps.done:
            return taps.out
        if taps.wants("pooled") and taps.add("pooled", jnp.mean(x, axis=(1, 2, 3))):
            return taps.out
        return taps.finish(self.cls_head(x, train).astype(jnp.float32))


def create_model(name: str, num_classes: int = 1000, dtype=jnp.float32, token_chunk: int = -1,
                 **overrides) -> DualFormer:
    """`token_chunk=-1`: common.layers.basic.auto_token_chunk() of this machine, fixed at build time."""
    if name not in VARIANTS:
        raise KeyError(f"unknown DualFormer variant {name!r}; known: {sorted(VARIANTS)}")
    token_chunk = auto_token_chunk() if token_chunk < 0 else token_chunk
    return DualFormer(**{**VARIANTS[name], "num_classes": num_classes, "dtype": dtype, "token_chunk": token_chunk,
                         **overrides})
