"""PyTorch-equivalent building blocks in NHWC: Conv2d with the references' inits and
padding, InstanceNorm2d(affine=False), BatchNorm2d, the resampling ops the U-Nets use.

Kernels are HWIO with logical axes (None, None, "conv_in", "conv_out") so the configs'
rules shard them; every kernel and bias is created here so the converter is a rename table
(OIHW -> HWIO)."""
import flax.linen as nn
import jax
import jax.numpy as jnp

from common.layers.basic import torch_bias_init, torch_conv_init


class Conv(nn.Module):
    """torch.nn.Conv2d(in, features, k, stride, padding, bias). `init_std` > 0 draws the
    kernel from N(0, init_std) (CP-VTON / pix2pixHD weights_init); 0 keeps PyTorch's
    default U(+-1/sqrt(fan_in)). The bias always keeps PyTorch's default."""
    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    init_std: float = 0.0

    @nn.compact
    def __call__(self, x):
        cin = x.shape[-1]
        fan_in = cin * self.kernel * self.kernel
        init = nn.initializers.normal(self.init_std) if self.init_std > 0 else torch_conv_init
        k = self.param("kernel", nn.with_logical_partitioning(init, (None, None, "conv_in", "conv_out")),
                       (self.kernel, self.kernel, cin, self.features))
        p = self.padding
        y = jax.lax.conv_general_dilated(x, k.astype(x.dtype), (self.stride, self.stride), ((p, p), (p, p)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            b = self.param("bias", nn.with_logical_partitioning(torch_bias_init(fan_in), ("conv_out",)),
                           (self.features,))
            y = y + b.astype(y.dtype)
        return y


class Linear(nn.Module):
    """torch.nn.Linear with PyTorch's default init; kernel (in, out)."""
    features: int

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        k = self.param("kernel", nn.with_logical_partitioning(torch_conv_init, ("embed", None)),
                       (fan_in, self.features))
        b = self.param("bias", nn.with_logical_partitioning(torch_bias_init(fan_in), (None,)), (self.features,))
        return x @ k + b


def instance_norm(x, eps: float = 1e-5):
    """InstanceNorm2d(affine=False, track_running_stats=False): per sample and channel over
    H, W with the biased variance."""
    mean = x.mean((1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean((1, 2), keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


class BatchNorm(nn.Module):
    """torch.nn.BatchNorm2d(eps, momentum 0.1) in NHWC: training normalises by the batch's
    mean and biased variance (two-pass) over B, H, W and updates the running statistics
    with the unbiased variance, as PyTorch does; eval uses the running statistics.
    Parameters scale / bias, statistics batch_stats mean / var (Flax's names). Written
    out rather than flax's nn.BatchNorm, which keeps the biased variance as its running
    statistic (PyTorch keeps the unbiased one, n / (n - 1) larger)."""
    train: bool = False
    momentum: float = 0.1
    epsilon: float = 1e-5
    gamma_std: float = 0.0

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        g = self.gamma_std
        scale_init = ((lambda k, s, d=jnp.float32: 1.0 + g * jax.random.normal(k, s, d))
                      if g > 0 else nn.initializers.ones)
        scale = self.param("scale", nn.with_logical_partitioning(scale_init, ("conv_out",)), (c,))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)), (c,))
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        if self.train:
            axes = tuple(range(x.ndim - 1))
            mean = x.mean(axes)
            var = ((x - mean) ** 2).mean(axes)
            if not self.is_initializing():
                n = x.size // c
                m = self.momentum
                ra_mean.value = (1 - m) * ra_mean.value + m * jax.lax.stop_gradient(mean)
                ra_var.value = (1 - m) * ra_var.value + m * jax.lax.stop_gradient(var) * n / max(n - 1, 1)
        else:
            mean, var = ra_mean.value, ra_var.value
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


def batch_norm(train: bool, name: str, gamma_std: float = 0.0):
    """BatchNorm2d(eps 1e-5, momentum 0.1). Statistics over the global batch under jit
    (the references trained on one GPU). `gamma_std` > 0 draws the scale from
    N(1, gamma_std) (CP-VTON's weights_init_normal), else ones."""
    return BatchNorm(train=train, gamma_std=gamma_std, name=name)


def upsample_nearest(x, factor: int = 2):
    return jnp.repeat(jnp.repeat(x, factor, 1), factor, 2)


def upsample_bilinear(x, factor: int = 2):
    """nn.Upsample(scale_factor, mode='bilinear', align_corners=False)."""
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, h * factor, w * factor, c), "bilinear", antialias=False)


def max_pool(x, k: int = 2):
    return nn.max_pool(x, (k, k), (k, k))


def avg_pool_exclude_pad(x, k: int = 3, stride: int = 2, pad: int = 1):
    """AvgPool2d(k, stride, padding=pad, count_include_pad=False)."""
    padding = ((pad, pad), (pad, pad))
    s = nn.avg_pool(x, (k, k), (stride, stride), padding, count_include_pad=True) * (k * k)
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    n = nn.avg_pool(ones, (k, k), (stride, stride), padding, count_include_pad=True) * (k * k)
    return s / n
