"""Classifier heads of the survey (facebookresearch/classifier-balancing models/, tau_norm.py;
kaidic/LDAM-DRW models/resnet_cifar.py NormedLinear), pluggable into the backbones of
common/layers/resnet.py through their `head` factory (the head keeps the backbone's
classifier name, `linear` or `fc`, so stage-1 weights load into it):

- `NormedLinear`: cosine classifier of LDAM / RIDE / SADE, s * <x/|x|, w_c/|w_c|>, no bias.
- `LWSLinear`: learnable weight scaling, (W f + b) * s with s in R^C (init 1); in decoupled
  stage 2 only s trains (the task's optimizer groups `scale` apart from `kernel`/`bias`).
- `NCMHead`: nearest class mean on cl2n features (subtract the train-feature mean, L2-normalise);
  the centroids are a non-trainable `ncm` collection filled by longtail.ncm.fit.
- `tau_normalise`: w_c / |w_c|^tau with the bias dropped (post-hoc, no training).
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

HEADS = ("linear", "cosine", "lws", "ncm")


def l2_normalise(x, axis=-1, eps: float = 1e-12):
    """torch.nn.functional.normalize: x / max(|x|, eps)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


def unit_columns(key, shape, dtype=jnp.float32):
    """NormedLinear init: U(-1, 1), then every column (class) rescaled to unit norm."""
    return l2_normalise(jax.random.uniform(key, shape, dtype, -1.0, 1.0), axis=0)


class NormedLinear(nn.Module):
    num_classes: int
    scale: float = 30.0
    dtype: jnp.dtype = jnp.float32
    kernel_init: object = None        # ignored: the cosine head has its own init

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", nn.with_logical_partitioning(unit_columns, ("embed", "classes")),
                       (x.shape[-1], self.num_classes))
        return self.scale * (l2_normalise(x.astype(jnp.float32)) @ l2_normalise(w, axis=0)).astype(self.dtype)


class LWSLinear(nn.Module):
    num_classes: int
    dtype: jnp.dtype = jnp.float32
    kernel_init: object = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.with_logical_partitioning(self.kernel_init, ("embed", "classes")),
                            (x.shape[-1], self.num_classes))
        bias = self.param("bias", nn.initializers.zeros, (self.num_classes,))
        scale = self.param("scale", nn.initializers.ones, (self.num_classes,))
        return ((x @ kernel.astype(self.dtype) + bias) * scale).astype(self.dtype)


def ncm_transform(features, mean):
    """cl2n features of classifier-balancing's KNNClassifier: l2n(f - train mean)."""
    return l2_normalise(features - mean)


def ncm_logits(features, centroids, mean, distance: str = "l2"):
    """-|f' - mu_c|^2 ("l2", the official default) or cos(f', mu_c) ("cos"), f' = cl2n(f)."""
    f = ncm_transform(features.astype(jnp.float32), mean)
    if distance == "cos":
        return f @ l2_normalise(centroids).T
    if distance == "l2":
        return -(jnp.sum(f * f, -1, keepdims=True) - 2.0 * f @ centroids.T + jnp.sum(centroids ** 2, -1)[None])
    raise ValueError(f"unknown NCM distance {distance!r}: l2 | cos")


def class_centroids(features, labels, num_classes: int, mean):
    """Class means of the cl2n-transformed training features, [C, D]."""
    f = ncm_transform(jnp.asarray(features, jnp.float32), mean)
    onehot = jax.nn.one_hot(labels, num_classes)
    return (onehot.T @ f) / jnp.maximum(onehot.sum(0), 1.0)[:, None]


class NCMHead(nn.Module):
    num_classes: int
    distance: str = "l2"
    dtype: jnp.dtype = jnp.float32
    kernel_init: object = None        # no weights: the centroids live in the `ncm` collection

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        centroids = self.variable("ncm", "centroids", jnp.zeros, (self.num_classes, d), jnp.float32)
        mean = self.variable("ncm", "mean", jnp.zeros, (d,), jnp.float32)
        return ncm_logits(x, centroids.value, mean.value, self.distance).astype(self.dtype)


CLASSIFIER_NAMES = ("linear", "fc", "head", "classifier")   # the classifier's name in each model family


def classifier_name(params) -> str:
    return next(h for h in CLASSIFIER_NAMES if h in params)


def classifier_only_groups(lr_mult: float) -> tuple[dict, ...]:
    """`optim.groups` of decoupled stage 2 (cRT, LWS, MiSLAS): the backbone is frozen, the
    classifier's weights train at lr_mult x lr (0: frozen, as in LWS) and LWS's per-class
    scales at the full lr."""
    head = "^(" + "|".join(CLASSIFIER_NAMES) + ")/"
    weights = dict(pattern=head, frozen=True) if lr_mult == 0 else dict(pattern=head, lr_mult=float(lr_mult))
    return dict(pattern=head + "(.+/)?scale$"), weights, dict(pattern=".", frozen=True)


def tau_normalise(head: dict, tau: float) -> dict:
    """tau-norm of a Linear head {'kernel': [D, C], 'bias': [C]}: w_c / |w_c|^tau, bias dropped."""
    norm = jnp.linalg.norm(head["kernel"], axis=0, keepdims=True)
    return {**head, "kernel": head["kernel"] / jnp.power(norm, tau), "bias": jnp.zeros_like(head["bias"])}


def make_head(name: str, cosine_scale: float = 30.0, ncm_distance: str = "l2"):
    """The backbone `head` factory for config.longtail.head (None: the backbone's own Linear)."""
    if name == "linear":
        return None
    if name == "cosine":
        return functools.partial(NormedLinear, scale=cosine_scale)
    if name == "lws":
        return LWSLinear
    if name == "ncm":
        return functools.partial(NCMHead, distance=ncm_distance)
    raise ValueError(f"unknown longtail.head {name!r}: {' | '.join(HEADS)}")
