"""The Inception-v3 of FID (pytorch-fid's `fid_inception_v3`, the TF 2015-12-05 graph), NHWC.

torchvision's Inception3 with 1008 classes, no aux head, and pytorch-fid's patched blocks:
FIDInceptionA (Mixed_5b/c/d) and FIDInceptionC (Mixed_6b..e) and FIDInceptionE_1
(Mixed_7b) average-pool without counting the padding, FIDInceptionE_2 (Mixed_7c)
max-pools in its pool branch. BasicConv2d = conv (no bias) + BatchNorm(eps 1e-3, running
statistics) + ReLU.

`InceptionV3(blocks="torchvision", num_classes=1000)` is torchvision's own Inception3
(its pools count the padding, Mixed_7c average-pools): the ImageNet network
inception-score-pytorch reads (ACGPN's IS).

`InceptionV3()(x)` takes images in [0, 1], [B, H, W, 3], and (as pytorch-fid's
InceptionV3 with resize_input and normalize_input) resizes them to 299 x 299 bilinearly
(align_corners=False, no antialiasing) and maps them to [-1, 1]. It returns
{"pool3": [B, 2048] (FID's features), "logits": [B, 1008] (fc), "logits_unbiased":
[B, 1008] (fc without its bias: what the original TF Inception Score reads, as
torch-fidelity)}.

Parameters follow the torch names (`Mixed_5b/branch1x1/conv/kernel`, `.../bn/scale`,
batch_stats `.../bn/mean`); `convert_fid_weights` reads pytorch-fid's
pt_inception-2015-12-05-6726825d.pth (`python -m common.image_metrics inception SRC OUT`).
"""
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FID_SIZE = 299
# He-normal: a network without weights keeps O(1) activations through its 94 convs
# (torch's default init shrinks them to ~1e-7 at pool3)
HE_NORMAL = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def resize_bilinear(x, height: int, width: int):
    """torch F.interpolate(mode='bilinear', align_corners=False, antialias=False), NHWC."""
    def axis(n_in, n_out):
        src = jnp.maximum((jnp.arange(n_out, dtype=jnp.float32) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = jnp.floor(src).astype(jnp.int32)
        i0 = jnp.minimum(i0, n_in - 1)
        i1 = jnp.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0)
    h0, h1, lh = axis(x.shape[1], height)
    w0, w1, lw = axis(x.shape[2], width)
    lh, lw = lh[None, :, None, None].astype(x.dtype), lw[None, None, :, None].astype(x.dtype)
    x = x[:, h0] * (1 - lh) + x[:, h1] * lh
    return x[:, :, w0] * (1 - lw) + x[:, :, w1] * lw


class BasicConv(nn.Module):
    features: int
    kernel: tuple = (1, 1)
    stride: int = 1
    padding: tuple = (0, 0)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        (ph, pw) = self.padding
        x = nn.Conv(self.features, self.kernel, (self.stride, self.stride), padding=[(ph, ph), (pw, pw)],
                    use_bias=False, dtype=self.dtype, kernel_init=HE_NORMAL, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


def _avg_pool(x, count_include_pad=False):
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=count_include_pad)


def _max_pool(x, stride=2, padding="VALID"):
    return nn.max_pool(x, (3, 3), (stride, stride), padding=padding)


class InceptionA(nn.Module):            # FIDInceptionA (torchvision's InceptionA: count_include_pad)
    pool_features: int
    count_include_pad: bool = False

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv(64, name="branch1x1")(x)
        b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(BasicConv(48, name="branch5x5_1")(x))
        b3 = BasicConv(64, name="branch3x3dbl_1")(x)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv(self.pool_features, name="branch_pool")(_avg_pool(x, self.count_include_pad))
        return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):            # torchvision InceptionB (Mixed_6a)
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(384, (3, 3), 2, name="branch3x3")(x)
        bd = BasicConv(64, name="branch3x3dbl_1")(x)
        bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv(96, (3, 3), 2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool(x)], -1)


class InceptionC(nn.Module):            # FIDInceptionC (torchvision's InceptionC: count_include_pad)
    channels_7x7: int
    count_include_pad: bool = False

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        b1 = BasicConv(192, name="branch1x1")(x)
        b7 = BasicConv(c7, name="branch7x7_1")(x)
        b7 = BasicConv(c7, **row, name="branch7x7_2")(b7)
        b7 = BasicConv(192, **col, name="branch7x7_3")(b7)
        bd = BasicConv(c7, name="branch7x7dbl_1")(x)
        bd = BasicConv(c7, **col, name="branch7x7dbl_2")(bd)
        bd = BasicConv(c7, **row, name="branch7x7dbl_3")(bd)
        bd = BasicConv(c7, **col, name="branch7x7dbl_4")(bd)
        bd = BasicConv(192, **row, name="branch7x7dbl_5")(bd)
        bp = BasicConv(192, name="branch_pool")(_avg_pool(x, self.count_include_pad))
        return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):            # torchvision InceptionD (Mixed_7a)
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(320, (3, 3), 2, name="branch3x3_2")(BasicConv(192, name="branch3x3_1")(x))
        b7 = BasicConv(192, name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, (3, 3), 2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool(x)], -1)


class InceptionE(nn.Module):            # FIDInceptionE_1 (avg pool) / FIDInceptionE_2 (max pool)
    max_pool: bool = False
    count_include_pad: bool = False      # torchvision's InceptionE

    @nn.compact
    def __call__(self, x):
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        b1 = BasicConv(320, name="branch1x1")(x)
        b3 = BasicConv(384, name="branch3x3_1")(x)
        b3 = jnp.concatenate([BasicConv(384, **row, name="branch3x3_2a")(b3),
                              BasicConv(384, **col, name="branch3x3_2b")(b3)], -1)
        bd = BasicConv(448, name="branch3x3dbl_1")(x)
        bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([BasicConv(384, **row, name="branch3x3dbl_3a")(bd),
                              BasicConv(384, **col, name="branch3x3dbl_3b")(bd)], -1)
        pooled = _max_pool(x, 1, ((1, 1), (1, 1))) if self.max_pool else _avg_pool(x, self.count_include_pad)
        bp = BasicConv(192, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], -1)


class InceptionV3(nn.Module):
    resize_input: bool = True
    normalize_input: bool = True
    num_classes: int = 1008
    size: int = FID_SIZE            # the resize target: 299 as pytorch-fid (smaller in tests, for speed)
    blocks: str = "fid"             # fid (pytorch-fid's patched blocks) | torchvision (Inception3's own)

    @nn.compact
    def __call__(self, x):
        if self.resize_input:
            x = resize_bilinear(x, self.size, self.size)
        if self.normalize_input:
            x = 2 * x - 1
        x = BasicConv(32, (3, 3), 2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool(x)
        x = BasicConv(80, name="Conv2d_3b_1x1")(x)
        x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool(x)
        if self.blocks not in ("fid", "torchvision"):
            raise ValueError(f"unknown Inception blocks {self.blocks!r}: fid | torchvision")
        tv = self.blocks == "torchvision"
        x = InceptionA(32, tv, name="Mixed_5b")(x)
        x = InceptionA(64, tv, name="Mixed_5c")(x)
        x = InceptionA(64, tv, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, tv, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(False, tv, name="Mixed_7b")(x)
        x = InceptionE(not tv, tv, name="Mixed_7c")(x)
        pool3 = x.mean((1, 2))
        fc = nn.Dense(self.num_classes, name="fc")
        logits = fc(pool3)
        return {"pool3": pool3, "logits": logits, "logits_unbiased": logits - fc.variables["params"]["bias"]}


def fid_rules():
    """common.convert rules: pytorch-fid's Inception state_dict -> our variables."""
    from common.convert import conv_kernel, identity, linear_kernel
    block = r"((?:Mixed|Conv2d)_\w+?)"
    rules = []
    for src_leaf, collection, leaf, fn in (("conv.weight", "params", "conv/kernel", conv_kernel),
                                           ("bn.weight", "params", "bn/scale", identity),
                                           ("bn.bias", "params", "bn/bias", identity),
                                           ("bn.running_mean", "batch_stats", "bn/mean", identity),
                                           ("bn.running_var", "batch_stats", "bn/var", identity)):
        leaf_re = src_leaf.replace(".", r"\.")
        rules.append((rf"{block}\.(branch\w+)\.{leaf_re}", rf"{collection}/\1/\2/{leaf}", fn))
        rules.append((rf"{block}\.{leaf_re}", rf"{collection}/\1/{leaf}", fn))
    rules += [(r"fc\.weight", "params/fc/kernel", linear_kernel), (r"fc\.bias", "params/fc/bias", identity)]
    return rules


FID_IGNORE = (r".*num_batches_tracked", r"AuxLogits\..*")


def convert_fid_weights(state_dict: Mapping[str, np.ndarray], blocks: str = "fid") -> dict:
    """pytorch-fid's pt_inception-2015-12-05 state_dict (blocks="fid", 1008 classes), or
    torchvision's inception_v3_google-0cc3c7bd.pth (blocks="torchvision", 1000 classes:
    the network of inception-score-pytorch) -> the variables of InceptionV3(blocks=...,
    num_classes=...), checked leaf by leaf against the model."""
    from common.convert import check_against, convert_with_rules
    variables = convert_with_rules(state_dict, fid_rules(), FID_IGNORE)
    classes = int(np.shape(state_dict["fc.bias"])[0]) if "fc.bias" in state_dict else 1008
    expected = jax.eval_shape(lambda: InceptionV3(resize_input=False, blocks=blocks, num_classes=classes).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3))))
    check_against(variables, nn.meta.unbox(expected))
    return variables
