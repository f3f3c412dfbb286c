"""Stride-1 2-D convolution whose weight gradient is computed band by band.

XLA:CPU computes a convolution's weight gradient as one more convolution (the input
correlated with the output gradient), which at a vision stem's shapes runs far below the
matmul peak: for a 3x3, 64 -> 64 conv over [16, 112, 112, 64] it took 620-900 ms, against
about 120 ms for PyTorch's oneDNN kernel on the same 2 cores; two such gradients were 15% of
a train step. The weight gradient is a sum over output positions of (input patch)^T x (output
gradient). Here it is accumulated over bands of output rows (`lax.scan` over images x bands):
each band's patches are gathered into one [rows, kh*kw*C_in] matrix small enough to stay in
cache and multiplied by the band's [rows, C_out] gradient, so every byte of the input and the
gradient is read from memory about once: 310-340 ms at the shape above
(benchmarks/results.md). The forward product and the input gradient stay XLA's convolution.
The result equals the convolution's up to float rounding (summation order).

Only on CPU by default (`method="auto"`): elsewhere the convolution's own gradient is kept.
`BandedConv` has nn.Conv's parameters (kernel [kh, kw, C_in, C_out], bias [C_out]).
"""
import contextlib
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")
BAND_ROWS = 2048  # output positions per band: [2048, 9 * 64] patches are 4.7 MB in float32


def _conv(x, kernel, padding):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMS)


def band_height(height: int, width: int, rows: int = BAND_ROWS) -> int:
    """The largest divisor of `height` whose band of `width`-wide rows has at most `rows` positions."""
    return max([d for d in range(1, height + 1) if height % d == 0 and d * width <= rows] or [1])


def banded_weight_grad(x, grad, kernel_shape, padding):
    """d(sum(grad * conv(x, k))) / dk for a stride-1 NHWC conv: [kh, kw, C_in, C_out]."""
    kh, kw, cin, cout = kernel_shape
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    b, ho, wo, _ = grad.shape
    hb = band_height(ho, wo)
    n = ho // hb
    # overlapping input bands: output rows [r*hb, (r+1)*hb) read input rows [r*hb, r*hb + hb + kh - 1)
    starts = jnp.arange(n) * hb
    bands = jax.vmap(lambda r: lax.dynamic_slice_in_dim(xp, r, hb + kh - 1, axis=1), out_axes=1)(starts)
    bands = bands.reshape(b * n, hb + kh - 1, xp.shape[2], cin)
    grads = grad.reshape(b * n, hb * wo, cout)

    def band(acc, inputs):
        xb, gb = inputs
        patches = jnp.concatenate([xb[i:i + hb, j:j + wo] for i in range(kh) for j in range(kw)], axis=-1)
        return acc + patches.reshape(hb * wo, kh * kw * cin).T @ gb, None

    acc = jnp.zeros((kh * kw * cin, cout), jnp.promote_types(x.dtype, grad.dtype))
    acc, _ = lax.scan(band, acc, (bands, grads))
    return acc.reshape(kh, kw, cin, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def banded_conv(x: jax.Array, kernel: jax.Array, padding: tuple[tuple[int, int], tuple[int, int]]):
    """Stride-1 NHWC conv with an HWIO kernel and explicit ((top, bottom), (left, right))
    padding; its kernel gradient is `banded_weight_grad`."""
    return _conv(x, kernel, padding)


def _fwd(x, kernel, padding):
    return _conv(x, kernel, padding), (x, kernel)


def _bwd(padding, res, grad):
    x, kernel = res
    _, input_vjp = jax.vjp(lambda x_: _conv(x_, kernel, padding), x)
    dk = banded_weight_grad(x, grad, kernel.shape, padding).astype(kernel.dtype)
    return input_vjp(grad)[0], dk


banded_conv.defvjp(_fwd, _bwd)


_COUNTING = [False]


@contextlib.contextmanager
def unrolled_for_cost_analysis():
    """Within it, "auto" traces lax's conv: XLA's cost analysis counts a loop body once, so a
    program traced here shows the weight gradient's every FLOP (common.bench counts FLOPs so)."""
    _COUNTING[0] = True
    try:
        yield
    finally:
        _COUNTING[0] = False


def conv2d(x, kernel, padding, method: str = "auto"):
    """Stride-1 conv: "banded" (this module's weight gradient), "xla" (lax's), or "auto"
    (banded on CPU, where it was measured; lax's elsewhere)."""
    if method not in ("auto", "banded", "xla"):
        raise ValueError(f"conv2d method must be 'auto', 'banded' or 'xla', got {method!r}")
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    if method == "xla" or (method == "auto" and (jax.default_backend() != "cpu" or _COUNTING[0])):
        return _conv(x, kernel, padding)
    return banded_conv(x, kernel, padding)


class BandedConv(nn.Module):
    """nn.Conv(features, kernel_size, strides=1, padding) for NHWC input, by `conv2d`."""
    features: int
    kernel_size: Sequence[int]
    padding: Sequence[tuple[int, int]]
    use_bias: bool = True
    dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros
    method: str = "auto"

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, tuple(self.kernel_size) + (x.shape[-1], self.features))
        y = conv2d(x.astype(self.dtype), jnp.asarray(kernel, self.dtype), self.padding, self.method)
        if self.use_bias:
            y = y + jnp.asarray(self.param("bias", self.bias_init, (self.features,)), self.dtype)
        return y
