"""VOLO: Vision Outlooker (Yuan et al., TPAMI 2022), NHWC, faithful to sail-sg/volo / timm.

Stage 1 ("Outlookers", stride 8): outlook attention builds, from each (2x2-pooled)
location's own feature, a K^2 x K^2 attention over its K x K neighbourhood, aggregates the
unfolded values and folds the windows back, summing overlaps. Stage 2 (stride 16): a
learned position embedding and plain MHSA blocks, then two class-attention blocks on a
class token, a final LayerNorm, the class head and the token-labeling aux head.
Eval output = head(cls) + 0.5 * max over tokens of aux_head(tokens) (official).
Module names follow the official checkpoint, so volo/convert.py is a rename table.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers import DropPath, Mlp, dense, dot_product_attention, gradient_barrier
from common.layers.banded_conv import BandedConv
from common.layers.basic import auto_token_chunk, torch_bias_init, torch_conv_init, trunc_normal
from common.layers.features import Taps

# sail-sg/volo models/volo.py, functions volo_d1..volo_d5; the resolution suffix only changes
# the position-embedding grid (image_size / 16).
_D = {
    "d1": dict(layers=(4, 4, 8, 2), embed_dims=(192, 384, 384, 384), num_heads=(6, 12, 12, 12),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d2": dict(layers=(6, 4, 10, 4), embed_dims=(256, 512, 512, 512), num_heads=(8, 16, 16, 16),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d3": dict(layers=(8, 8, 16, 4), embed_dims=(256, 512, 512, 512), num_heads=(8, 16, 16, 16),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d4": dict(layers=(8, 8, 16, 4), embed_dims=(384, 768, 768, 768), num_heads=(12, 16, 16, 16),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d5": dict(layers=(12, 12, 20, 4), embed_dims=(384, 768, 768, 768), num_heads=(12, 16, 16, 16),
               mlp_ratio=4.0, stem_hidden_dim=128),
}
_SIZES = {"d1": (224, 384), "d2": (224, 384), "d3": (224, 448), "d4": (224, 448), "d5": (224, 448, 512)}
VARIANTS = {f"volo_{d}_{s}": dict(_D[d], img_size=s) for d, sizes in _SIZES.items() for s in sizes}


def _ln(name, dtype):
    return nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, dtype=dtype, name=name,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


def _conv(features, kernel, stride, padding, name, dtype, use_bias=True, fan_in=None):
    """nn.Conv; the stride-1 stem convs as common.layers.banded_conv's BandedConv (same
    parameters), whose weight gradient XLA:CPU otherwise computes far below the matmul peak."""
    inits = dict(kernel_init=nn.with_logical_partitioning(torch_conv_init, (None, None, "conv_in", "conv_out")),
                 bias_init=nn.with_logical_partitioning(torch_bias_init(fan_in or 1), ("conv_out",)))
    if stride == 1:
        return BandedConv(features, (kernel, kernel), [(padding, padding)] * 2, use_bias=use_bias, dtype=dtype,
                          name=name, **inits)
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=[(padding, padding)] * 2,
                   use_bias=use_bias, dtype=dtype, name=name, **inits)


def num_windows(size: int, kernel: int, padding: int, stride: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def unfold(x, kernel: int, padding: int, stride: int, axis: int = 3):
    """torch.nn.Unfold on NHWC: [B, H, W, C] -> [B, h, w, K*K, C] (kernel position p = ki*K + kj).
    Any trailing dims after H, W are kept; the K*K windows go to `axis` (e.g. [B, H, W, heads, d]
    with axis=4 -> [B, h, w, heads, K*K, d], the layout a batched matmul over heads wants)."""
    _, H, W = x.shape[:3]
    h, w = num_windows(H, kernel, padding, stride), num_windows(W, kernel, padding, stride)
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding)) + ((0, 0),) * (x.ndim - 3))
    patches = [xp[:, ki:ki + stride * (h - 1) + 1:stride, kj:kj + stride * (w - 1) + 1:stride]
               for ki in range(kernel) for kj in range(kernel)]
    return jnp.stack(patches, axis=axis)


def fold(y, out_hw: tuple[int, int], kernel: int, padding: int, stride: int, axis: int = 3):
    """torch.nn.Fold on NHWC, the adjoint of `unfold`: [B, h, w, K*K, C] -> [B, H, W, C],
    overlapping contributions summed (the K*K windows on `axis`, as `unfold`'s). Each kernel
    position is placed on the strided grid with interior padding (no scatter), then the padding
    border is cropped."""
    b, h, w = y.shape[:3]
    H, W = out_hw
    Hp, Wp = H + 2 * padding, W + 2 * padding
    rest = tuple(n for i, n in enumerate(y.shape) if i > 2 and i != axis % y.ndim)
    out = jnp.zeros((b, Hp, Wp) + rest, y.dtype)
    zero = jnp.zeros((), y.dtype)
    for ki in range(kernel):
        for kj in range(kernel):
            hi_h = Hp - (ki + stride * (h - 1) + 1)
            hi_w = Wp - (kj + stride * (w - 1) + 1)
            out = out + jax.lax.pad(jnp.take(y, ki * kernel + kj, axis=axis), zero,
                                    ((0, 0, 0), (ki, hi_h, stride - 1), (kj, hi_w, stride - 1))
                                    + ((0, 0, 0),) * len(rest))
    return out[:, padding:padding + H, padding:padding + W]


class OutlookAttention(nn.Module):
    num_heads: int
    kernel_size: int = 3
    padding: int = 1
    stride: int = 2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, H, W, c = x.shape
        k, s, heads = self.kernel_size, self.stride, self.num_heads
        d = c // heads
        v = dense(c, ("embed", "heads"), name="v", use_bias=False, dtype=self.dtype)(x)
        # Windows next to d, heads before them: attn @ v is then one batched matmul with leading
        # batch dims, which XLA's CPU backend runs ~2.5x faster than the torch layout's einsum.
        v = unfold(v.reshape(b, H, W, heads, d), k, self.padding, s, axis=4)  # B h w heads K2 d
        h, w = v.shape[1], v.shape[2]
        pad_h, pad_w = h * s - H, w * s - W                                 # ceil_mode pooling
        pooled = nn.avg_pool(x, (s, s), (s, s), padding=((0, max(pad_h, 0)), (0, max(pad_w, 0))),
                             count_include_pad=False)[:, :h, :w]
        attn = dense(heads * k ** 4, ("embed", "heads"), name="attn", dtype=self.dtype)(pooled)
        attn = attn.reshape(b, h, w, heads, k * k, k * k) * d ** -0.5      # q, k order (official)
        attn = jax.nn.softmax(attn.astype(jnp.float32), axis=-1).astype(v.dtype)
        y = jnp.matmul(attn, v)                                             # B h w heads K2 d
        y = fold(y, (H, W), k, self.padding, s, axis=4).reshape(b, H, W, c)
        return dense(c, ("heads", "embed"), name="proj", dtype=self.dtype)(y)


class Attention(nn.Module):
    num_heads: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, n, c = x.shape
        d = c // self.num_heads
        qkv = dense(3 * c, ("embed", "heads"), name="qkv", use_bias=False, dtype=self.dtype)(x)
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, d), 2, 0)
        out = dot_product_attention(q, k, v).reshape(b, n, c)
        return dense(c, ("heads", "embed"), name="proj", dtype=self.dtype)(out)


class ClassAttention(nn.Module):
    """One query (the class token) attending over all tokens (CaiT)."""
    num_heads: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, n, c = x.shape
        d = c // self.num_heads
        kv = dense(2 * c, ("embed", "heads"), name="kv", use_bias=False, dtype=self.dtype)(x)
        k, v = jnp.moveaxis(kv.reshape(b, n, 2, self.num_heads, d), 2, 0)
        q = dense(c, ("embed", "heads"), name="q", use_bias=False, dtype=self.dtype)(x[:, :1])
        out = dot_product_attention(q.reshape(b, 1, self.num_heads, d), k, v).reshape(b, 1, c)
        return dense(c, ("heads", "embed"), name="proj", dtype=self.dtype)(out)


class Outlooker(nn.Module):
    num_heads: int
    mlp_ratio: float
    dtype: jnp.dtype = jnp.float32
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x, train: bool = False):
        c = x.shape[-1]
        x = x + OutlookAttention(self.num_heads, dtype=self.dtype, name="attn")(_ln("norm1", self.dtype)(x))
        return x + Mlp(int(c * self.mlp_ratio), dtype=self.dtype, token_chunk=self.token_chunk, name="mlp")(
            _ln("norm2", self.dtype)(x))


class Transformer(nn.Module):
    num_heads: int
    mlp_ratio: float
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x, train: bool = False):
        b, H, W, c = x.shape
        t = x.reshape(b, H * W, c)
        t = t + DropPath(self.drop_path)(Attention(self.num_heads, self.dtype, name="attn")(
            _ln("norm1", self.dtype)(t)), deterministic=not train)
        t = t + DropPath(self.drop_path)(Mlp(int(c * self.mlp_ratio), dtype=self.dtype, token_chunk=self.token_chunk,
                                             name="mlp")(_ln("norm2", self.dtype)(t)), deterministic=not train)
        return gradient_barrier(t.reshape(b, H, W, c))


class ClassBlock(nn.Module):
    """Updates only the class token; the patch tokens pass through unchanged."""
    num_heads: int
    mlp_ratio: float
    dtype: jnp.dtype = jnp.float32
    token_chunk: int = 0

    @nn.compact
    def __call__(self, x, train: bool = False):
        c = x.shape[-1]
        cls = x[:, :1] + ClassAttention(self.num_heads, self.dtype, name="attn")(_ln("norm1", self.dtype)(x))
        cls = cls + Mlp(int(c * self.mlp_ratio), dtype=self.dtype, token_chunk=self.token_chunk, name="mlp")(
            _ln("norm2", self.dtype)(cls))
        return gradient_barrier(jnp.concatenate([cls, x[:, 1:]], axis=1))


class PatchEmbed(nn.Module):
    """Stem: 3 x (conv, BN, ReLU) at stride 2, then a patch conv 4x4/4 (total stride 8)."""
    hidden_dim: int
    embed_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, (kernel, stride, pad) in enumerate(((7, 2, 3), (3, 1, 1), (3, 1, 1))):
            x = _conv(self.hidden_dim, kernel, stride, pad, f"conv_{3 * i}", self.dtype, use_bias=False)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
                             name=f"conv_{3 * i + 1}")(x)
            x = nn.relu(x)
        return _conv(self.embed_dim, 4, 4, 0, "proj", self.dtype, fan_in=self.hidden_dim * 16)(x)


def mix_token_mask(box, height: int, width: int, scale: int = 1):
    """[H, W] float mask of the token box (rows [x0, x1), cols [y0, y1) on the pooled grid,
    scaled by `scale` onto a finer grid), as the official MixToken indexes it."""
    x0, y0, x1, y1 = (box[i] * scale for i in range(4))
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
    return ((rows >= x0) & (rows < x1) & (cols >= y0) & (cols < y1)).astype(jnp.float32)


class VOLO(nn.Module):
    """`token_chunk` as common.layers.Mlp's. Feature taps (common/layers/features.py): "stem"
    (patch_embed, stride 8), "stage1" (the outlookers, stride 8), "stage2" .. "stage4" (the
    transformer groups of `layers`, stride 16), "pooled" (the class token after the final
    norm), "head" (the model's output)."""
    layers: Sequence[int] = (4, 4, 8, 2)
    embed_dims: Sequence[int] = (192, 384, 384, 384)
    num_heads: Sequence[int] = (6, 12, 12, 12)
    mlp_ratio: float = 3.0
    stem_hidden_dim: int = 64
    img_size: int = 224
    num_classes: int = 1000
    drop_path_rate: float = 0.0
    num_class_blocks: int = 2
    dtype: jnp.dtype = jnp.float32
    token_chunk: int = 0

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"stage{i + 1}" for i in range(len(self.layers)))

    @nn.compact
    def __call__(self, x, train: bool = False, mix_box=None, features=None):
        """x [B, S, S, 3]. In training returns {'logits', 'aux_logits' [B, h, w, classes]};
        `mix_box` (x0, y0, x1, y1) on the stride-16 grid applies MixToken (tokens of the box
        taken from the batch-reversed sample, aux tokens swapped back after the network)."""
        taps = Taps(features, self.stage_names)
        x = PatchEmbed(self.stem_hidden_dim, self.embed_dims[0], self.dtype, name="patch_embed")(
            x.astype(self.dtype), train)
        if mix_box is not None:
            mask = mix_token_mask(mix_box, x.shape[1], x.shape[2], scale=2)[None, :, :, None]
            x = x * (1 - mask).astype(x.dtype) + x[::-1] * mask.astype(x.dtype)
        if taps.add("stem", x):
            return taps.out
        total = sum(self.layers)
        for j in range(self.layers[0]):
            x = Outlooker(self.num_heads[0], self.mlp_ratio, self.dtype, self.token_chunk,
                          name=f"network_0_{j}")(x, train)
        if taps.add("stage1", x):
            return taps.out
        x = _conv(self.embed_dims[1], 2, 2, 0, "network_1", self.dtype, fan_in=self.embed_dims[0] * 4)(x)
        grid = self.img_size // 16
        pos = self.param("pos_embed", nn.with_logical_partitioning(trunc_normal(0.02), (None, None, None, "embed")),
                         (1, grid, grid, self.embed_dims[-1]))
        if pos.shape[1:3] != x.shape[1:3]:
            raise ValueError(f"input gives a {x.shape[1]}x{x.shape[2]} token grid but pos_embed is "
                             f"{grid}x{grid}: use the variant for this resolution or "
                             "volo.convert.resize_pos_embed")
        x = x + pos.astype(x.dtype)
        block = self.layers[0]
        for i in range(1, len(self.layers)):
            for j in range(self.layers[i]):
                rate = self.drop_path_rate * block / (total - 1)
                x = Transformer(self.num_heads[i], self.mlp_ratio, rate, self.dtype, self.token_chunk,
                                name=f"network_{i + 1}_{j}")(x, train)
                block += 1
            if taps.add(f"stage{i + 1}", x):
                return taps.out
        b, h, w, c = x.shape
        cls = self.param("cls_token", nn.with_logical_partitioning(trunc_normal(0.02), (None, None, "embed")),
                         (1, 1, c))
        t = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (b, 1, c)), x.reshape(b, h * w, c)], axis=1)
        for j in range(self.num_class_blocks):
            t = ClassBlock(self.num_heads[-1], self.mlp_ratio, self.dtype, self.token_chunk,
                           name=f"post_network_{j}")(t, train)
        t = _ln("norm", self.dtype)(t)
        if taps.add("pooled", t[:, 0]):
            return taps.out
        logits = dense(self.num_classes, ("embed", "classes"), name="head", dtype=self.dtype)(t[:, 0])
        aux = dense(self.num_classes, ("embed", "classes"), name="aux_head", dtype=self.dtype)(t[:, 1:])
        if not train:
            return taps.finish(logits + 0.5 * jnp.max(aux, axis=1))
        aux = aux.reshape(b, h, w, self.num_classes)
        if mix_box is not None:
            mask = mix_token_mask(mix_box, h, w)[None, :, :, None].astype(aux.dtype)
            aux = aux * (1 - mask) + aux[::-1] * mask
        return taps.finish({"logits": logits, "aux_logits": aux})


def create_model(name: str, num_classes: int = 1000, dtype=jnp.float32, token_chunk: int = -1,
                 **overrides) -> VOLO:
    """`token_chunk=-1`: common.layers.basic.auto_token_chunk() of this machine, fixed at build time."""
    if name not in VARIANTS:
        raise KeyError(f"unknown VOLO variant {name!r}; known: {sorted(VARIANTS)}")
    token_chunk = auto_token_chunk() if token_chunk < 0 else token_chunk
    return VOLO(**{**VARIANTS[name], "num_classes": num_classes, "dtype": dtype, "token_chunk": token_chunk,
                   **overrides})


def resize_pos_embed(pos_embed: np.ndarray, grid: int) -> np.ndarray:
    """Bicubic resize of a [1, g, g, C] position embedding to [1, grid, grid, C], as the
    official fine-tuning at 384/448/512 does when it starts from a 224 checkpoint."""
    if pos_embed.shape[1] == grid:
        return pos_embed
    out = jax.image.resize(jnp.asarray(pos_embed), (1, grid, grid, pos_embed.shape[-1]), "bicubic")
    return np.asarray(out, dtype=pos_embed.dtype)


def drop_path_schedule(rate: float, layers: Sequence[int]) -> list[float]:
    """Transformer-block drop-path rates (outlookers and class blocks get 0), official rule."""
    total = sum(layers)
    return [rate * (layers[0] + j) / (total - 1) for j in range(total - layers[0])]

