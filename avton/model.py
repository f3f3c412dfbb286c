"""AVTON's networks in Flax (NHWC), each equal to the reference module it is built from.

- `GMM` / IGMM: sergeywong/cp-vton networks.py GMM (FeatureExtraction x2 with BN after
  ReLU, FeatureL2Norm, the column-major FeatureCorrelation, FeatureRegression -> tanh ->
  2N offsets) and a grid generator whose radial kernel is a config switch (avton/tps.py:
  `tps_cpvton` is CP-VTON exactly, `wendland_c2` AVTON's default).
- `UnetGenerator` / TOM, TOFM: cp-vton UnetGenerator(num_downs=6, InstanceNorm) and the
  composition head of train.py train_tom.
- `Refine` / LPM: ACGPN (switchablenorms/DeepFashion_Try_On) ACGPN_train/models/networks.py
  `Refine.refine`; the LPM reads its output as a limb-mask logit and a limb image
  (reconstructed from the paper, see avton/README.md).
- `MultiscaleDiscriminator`: ACGPN / pix2pixHD MultiscaleDiscriminator(num_D=2, n_layers=3,
  InstanceNorm, getIntermFeat) returning every layer's features for feature matching.

Parameter names follow the official state_dicts (`extractionA/model_0` is
`extractionA.model.0`), so avton/convert.py is a table of renames.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from avton import tps
from avton.layers import (Conv, Linear, avg_pool_exclude_pad, batch_norm, instance_norm, max_pool,
                          upsample_bilinear, upsample_nearest)
from common.models import register_variants


# ====================================================================== GMM
class FeatureExtraction(nn.Module):
    """conv4x4/2 -> ReLU -> BN, n_layers more of those (widths x2 up to 512), then
    conv3x3 -> ReLU -> BN and conv3x3 -> ReLU (no BN). Torch indices: convs 0, 3, 6, ...,
    BNs 2, 5, 8, ... The two 3x3 convs are `feat_dim` wide (512 in CP-VTON)."""
    ngf: int = 64
    n_layers: int = 3
    feat_dim: int = 512

    @nn.compact
    def __call__(self, x, train: bool = False):
        widths = [self.ngf]
        for i in range(self.n_layers):
            widths.append(min(2 ** (i + 1) * self.ngf, self.feat_dim) if 2 ** i * self.ngf < self.feat_dim
                          else self.feat_dim)
        idx = 0
        for w in widths:
            x = nn.relu(Conv(w, 4, 2, 1, init_std=0.02, name=f"model_{idx}")(x))
            x = batch_norm(train, f"model_{idx + 2}", gamma_std=0.02)(x)
            idx += 3
        x = nn.relu(Conv(self.feat_dim, 3, 1, 1, init_std=0.02, name=f"model_{idx}")(x))
        x = batch_norm(train, f"model_{idx + 2}", gamma_std=0.02)(x)
        idx += 3
        return nn.relu(Conv(self.feat_dim, 3, 1, 1, init_std=0.02, name=f"model_{idx}")(x))


def l2_normalize(f, eps: float = 1e-6):
    """FeatureL2Norm: f / sqrt(sum_c f^2 + eps)."""
    return f / jnp.sqrt((f * f).sum(-1, keepdims=True) + eps)


def correlation(feature_a, feature_b):
    """FeatureCorrelation: out[b, i, j, k] = <f_B(i, j), f_A(y_k, x_k)> with k = x_k * H + y_k
    (A's positions column-major), [B, H, W, H * W]."""
    b, h, w, c = feature_a.shape
    a = feature_a.transpose(0, 2, 1, 3).reshape(b, w * h, c)
    return jnp.einsum("bijc,bkc->bijk", feature_b, a, precision=jax.lax.Precision.HIGHEST)


class FeatureRegression(nn.Module):
    """conv4x4/2-BN-ReLU x2, conv3x3-BN-ReLU x2 (torch convs 0, 3, 6, 9, BNs 1, 4, 7, 10;
    PyTorch default init), flatten in (C, H, W) order, Linear, tanh."""
    output_dim: int = 50
    widths: Sequence[int] = (512, 256, 128, 64)

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, (w, k, s) in enumerate(zip(self.widths, (4, 4, 3, 3), (2, 2, 1, 1))):
            x = Conv(w, k, s, 1, name=f"conv_{3 * i}")(x)
            x = nn.relu(batch_norm(train, f"conv_{3 * i + 1}")(x))
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)          # torch's view(B, -1) of NCHW
        return jnp.tanh(Linear(self.output_dim, name="linear")(x))


class GMM(nn.Module):
    """(agnostic [B, H, W, 22], cloth [B, H, W, 3]) -> (grid [B, H, W, 2], theta [B, 2N])."""
    height: int = 256
    width: int = 192
    in_a: int = 22
    ngf: int = 64
    n_layers: int = 3
    feat_dim: int = 512
    reg_widths: Sequence[int] = (512, 256, 128, 64)
    grid_size: int = 5
    kernel: str = "wendland_c2"
    radius: float = 1.0
    tps_reg: float = 0.0

    @property
    def grid_gen(self) -> tps.TpsGrid:
        return tps.tps_grid(self.height, self.width, self.grid_size, self.kernel, float(self.radius),
                            float(self.tps_reg))

    @nn.compact
    def __call__(self, agnostic, cloth, train: bool = False):
        fe = dict(ngf=self.ngf, n_layers=self.n_layers, feat_dim=self.feat_dim)
        fa = l2_normalize(FeatureExtraction(**fe, name="extractionA")(agnostic, train))
        fb = l2_normalize(FeatureExtraction(**fe, name="extractionB")(cloth, train))
        theta = FeatureRegression(2 * self.grid_size ** 2, tuple(self.reg_widths), name="regression")(
            correlation(fa, fb), train)
        return self.grid_gen(theta), theta


# ====================================================================== TOM / TOFM
class UnetBlock(nn.Module):
    """cp-vton UnetSkipConnectionBlock with InstanceNorm (so every conv has a bias).
    Down: [LeakyReLU 0.2] -> conv4x4/2 -> [IN]; up: ReLU -> bilinear x2 -> conv3x3 -> IN
    (the outermost too). Non-outermost blocks return concat(x, block(x))."""
    outer: int
    inner: int
    depth: int          # blocks below this one (0 = innermost)
    widths: Sequence[int]
    outermost: bool = False

    @nn.compact
    def __call__(self, x):
        y = x if self.outermost else nn.leaky_relu(x, 0.2)
        y = Conv(self.inner, 4, 2, 1, name="down")(y)
        if self.depth > 0:
            if not self.outermost:
                y = instance_norm(y)
            y = UnetBlock(self.inner, self.widths[1], self.depth - 1, self.widths[1:], name="inner")(y)
        y = upsample_bilinear(nn.relu(y))
        y = instance_norm(Conv(self.outer, 3, 1, 1, name="up")(y))
        return y if self.outermost else jnp.concatenate([x, y], -1)


class UnetGenerator(nn.Module):
    """UnetGenerator(in, out, num_downs, ngf, InstanceNorm2d): block widths ngf, 2ngf, 4ngf,
    8ngf, then 8ngf for the remaining num_downs - 4. Raw outputs [B, H, W, out]."""
    out_ch: int = 4
    num_downs: int = 6
    ngf: int = 64

    @nn.compact
    def __call__(self, x):
        widths = [self.ngf * m for m in (1, 2, 4, 8)] + [self.ngf * 8] * (self.num_downs - 4)
        return UnetBlock(self.out_ch, widths[0], self.num_downs - 1, widths, outermost=True, name="model")(x)


def tryon_compose(raw, warped_cloth):
    """train_tom: rendered = tanh(raw[:3]), alpha = sigmoid(raw[3]),
    try-on = alpha * warped cloth + (1 - alpha) * rendered."""
    rendered, alpha = jnp.tanh(raw[..., :3]), jax.nn.sigmoid(raw[..., 3:4])
    return alpha * warped_cloth + (1.0 - alpha) * rendered, rendered, alpha


# ====================================================================== Refine / LPM
class Refine(nn.Module):
    """ACGPN Refine.refine: 5 levels of (conv3x3-IN-ReLU) x2, widths `widths` (64..1024),
    max-pool between levels (dropout disabled), nearest-x2 up-convs with skips, final conv
    to out_ch with no norm. Torch names conv1.0 / conv1.3 ..., up6.1 ..., conv9.6."""
    out_ch: int = 4
    widths: Sequence[int] = (64, 128, 256, 512, 1024)
    init_std: float = 0.02        # pix2pixHD weights_init

    def double(self, x, w, name, final: int = 0):
        s = self.init_std
        x = nn.relu(instance_norm(Conv(w, 3, 1, 1, init_std=s, name=f"{name}_0")(x)))
        x = nn.relu(instance_norm(Conv(w, 3, 1, 1, init_std=s, name=f"{name}_3")(x)))
        if final:
            x = Conv(final, 3, 1, 1, init_std=s, name=f"{name}_6")(x)
        return x

    @nn.compact
    def __call__(self, x):
        w = self.widths
        skips = []
        for level in range(4):
            x = self.double(x, w[level], f"conv{level + 1}")
            skips.append(x)
            x = max_pool(x)
        x = self.double(x, w[4], "conv5")
        for i, level in enumerate(range(3, -1, -1)):
            up = upsample_nearest(x)
            up = nn.relu(instance_norm(Conv(w[level], 3, 1, 1, init_std=self.init_std, name=f"up{6 + i}_1")(up)))
            x = self.double(jnp.concatenate([skips[level], up], -1), w[level], f"conv{6 + i}",
                            final=self.out_ch if level == 0 else 0)
        return x


# ====================================================================== discriminator
class NLayerDiscriminator(nn.Module):
    """pix2pixHD NLayerDiscriminator(getIntermFeat=True, InstanceNorm, no sigmoid): conv4/2
    (no norm), n_layers - 1 conv4/2 + IN, conv4/1 + IN (LeakyReLU 0.2 each), conv4/1 -> 1;
    padding 2. Returns the n_layers + 2 layer outputs; the last is the patch score."""
    ndf: int = 64
    n_layers: int = 3
    init_std: float = 0.02

    @nn.compact
    def __call__(self, x):
        feats, nf = [], self.ndf
        s = self.init_std
        x = nn.leaky_relu(Conv(nf, 4, 2, 2, init_std=s, name="layer0_0")(x), 0.2)
        feats.append(x)
        for n in range(1, self.n_layers + 1):
            nf = min(nf * 2, 512)
            stride = 2 if n < self.n_layers else 1
            x = nn.leaky_relu(instance_norm(Conv(nf, 4, stride, 2, init_std=s, name=f"layer{n}_0")(x)), 0.2)
            feats.append(x)
        feats.append(Conv(1, 4, 1, 2, init_std=s, name=f"layer{self.n_layers + 1}_0")(x))
        return feats


class MultiscaleDiscriminator(nn.Module):
    """num_D NLayerDiscriminators; input scale i goes to `scale{num_D - 1 - i}` (the
    reference's order), scales made by AvgPool(3, 2, 1, count_include_pad=False).
    Returns [num_D][n_layers + 2] feature maps."""
    ndf: int = 64
    n_layers: int = 3
    num_d: int = 2

    @nn.compact
    def __call__(self, x):
        out = []
        for i in range(self.num_d):
            out.append(NLayerDiscriminator(self.ndf, self.n_layers, name=f"scale{self.num_d - 1 - i}")(x))
            if i != self.num_d - 1:
                x = avg_pool_exclude_pad(x)
        return out


# ====================================================================== variants
# Full-size variants are the references' modules; `tiny_*` are the same code at 64 x 48
# with small widths (tests, demos). GMM 19,057,650; TOM 25->4 21,349,252; ACGPN Refine
# 37->14 34,540,942; multiscale D (in 27) 5,578,626 (counted from the PyTorch modules).
VARIANTS = {
    "gmm": dict(kind="gmm", kernel="tps_cpvton"),
    "igmm": dict(kind="gmm", kernel="wendland_c2"),
    "tom": dict(kind="unet", out_ch=4),
    "tofm": dict(kind="unet", out_ch=4),
    "refine": dict(kind="refine", out_ch=14),
    "lpm": dict(kind="refine", out_ch=4),
    "disc": dict(kind="disc"),
    "tiny_igmm": dict(kind="gmm", kernel="wendland_c2", height=64, width=48, ngf=16, n_layers=1, feat_dim=64,
                      reg_widths=(64, 64, 32, 32)),
    "tiny_tofm": dict(kind="unet", out_ch=4, ngf=8, num_downs=4),     # 64 x 48 -> 4 x 3
    "tiny_lpm": dict(kind="refine", out_ch=4, widths=(8, 16, 32, 64, 128)),
    "tiny_disc": dict(kind="disc", ndf=8),
}
KINDS = {"gmm": GMM, "unet": UnetGenerator, "refine": Refine, "disc": MultiscaleDiscriminator}


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in VARIANTS:
        raise KeyError(f"unknown avton variant {name!r}: {sorted(VARIANTS)}")
    spec = {**VARIANTS[name], **kwargs}
    kind = spec.pop("kind")
    spec.pop("dtype", None)
    spec.pop("num_classes", None)
    return KINDS[kind](**spec)


register_variants(__name__, VARIANTS, create_model)
