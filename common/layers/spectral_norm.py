"""Spectral normalisation of Conv / Dense kernels, equal to torch.nn.utils.spectral_norm.

The weight matrix is the torch weight viewed as (out, -1): OIHW flattened over (I, H, W)
for a conv, (out, in) for a linear layer. The power-iteration vectors u (out,) and v (-1,)
live in the `spectral_stats` collection (not in params: no optimizer sees them).

  update_stats=True  (torch train mode): n_power_iterations of v = normalize(W^T u),
                     u = normalize(W v) from the stored u, under stop_gradient; sigma =
                     u . (W v) with the gradient through W only; the new u, v are stored when
                     the collection is mutable.
  update_stats=False (torch eval mode): sigma = u . (W v) from the stored u, v.

`normalize="max"` is torch's x / max(|x|, eps); `"add"` is x / (|x| + eps), the older
hand-written form several released GAN codes use (with parameters weight_bar/_u/_v and
the power iteration also in eval mode: call those with update_stats=True throughout).

`from_torch(weight_orig, weight_u, weight_v, bias)` gives the {params, spectral_stats} of a
layer from a torch state_dict (weight_orig = weight_bar in the older form).
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.basic import torch_bias_init, torch_conv_init

COLLECTION = "spectral_stats"


def _normalize(x, eps: float, mode: str):
    norm = jnp.sqrt(jnp.sum(x * x))
    if mode == "max":
        return x / jnp.maximum(norm, eps)
    if mode == "add":
        return x / (norm + eps)
    raise ValueError(f"unknown normalize {mode!r}: max | add")


class _SpectralNormed(nn.Module):
    """Holds u, v and returns kernel / sigma; `matrix(kernel)` is the torch (out, -1) view.
    Subclasses declare n_power_iterations, eps, normalize after their own fields."""

    def matrix(self, kernel):
        raise NotImplementedError

    def normed(self, kernel, update_stats: bool):
        w = self.matrix(kernel).astype(jnp.float32)
        height, width = w.shape

        def init_vec(n):
            def init():
                rng = self.make_rng("params")
                return _normalize(jax.random.normal(rng, (n,), jnp.float32), self.eps, "max")
            return init
        u_var = self.variable(COLLECTION, "u", init_vec(height))
        v_var = self.variable(COLLECTION, "v", init_vec(width))
        u, v = u_var.value, v_var.value
        if update_stats:
            wd = jax.lax.stop_gradient(w)
            for _ in range(self.n_power_iterations):
                v = _normalize(wd.T @ u, self.eps, self.normalize)
                u = _normalize(wd @ v, self.eps, self.normalize)
            u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
            if not self.is_initializing() and self.is_mutable_collection(COLLECTION):
                u_var.value, v_var.value = u, v
        sigma = jnp.dot(u, w @ v)
        return kernel / sigma.astype(kernel.dtype)


class SNConv(_SpectralNormed):
    """nn.Conv2d under spectral_norm (NHWC in, kernel HWIO, explicit symmetric padding);
    PyTorch's default init (kaiming_uniform a=sqrt(5), bias U(+-1/sqrt(fan_in)))."""
    features: int = 1
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: Any = 0                      # int p (torch's padding=p) or [(lo, hi), (lo, hi)]
    use_bias: bool = True
    dtype: Any = jnp.float32
    n_power_iterations: int = 1
    eps: float = 1e-12
    normalize: str = "max"

    def matrix(self, kernel):             # HWIO -> OIHW -> (O, I*H*W)
        return jnp.transpose(kernel, (3, 2, 0, 1)).reshape(kernel.shape[3], -1)

    @nn.compact
    def __call__(self, x, update_stats: bool = True):
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        kernel = self.param("kernel", torch_conv_init, (kh, kw, cin, self.features), jnp.float32)
        kernel = self.normed(kernel, update_stats)
        pad = self.padding
        if isinstance(pad, int):
            pad = [(pad, pad), (pad, pad)]
        y = jax.lax.conv_general_dilated(x.astype(self.dtype), kernel.astype(self.dtype), tuple(self.strides),
                                         [tuple(p) for p in pad], dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            y = y + self.param("bias", torch_bias_init(kh * kw * cin), (self.features,), jnp.float32).astype(self.dtype)
        return y


class SNDense(_SpectralNormed):
    """nn.Linear under spectral_norm (kernel (in, out) as nn.Dense's)."""
    features: int = 1
    use_bias: bool = True
    dtype: Any = jnp.float32
    n_power_iterations: int = 1
    eps: float = 1e-12
    normalize: str = "max"

    def matrix(self, kernel):
        return kernel.T

    @nn.compact
    def __call__(self, x, update_stats: bool = True):
        cin = x.shape[-1]
        kernel = self.param("kernel", torch_conv_init, (cin, self.features), jnp.float32)
        kernel = self.normed(kernel, update_stats)
        y = x.astype(self.dtype) @ kernel.astype(self.dtype)
        if self.use_bias:
            y = y + self.param("bias", torch_bias_init(cin), (self.features,), jnp.float32).astype(self.dtype)
        return y


def from_torch(weight_orig, weight_u, weight_v, bias=None) -> dict:
    """{'params': {kernel[, bias]}, 'spectral_stats': {u, v}} of one SNConv / SNDense from
    torch arrays: weight_orig (OIHW or (out, in)), weight_u (out,), weight_v (-1,)."""
    w = np.array(weight_orig, np.float32)          # copies: torch updates u, v in place
    kernel = np.transpose(w, (2, 3, 1, 0)) if w.ndim == 4 else w.T
    params = {"kernel": kernel}
    if bias is not None:
        params["bias"] = np.array(bias, np.float32)
    return {"params": params, COLLECTION: {"u": np.array(weight_u, np.float32).reshape(-1),
                                           "v": np.array(weight_v, np.float32).reshape(-1)}}
