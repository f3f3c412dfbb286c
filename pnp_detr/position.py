"""The padding mask at feature resolution and DETR's sine position embedding on it
(DETR models/backbone.py `BackboneBase.forward`, models/position_encoding.py
`PositionEmbeddingSine`). Masks here are True on valid (un-padded) cells."""
import math

import jax.numpy as jnp
import numpy as np


def nearest_source_index(in_size: int, out_size: int) -> np.ndarray:
    """The rows torch's F.interpolate(mode="nearest") reads: floor(i * scale) in float32
    with scale = float32(in / out), clamped to in - 1 (ATen `nearest_idx`)."""
    if in_size == out_size:
        return np.arange(out_size)
    scale = np.float32(in_size) / np.float32(out_size)
    index = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(index, in_size - 1)


def downsample_mask(valid, size: tuple[int, int]):
    """valid [B, Hi, Wi] bool -> [B, H, W] bool by nearest interpolation (DETR's
    F.interpolate of the float mask, cast back to bool)."""
    rows = nearest_source_index(valid.shape[1], size[0])
    cols = nearest_source_index(valid.shape[2], size[1])
    return valid[:, rows][:, :, cols]


def sine_position_embedding(valid, num_feats: int = 128, temperature: float = 10000.0,
                            scale: float = 2 * math.pi):
    """valid [B, H, W] bool -> [B, H, W, 2 * num_feats] float32: [pos_y, pos_x], each with
    sin / cos interleaved (normalize=True: the cumulative counts of valid cells are divided
    by the valid extent of their row / column)."""
    ones = valid.astype(jnp.float32)
    y_embed = jnp.cumsum(ones, axis=1)
    x_embed = jnp.cumsum(ones, axis=2)
    eps = 1e-6
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = np.arange(num_feats, dtype=np.float32)
    dim_t = jnp.asarray(np.float32(temperature) ** (2 * (dim_t // 2) / np.float32(num_feats)), jnp.float32)

    def interleave(embed):
        angles = embed[..., None] / dim_t
        sincos = jnp.stack([jnp.sin(angles[..., 0::2]), jnp.cos(angles[..., 1::2])], axis=-1)
        return sincos.reshape(angles.shape)

    return jnp.concatenate([interleave(y_embed), interleave(x_embed)], axis=-1)
