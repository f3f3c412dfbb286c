"""Training losses of the three stages (CP-VTON train.py, ACGPN pix2pixHD_model.py).

- `perceptual`: VGGLoss of both references: torchvision VGG-19 features at relu1_1 ...
  relu5_1 (slices [0:2], [2:7], [7:12], [12:21], [21:30]), L1 per level with weights 1/32,
  1/16, 1/8, 1/4, 1, no gradient through the target, inputs the [-1, 1] images WITHOUT
  ImageNet normalisation (the references' quirk). `layers="relu5_1"` is ACGPN's
  `VGGLoss.warp` (the last level only, weight 1).
- `bce_mask`: nn.BCELoss on a sigmoid (ACGPN's mask losses), from logits for stability.
Adversarial and feature-matching terms come from common/gan.py.
"""
import jax
import jax.numpy as jnp

from common.layers.vgg import VGG

VGG_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def vgg19():
    return VGG("vgg19")


def perceptual(vgg_params, x, y, layers: str = "all"):
    """sum_i w_i mean |VGG_i(x) - VGG_i(y)| (y detached)."""
    taps = VGG_TAPS if layers == "all" else (layers,)
    weights = VGG_WEIGHTS if layers == "all" else (1.0,)
    both = vgg19().apply({"params": vgg_params}, jnp.concatenate([x, y], 0), features=taps)
    n = x.shape[0]
    return sum(w * jnp.mean(jnp.abs(both[t][:n] - jax.lax.stop_gradient(both[t][n:])))
               for t, w in zip(taps, weights))


def init_vgg(rng, size=(32, 32)):
    """Random VGG-19 params up to relu5_1 (the stand-in when no converted torchvision
    weights are given: `init_from=vgg=PATH` loads the real ones)."""
    return vgg19().init(rng, jnp.zeros((1,) + tuple(size) + (3,)), features=VGG_TAPS)["params"]


def bce_mask(logits, target):
    """mean BCE(sigmoid(logits), target)."""
    return jnp.mean(jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def l1(a, b):
    return jnp.mean(jnp.abs(a - b))
