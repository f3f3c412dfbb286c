"""Try-on metrics in JAX: SSIM (scikit-image's Gaussian SSIM, or pytorch-ssim's as ACGPN's
README uses), the warp's end-point error against a known warp, masked L1.

- `ssim(a, b, mode="skimage")` equals skimage.metrics.structural_similarity(a, b,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
  channel_axis=-1): 11 x 11 Gaussian (truncate 3.5), scipy's 'reflect' borders, the 5-px
  border cropped before the mean, channels averaged; per image.
- `mode="pytorch_ssim"`: the same window with zero padding and no crop (Po-Hsun-Su
  pytorch-ssim, what ACGPN's README reports, SSIM 0.8664).
Images in [0, 1], [B, H, W, C].
"""
import jax
import jax.numpy as jnp
import numpy as np

C1, C2 = 0.01 ** 2, 0.03 ** 2


def gaussian_window(sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-x * x / (2 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


def _filter(x, g, mode):
    """Separable filter of [B, H, W, C] along H and W."""
    r = (len(g) - 1) // 2
    pad = "symmetric" if mode == "skimage" else "constant"
    x = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode=pad)
    h, w = x.shape[1] - 2 * r, x.shape[2] - 2 * r
    x = sum(g[i] * x[:, i:i + h] for i in range(len(g)))
    return sum(g[i] * x[:, :, i:i + w] for i in range(len(g)))


def ssim(a, b, mode: str = "skimage", sigma: float = 1.5) -> jax.Array:
    """Per-image SSIM [B] of images in [0, 1]."""
    if mode not in ("skimage", "pytorch_ssim"):
        raise ValueError(f"unknown SSIM mode {mode!r}: skimage | pytorch_ssim")
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    radius = int(3.5 * sigma + 0.5) if mode == "skimage" else 5
    g = jnp.asarray(gaussian_window(sigma, radius))
    mu_a, mu_b = _filter(a, g, mode), _filter(b, g, mode)
    saa = _filter(a * a, g, mode) - mu_a * mu_a
    sbb = _filter(b * b, g, mode) - mu_b * mu_b
    sab = _filter(a * b, g, mode) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + C1) * (2 * sab + C2)) / ((mu_a ** 2 + mu_b ** 2 + C1) * (saa + sbb + C2))
    if mode == "skimage":
        s = s[:, radius:-radius, radius:-radius]
    return s.mean((1, 2, 3))


def to_unit(x):
    """[-1, 1] images -> [0, 1] (clipped), as the references' (x + 1) / 2."""
    return jnp.clip((x + 1.0) * 0.5, 0.0, 1.0)


def end_point_error(grid, true_grid, mask):
    """Mean |grid - true_grid| in pixels over mask > 0, per image [B] (NaN-free: images with
    an empty mask give 0). Grids are normalised (x, y) with align_corners=True."""
    h, w = grid.shape[1:3]
    scale = jnp.asarray([(w - 1) / 2.0, (h - 1) / 2.0], jnp.float32)
    err = jnp.sqrt((((grid - true_grid) * scale) ** 2).sum(-1) + 1e-12)
    m = mask.reshape(err.shape).astype(jnp.float32)
    return (err * m).sum((1, 2)) / jnp.maximum(m.sum((1, 2)), 1.0)


def masked_l1(a, b, mask=None):
    """Per-image mean |a - b| [B] (over mask > 0 when given, every channel)."""
    d = jnp.abs(a - b)
    if mask is None:
        return d.mean(tuple(range(1, d.ndim)))
    m = jnp.broadcast_to(mask, d.shape).astype(jnp.float32)
    return (d * m).sum(tuple(range(1, d.ndim))) / jnp.maximum(m.sum(tuple(range(1, d.ndim))), 1.0)
