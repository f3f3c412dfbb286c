"""Batch-wise Mixup / CutMix with label smoothing (timm's `Mixup`, mode 'batch'), in JAX.

The batch is mixed with its reversed copy; with probability `switch_prob` CutMix is
used instead of Mixup, and CutMix's lambda is corrected to the true box area.
Runs inside the jitted train step, so it costs no host time.
"""
import jax
import jax.numpy as jnp


def smooth_one_hot(labels, num_classes: int, smoothing: float):
    off = smoothing / num_classes
    return jax.nn.one_hot(labels, num_classes) * (1.0 - smoothing) + off


def _cutmix_box(rng, h: int, w: int, lam):
    cut = jnp.sqrt(1.0 - lam)
    ch, cw = (h * cut).astype(jnp.int32), (w * cut).astype(jnp.int32)
    ky, kx = jax.random.split(rng)
    cy, cx = jax.random.randint(ky, (), 0, h), jax.random.randint(kx, (), 0, w)
    y0, y1 = jnp.clip(cy - ch // 2, 0, h), jnp.clip(cy + ch // 2, 0, h)
    x0, x1 = jnp.clip(cx - cw // 2, 0, w), jnp.clip(cx + cw // 2, 0, w)
    return y0, y1, x0, x1


def cutmix_mask(rng, h: int, w: int, lam):
    """[H, W] mask, 1 inside the pasted box, and the area-corrected lambda."""
    y0, y1, x0, x1 = _cutmix_box(rng, h, w, lam)
    ys, xs = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    box = ((ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)).astype(jnp.float32)
    return box, 1.0 - box.sum() / (h * w)


def mixup_cutmix(rng, images, labels, num_classes: int, mixup_alpha: float, cutmix_alpha: float,
                 prob: float, switch_prob: float, label_smoothing: float):
    """images [B, H, W, C] (or [B, T, H, W, C]), integer labels [B] -> mixed images and soft
    targets [B, num_classes] that each sum to 1."""
    k_apply, k_switch, k_mix, k_cut, k_box = jax.random.split(rng, 5)
    targets = smooth_one_hot(labels, num_classes, label_smoothing)
    if prob <= 0 or (mixup_alpha <= 0 and cutmix_alpha <= 0):
        return images, targets
    use_cutmix = (cutmix_alpha > 0) & ((mixup_alpha <= 0) | (jax.random.uniform(k_switch) < switch_prob))
    lam_mix = jax.random.beta(k_mix, mixup_alpha, mixup_alpha) if mixup_alpha > 0 else 1.0
    lam_cut = jax.random.beta(k_cut, cutmix_alpha, cutmix_alpha) if cutmix_alpha > 0 else 1.0
    h, w = images.shape[-3], images.shape[-2]
    box, lam_box = cutmix_mask(k_box, h, w, lam_cut)
    apply = jax.random.uniform(k_apply) < prob
    lam = jnp.where(apply, jnp.where(use_cutmix, lam_box, lam_mix), 1.0)
    flipped = images[::-1]
    box = box[..., None]  # broadcast over channels (and leading T for video)
    cut_images = images * (1.0 - box) + flipped * box
    mix_images = images * lam + flipped * (1.0 - lam)
    out = jnp.where(apply, jnp.where(use_cutmix, cut_images, mix_images), images)
    return out.astype(images.dtype), targets * lam + targets[::-1] * (1.0 - lam)
