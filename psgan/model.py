"""PSGAN generator (MDNet + AMM + STNet), the PSGAN++ IDNet / removal path, and the SN
PatchGAN discriminator (wtjiang98/PSGAN psgan/net.py), NHWC and batched.

  G = create_model("psgan")                       # or "psganpp" (with IDNet), "psganpp_512", "tiny"
  out = G.apply(v, x, y, mask_x, mask_y, diff_x, diff_y)            # T(x, y): x wearing y's makeup
  gamma, beta = G.apply(v, x, y, mask_x, mask_y, diff_x, diff_y, method=G.morph)   # γ̃, β̃
  out = G.apply(v, x, gamma, beta, method=G.apply_matrices)         # the official test mode
  out = G.apply(v, y2, method=G.remove)                             # R(y2) (PSGAN++, needs IDNet)

Shapes: x, y [B, H, W, 3] in [-1, 1]; masks [B, 3, H, W] (regions lip, skin, eye; 0/1);
diffs [B, 3, H/4, W/4, 136] (psgan.preprocess: masked, L2-normalised relative positions to
the 68 landmarks, (y, x) order); γ, β, γ̃, β̃ [B, H/4, W/4, 1]. The official code holds the
3 regions on the batch axis (batch 1 only); here they are a separate axis, so B > 1 works.

Exact semantics of the official forward:
- MDNet (`pnet_*`): conv7 + IN(affine) + ReLU, 2 x (conv4/2 + IN(affine) + ReLU), 3
  residual blocks (IN affine), then two 1x1 convs 4w -> 1 (`simple_spade`) give γ, β.
- STNet (`tnet_*`): the same encoder with IN(affine=False), 6 residual blocks; the makeup
  edit V <- V * (1 + γ̃) + β̃ at the input of block 4; 2 x (ConvTranspose4/2 + IN + ReLU),
  conv7 + tanh. No conv has a bias.
- AMM (`get_weight` + `atten_feature`): per region r, θ_i = [0.01 V_x(i) m_x^r(i), p_x^r(i)],
  φ_j = [0.01 V_y(j) m_y^r(j), p_y^r(j)] (V_x = STNet after block 3, V_y = MDNet after its
  blocks; masks nearest-resized as torch does); S = θ φᵀ; A = softmax(200 S) over all j
  with the entries where S == 0 dropped afterwards (`amm_softmax="code"`, the released
  sparse matrix) or a softmax restricted to in-region pairs (`"masked"`, the papers);
  γ̃ = Σ_r A^r (γ ⊙ m_y^r), β̃ likewise. Dense attention [B, 3, N, N] (N = H W / 16),
  optionally built `amm_chunk` source rows at a time and reduced at once (`amm`), so only
  [B, 3, chunk, N] of it exists: the 512² model's 3 x 16,384² attention never does.
- `atten_bottleneck_{g,b}` hold the official NONLocalBlock2D's 1x1 conv `g`, which its
  forward never applies: kept (2 parameters each) so G.pth loads and the count is exact.
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from common.layers.basic import torch_bias_init, torch_conv_init
from common.layers.spectral_norm import SNConv

# xavier_normal(gain=1) of every G conv (solver.py weights_init_xavier): N(0, 2 / (fan_in + fan_out))
xavier_normal = nn.initializers.variance_scaling(1.0, "fan_avg", "normal")
NUM_LANDMARKS = 68
DIFF_DIM = 2 * NUM_LANDMARKS
REGIONS = ("lip", "skin", "eye")


def nearest_indices(size_in: int, size_out: int) -> jnp.ndarray:
    """torch F.interpolate(mode="nearest") source indices: floor(i * in / out)."""
    scale = size_in / size_out
    return jnp.minimum(jnp.floor(jnp.arange(size_out) * scale).astype(jnp.int32), size_in - 1)


def resize_masks(masks, size: Sequence[int]):
    """[B, R, H, W] -> [B, R, h, w] by torch's nearest rule."""
    h, w = size
    masks = jnp.asarray(masks)
    return masks[:, :, nearest_indices(masks.shape[2], h)][:, :, :, nearest_indices(masks.shape[3], w)]


def conv(features, k, stride=1, pad=0, name=None):
    return nn.Conv(features, (k, k), (stride, stride), padding=[(pad, pad)] * 2, use_bias=False,
                   kernel_init=xavier_normal, name=name)


def instance_norm(affine: bool, name=None):
    return nn.InstanceNorm(epsilon=1e-5, use_scale=affine, use_bias=affine, use_fast_variance=False, name=name)


class ResidualBlock(nn.Module):
    """x + [conv3 -> IN -> ReLU -> conv3 -> IN]; names follow `main.{0,1,3,4}`."""
    dim: int
    affine: bool

    @nn.compact
    def __call__(self, x):
        h = conv(self.dim, 3, 1, 1, name="main_0")(x)
        h = nn.relu(instance_norm(self.affine, "main_1")(h))
        h = conv(self.dim, 3, 1, 1, name="main_3")(h)
        return x + instance_norm(self.affine, "main_4")(h)


class MDNet(nn.Module):
    """Makeup distill network (`pnet_*` + `simple_spade`); also the PSGAN++ IDNet."""
    width: int = 64

    def setup(self):
        w = self.width
        self.pnet_in_0, self.pnet_in_1 = conv(w, 7, 1, 3), instance_norm(True)
        self.pnet_down_1_0, self.pnet_down_1_1 = conv(2 * w, 4, 2, 1), instance_norm(True)
        self.pnet_down_2_0, self.pnet_down_2_1 = conv(4 * w, 4, 2, 1), instance_norm(True)
        self.pnet_bottleneck = [ResidualBlock(4 * w, True, name=f"pnet_bottleneck_{i + 1}") for i in range(3)]
        self.get_gamma = conv(1, 1, name="simple_spade_get_gamma")
        self.get_beta = conv(1, 1, name="simple_spade_get_beta")

    def __call__(self, y):
        """-> (feature V_y [B, h, w, 4w], γ [B, h, w, 1], β [B, h, w, 1])."""
        s = nn.relu(self.pnet_in_1(self.pnet_in_0(y)))
        s = nn.relu(self.pnet_down_1_1(self.pnet_down_1_0(s)))
        s = nn.relu(self.pnet_down_2_1(self.pnet_down_2_0(s)))
        for block in self.pnet_bottleneck:
            s = block(s)
        return s, self.get_gamma(s), self.get_beta(s)


class STNet(nn.Module):
    """Style transfer network (`tnet_*`): encode -> blocks 1..3 | edit | blocks 4..6 -> decode."""
    width: int = 64

    def setup(self):
        w = self.width
        self.tnet_in_conv = conv(w, 7, 1, 3)
        self.tnet_down_conv_1 = conv(2 * w, 4, 2, 1)
        self.tnet_down_conv_2 = conv(4 * w, 4, 2, 1)
        self.norm = instance_norm(False)          # parameter-free: one module serves every IN
        self.tnet_bottleneck = [ResidualBlock(4 * w, False, name=f"tnet_bottleneck_{i + 1}") for i in range(6)]
        # ConvTranspose2d(k4, s2, p1): flax padding k - 1 - p = 2 per side, kernel (Cin, Cout) flipped
        self.tnet_up_conv_1 = nn.ConvTranspose(2 * w, (4, 4), (2, 2), padding=((2, 2), (2, 2)), use_bias=False,
                                               transpose_kernel=True, kernel_init=xavier_normal)
        self.tnet_up_conv_2 = nn.ConvTranspose(w, (4, 4), (2, 2), padding=((2, 2), (2, 2)), use_bias=False,
                                               transpose_kernel=True, kernel_init=xavier_normal)
        self.tnet_out_0 = conv(3, 7, 1, 3)

    def encode(self, x):
        """Stem, downsampling and blocks 1..3: V_x [B, h, w, 4w] (the AMM's source feature)."""
        c = nn.relu(self.norm(self.tnet_in_conv(x)))
        c = nn.relu(self.norm(self.tnet_down_conv_1(c)))
        c = nn.relu(self.norm(self.tnet_down_conv_2(c)))
        for block in self.tnet_bottleneck[:3]:
            c = block(c)
        return c

    def decode(self, c):
        """Blocks 4..6, upsampling, conv7 + tanh."""
        for block in self.tnet_bottleneck[3:]:
            c = block(c)
        c = nn.relu(self.norm(self.tnet_up_conv_1(c)))
        c = nn.relu(self.norm(self.tnet_up_conv_2(c)))
        return jnp.tanh(self.tnet_out_0(c))

    def __call__(self, x, gamma, beta):
        return self.decode(apply_makeup(self.encode(x), gamma, beta))


def apply_makeup(v, gamma, beta):
    """The official edit V * (1 + γ) + β, single-channel maps broadcast over channels."""
    return v * (1.0 + gamma) + beta


def _sides(feat_x, feat_y, mask_x, mask_y, diff_x, diff_y, visual_weight):
    b, h, w, ch = feat_x.shape
    n = h * w

    def side(feat, mask, diff):
        m = mask.reshape(b, 3, n, 1).astype(feat.dtype)
        f = feat.reshape(b, 1, n, ch) * m * visual_weight
        return jnp.concatenate([f, diff.reshape(b, 3, n, DIFF_DIM).astype(feat.dtype)], axis=-1), m[..., 0]
    theta, mx = side(feat_x, mask_x, diff_x)
    phi, my = side(feat_y, mask_y, diff_y)
    return theta, mx, phi, my


def _rows(theta_rows, mx_rows, phi, my, temperature, softmax):
    """Attention rows [B, 3, n_rows, N] of some source pixels."""
    s = jnp.einsum("brnc,brmc->brnm", theta_rows, phi, precision=jax.lax.Precision.HIGHEST)
    logits = temperature * s
    if softmax == "code":
        keep = s != 0.0                               # the released code's nonzero() index set
        return jax.nn.softmax(logits, axis=-1) * keep
    if softmax == "masked":
        keep = (mx_rows[..., :, None] > 0) & (my[..., None, :] > 0)
        a = jax.nn.softmax(jnp.where(keep, logits, -jnp.inf), axis=-1)
        return jnp.where(keep, a, 0.0)
    raise ValueError(f"unknown amm softmax {softmax!r}: code | masked")


def attention(feat_x, feat_y, mask_x, mask_y, diff_x, diff_y, *, visual_weight: float = 0.01,
              temperature: float = 200.0, softmax: str = "code"):
    """The AMM attention [B, 3, N, N] (N = h w, row = source pixel, column = reference pixel).

    feat_* [B, h, w, C]; mask_* [B, 3, h, w] (already at feature size); diff_* [B, 3, h, w, 136]."""
    theta, mx, phi, my = _sides(feat_x, feat_y, mask_x, mask_y, diff_x, diff_y, visual_weight)
    return _rows(theta, mx, phi, my, temperature, softmax)


def morph_matrices(attn, gamma, beta, mask_y):
    """γ̃ = Σ_r A^r (γ ⊙ m_y^r), β̃ likewise: [B, h, w, 1] in the source's geometry."""
    b, h, w, _ = gamma.shape
    return tuple(o.reshape(b, h, w, 1) for o in _morph_flat(attn, gamma, beta, mask_y))


def _morph_flat(attn, gamma, beta, mask_y):
    b = gamma.shape[0]
    m = mask_y.reshape(b, 3, -1).astype(gamma.dtype)
    return tuple(jnp.einsum("brnm,brm->bn", attn, x.reshape(b, 1, -1) * m, precision=jax.lax.Precision.HIGHEST)
                 for x in (gamma, beta))


def amm(feat_x, feat_y, mask_x, mask_y, diff_x, diff_y, gamma, beta, *, visual_weight=0.01,
        temperature=200.0, softmax="code", chunk: int = 0, return_attention: bool = False):
    """(γ̃, β̃[, attention]). With `chunk`, the attention is built `chunk` source rows at a time
    and reduced at once, so at most [B, 3, chunk, N] of it exists (no attention returned)."""
    b, h, w, _ = feat_x.shape
    n = h * w
    theta, mx, phi, my = _sides(feat_x, feat_y, mask_x, mask_y, diff_x, diff_y, visual_weight)
    if not chunk or chunk >= n:
        attn = _rows(theta, mx, phi, my, temperature, softmax)
        g, bt = morph_matrices(attn, gamma, beta, mask_y)
        return (g, bt, attn) if return_attention else (g, bt)
    if return_attention:
        raise ValueError("the attention is not kept when amm_chunk is set")
    if n % chunk:
        raise ValueError(f"amm_chunk {chunk} must divide the {n} feature pixels")
    k = n // chunk
    t = theta.reshape(b, 3, k, chunk, -1).transpose(2, 0, 1, 3, 4)
    m = mx.reshape(b, 3, k, chunk).transpose(2, 0, 1, 3)

    def block(args):
        return _morph_flat(_rows(args[0], args[1], phi, my, temperature, softmax), gamma, beta, mask_y)
    g, bt = jax.lax.map(block, (t, m))                          # [k, B, chunk]
    return tuple(o.transpose(1, 0, 2).reshape(b, h, w, 1) for o in (g, bt))


class UnusedConv(nn.Module):
    """NONLocalBlock2D.g: Conv2d(1, 1, 1) with bias, never applied by the official forward."""

    @nn.compact
    def __call__(self):
        self.param("kernel", torch_conv_init, (1, 1, 1, 1), jnp.float32)
        self.param("bias", torch_bias_init(1), (1,), jnp.float32)


class Generator(nn.Module):
    """See the module docstring. `idnet=True` adds the PSGAN++ Identity Distill Network."""
    width: int = 64
    idnet: bool = False
    visual_weight: float = 0.01          # the AMM's 0.01 on the visual features (both sides)
    temperature: float = 200.0           # weight *= 200 before the softmax (code only)
    amm_softmax: str = "code"            # code | masked
    amm_chunk: int = 0                   # source rows per attention block (0: all at once)

    def setup(self):
        self.mdnet = MDNet(self.width)
        self.stnet = STNet(self.width)
        self.atten_bottleneck_g = UnusedConv()
        self.atten_bottleneck_b = UnusedConv()
        if self.idnet:
            self.id_net = MDNet(self.width)

    def _touch_unused(self):
        if self.is_initializing():
            self.atten_bottleneck_g()
            self.atten_bottleneck_b()

    def morph(self, x, y, mask_x, mask_y, diff_x, diff_y, return_attention: bool = False):
        """The official `ret=True` output: the morphed matrices (γ̃, β̃) [B, h, w, 1]; with
        `return_attention` also the attention [B, 3, N, N] (not with amm_chunk)."""
        gamma, beta, attn, _ = self._morph(x, y, mask_x, mask_y, diff_x, diff_y, return_attention)
        return (gamma, beta, attn) if return_attention else (gamma, beta)

    def _morph(self, x, y, mask_x, mask_y, diff_x, diff_y, want_attention: bool = False):
        self._touch_unused()
        v_x = self.stnet.encode(x)
        v_y, gamma, beta = self.mdnet(y)
        size = v_x.shape[1:3]
        mx, my = resize_masks(mask_x, size), resize_masks(mask_y, size)
        out = amm(v_x, v_y, mx, my, diff_x, diff_y, gamma, beta, visual_weight=self.visual_weight,
                  temperature=self.temperature, softmax=self.amm_softmax, chunk=self.amm_chunk,
                  return_attention=want_attention)
        g, b = out[:2]
        return g, b, (out[2] if want_attention else None), v_x

    def __call__(self, x, y, mask_x, mask_y, diff_x, diff_y):
        """T(x, y) in one pass (equal to the official two-pass test mode)."""
        gamma, beta, _, v_x = self._morph(x, y, mask_x, mask_y, diff_x, diff_y)
        if self.idnet and self.is_initializing():
            self.id_net(y)
        return self.stnet.decode(apply_makeup(v_x, gamma, beta))

    def apply_matrices(self, x, gamma, beta):
        """The official forward with γ, β given: MDNet and AMM skipped."""
        return self.stnet(x, gamma, beta)

    def identity_matrices(self, y):
        """PSGAN++ IDNet: (γ_y, β_y) [B, h, w, 1] from a makeup image."""
        if not self.idnet:
            raise ValueError("this generator has no IDNet (use a psganpp variant)")
        _, gamma, beta = self.id_net(y)
        return gamma, beta

    def remove(self, y):
        """PSGAN++ makeup removal R(y): IDNet's matrices applied by the same STNet, no AMM."""
        gamma, beta = self.identity_matrices(y)
        return self.stnet(y, gamma, beta)


class Discriminator(nn.Module):
    """PatchGAN with spectral norm (net.py Discriminator, norm='SN'): `repeat_num` convs
    4/2 doubling from `conv_dim`, one conv 4/1, LeakyReLU(0.01), a bias-free conv 4/1 to 1.
    The released SN (ops/spectral_norm.py) normalises with |x| + eps and iterates on every
    forward, train or eval: call with update_stats=True (and thread the new
    `spectral_stats` from call to call, as its in-place buffers do)."""
    conv_dim: int = 64
    repeat_num: int = 3

    @nn.compact
    def __call__(self, x, update_stats: bool = True):
        def sn(features, stride, name, bias=True):
            return SNConv(features, (4, 4), (stride, stride), 1, use_bias=bias, normalize="add", name=name)
        dim = self.conv_dim
        h = nn.leaky_relu(sn(dim, 2, "main_0")(x, update_stats), 0.01)
        for i in range(1, self.repeat_num):
            h = nn.leaky_relu(sn(dim * 2, 2, f"main_{2 * i}")(h, update_stats), 0.01)
            dim *= 2
        h = nn.leaky_relu(sn(dim * 2, 1, f"main_{2 * self.repeat_num}")(h, update_stats), 0.01)
        return sn(1, 1, "conv1", bias=False)(h, update_stats)


# ---------------------------------------------------------------- variants
VARIANTS = {
    # the released PSGAN generator (MT, 256²)
    "psgan": dict(width=64, idnet=False),
    # PSGAN++: + IDNet (a second MDNet) for removal; the same nets at 256² and 512² (MT-HR)
    "psganpp": dict(width=64, idnet=True),
    "psganpp_512": dict(width=64, idnet=True, amm_chunk=1024),
    # CPU tests / demo
    "tiny": dict(width=8, idnet=True),
}
IMAGE_SIZES = {"psgan": 256, "psganpp": 256, "psganpp_512": 512, "tiny": 64}


def create_model(name: str, **kwargs) -> Generator:
    if name not in VARIANTS:
        raise KeyError(f"unknown PSGAN variant {name!r}; known: {sorted(VARIANTS)}")
    return Generator(**{**VARIANTS[name], **kwargs})


def dummy_inputs(batch: int, size: int):
    """Zero inputs of the right shapes for init / eval_shape."""
    h = size // 4
    x = jnp.zeros((batch, size, size, 3))
    m = jnp.zeros((batch, 3, size, size))
    d = jnp.zeros((batch, 3, h, h, DIFF_DIM))
    return x, x, m, m, d, d


def count_params(tree) -> int:
    return sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(tree))
