"""Adversarial losses shared by the GAN tasks.

Every loss takes discriminator logits: one array, or a list of arrays for a multiscale
discriminator (a list of scales; an entry may itself be a list of a discriminator's
intermediate outputs, whose last element is the logit map). Each scale's loss is the mean
over its elements; the scales are summed (pix2pixHD's convention).

  d_loss, g_loss = gan_losses("lsgan")
  loss_d = d_loss(D(real), D(stop_gradient(fake)))
  loss_g = g_loss(D(fake))

The discriminator losses return real term + fake term (no 1/2); a task that halves it
(as many official loops do) multiplies by 0.5 itself.

  lsgan: (D(real) - 1)^2 + D(fake)^2            generator: (D(fake) - 1)^2
  bce:   -log sigmoid(D(real)) - log(1 - sigmoid(D(fake)))   generator: -log sigmoid(D(fake))
         (the non-saturating loss on logits, computed with softplus)
  hinge: relu(1 - D(real)) + relu(1 + D(fake))   generator: -D(fake)
"""
from typing import Callable, Sequence

import jax
import jax.numpy as jnp


def _scales(logits) -> list:
    """A list of the logit map of every scale."""
    if isinstance(logits, (list, tuple)):
        return [s[-1] if isinstance(s, (list, tuple)) else s for s in logits]
    return [logits]


def _sum_of_means(fn, logits) -> jax.Array:
    return sum(jnp.mean(fn(jnp.asarray(s, jnp.float32))) for s in _scales(logits))


def lsgan_d_loss(real, fake) -> jax.Array:
    return _sum_of_means(lambda r: (r - 1.0) ** 2, real) + _sum_of_means(lambda f: f ** 2, fake)


def lsgan_g_loss(fake) -> jax.Array:
    return _sum_of_means(lambda f: (f - 1.0) ** 2, fake)


def bce_d_loss(real, fake) -> jax.Array:
    return _sum_of_means(lambda r: jax.nn.softplus(-r), real) + _sum_of_means(jax.nn.softplus, fake)


def bce_g_loss(fake) -> jax.Array:
    return _sum_of_means(lambda f: jax.nn.softplus(-f), fake)


def hinge_d_loss(real, fake) -> jax.Array:
    return (_sum_of_means(lambda r: jax.nn.relu(1.0 - r), real)
            + _sum_of_means(lambda f: jax.nn.relu(1.0 + f), fake))


def hinge_g_loss(fake) -> jax.Array:
    return _sum_of_means(lambda f: -f, fake)


LOSSES: dict[str, tuple[Callable, Callable]] = {
    "lsgan": (lsgan_d_loss, lsgan_g_loss),
    "bce": (bce_d_loss, bce_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
}


def gan_losses(kind: str) -> tuple[Callable, Callable]:
    """(d_loss(real, fake), g_loss(fake)) of "lsgan" | "bce" | "hinge"."""
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}: {' | '.join(LOSSES)}")
    return LOSSES[kind]


def _leaves(feats) -> list:
    if isinstance(feats, (list, tuple)):
        return [leaf for f in feats for leaf in _leaves(f)]
    return [feats]


def feature_matching_loss(real_feats, fake_feats, weight: float = 1.0,
                          skip_last: bool = False) -> jax.Array:
    """weight * sum over matching feature maps of mean |fake - real|, with no gradient
    through the real features. `real_feats` / `fake_feats`: an array, a list of arrays, or
    a list (scales) of lists (a discriminator's intermediate outputs). `skip_last` drops the
    last entry of each scale (its logit map), as pix2pixHD does; pix2pixHD's weighting is
    weight = lambda_feat * 4 / (n_layers + 1) / num_D."""
    def per_scale(f):
        if skip_last and isinstance(f, (list, tuple)) and f and isinstance(f[0], (list, tuple)):
            return [s[:-1] for s in f]
        if skip_last and isinstance(f, (list, tuple)):
            return list(f[:-1])
        return f
    real, fake = _leaves(per_scale(real_feats)), _leaves(per_scale(fake_feats))
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real feature maps but {len(fake)} fake ones")
    total = sum(jnp.mean(jnp.abs(jnp.asarray(f, jnp.float32) - jax.lax.stop_gradient(jnp.asarray(r, jnp.float32))))
                for r, f in zip(real, fake))
    return weight * total


__all__: Sequence[str] = ("lsgan_d_loss", "lsgan_g_loss", "bce_d_loss", "bce_g_loss", "hinge_d_loss",
                          "hinge_g_loss", "gan_losses", "feature_matching_loss")
