"""Depth-wise convolution written as what XLA:CPU compiles well.

`lax.conv_general_dilated` with feature_group_count = C runs as a naive grouped loop on
XLA:CPU: a 3x3x3 depth-wise conv over a [2, 8, 28, 28, 128] volume took 0.92 s forward and
2.3 s forward + backward on this project's 2-core development machine, about 0.1 GFLOP/s;
such convs were over half of a 3-D video transformer's train step. The same product as a
sum of shifted slices times the per-channel weights is one fused elementwise loop: 4 ms
forward, 89 ms forward + backward (`python benchmarks/depthwise_micro.py`). A kernel whose
stride equals its size (non-overlapping windows, e.g. pooling convs) is a reshape and a
contraction instead. Both give the grouped convolution's result up to float rounding
(summation order). Only on CPU by default (`method="auto"`): elsewhere the grouped
convolution is kept, since GPUs have tuned depth-wise kernels and the slices were measured on
CPU only.

`DepthwiseConv` has nn.Conv's parameters (kernel [*k, 1, C], bias [C]) and init, so
checkpoints and converters written for nn.Conv(feature_group_count=C) load unchanged.
"""
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Padding = str | Sequence[tuple[int, int]]


def depthwise_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: Padding = "VALID",
                   method: str = "auto") -> jax.Array:
    """x [B, *spatial, C] with kernel [*k, 1, C] -> [B, *out, C], as a grouped conv with groups = C.

    method: "slices" (this module's formulation), "grouped" (lax's grouped convolution) or
    "auto": slices on CPU, grouped elsewhere (GPUs have tuned depth-wise kernels; the slices
    were measured on CPU only).
    """
    nd = x.ndim - 2
    size = tuple(int(k) for k in kernel.shape[:nd])
    strides = tuple(int(s) for s in strides)
    if len(strides) != nd or kernel.shape[nd] != 1 or kernel.shape[-1] != x.shape[-1]:
        raise ValueError(f"depth-wise kernel {kernel.shape} / strides {strides} do not fit input {x.shape}")
    if method not in ("auto", "slices", "grouped"):
        raise ValueError(f"depthwise_conv method {method!r}: use 'auto', 'slices' or 'grouped'")
    if method == "grouped" or (method == "auto" and jax.default_backend() != "cpu"):
        if nd > 3:
            raise ValueError(f"the grouped path takes 1-3 spatial dimensions, not {nd}")
        spatial = "DHW"[-nd:]
        return lax.conv_general_dilated(x, kernel, strides, padding, feature_group_count=x.shape[-1],
                                        dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))
    w = kernel.reshape(size + (x.shape[-1],))
    if padding != "VALID":
        x = jnp.pad(x, ((0, 0),) + tuple(tuple(p) for p in padding) + ((0, 0),))
    out = tuple((n - k) // s + 1 for n, k, s in zip(x.shape[1:-1], size, strides))
    if strides == size:
        # Non-overlapping windows: [B, o1, k1, o2, k2, ..., C] contracted with [k1, k2, ..., C].
        x = x[(slice(None),) + tuple(slice(0, o * k) for o, k in zip(out, size))]
        x = x.reshape((x.shape[0],) + sum(((o, k) for o, k in zip(out, size)), ()) + (x.shape[-1],))
        o_ax, k_ax = "defghijk"[:nd], "DEFGHIJK"[:nd]  # z: batch, c: channels
        spec = "z" + "".join(o + k for o, k in zip(o_ax, k_ax)) + "c," + k_ax + "c->z" + o_ax + "c"
        return jnp.einsum(spec, x, w)
    acc = None
    for offset in np.ndindex(*size):
        start = (0,) + offset + (0,)
        limit = (x.shape[0],) + tuple(i + (o - 1) * s + 1 for i, o, s in zip(offset, out, strides)) + (x.shape[-1],)
        term = lax.slice(x, start, limit, (1,) + strides + (1,)) * w[offset]
        acc = term if acc is None else acc + term
    return acc


class DepthwiseConv(nn.Module):
    """nn.Conv(features=C, feature_group_count=C) for channels-last input, computed by `depthwise_conv`."""
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None  # default: 1 in every dimension, as nn.Conv
    padding: Padding = "VALID"
    use_bias: bool = True
    dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        size = tuple(int(k) for k in self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, size + (1, c))
        y = depthwise_conv(x.astype(self.dtype), jnp.asarray(kernel, self.dtype),
                           self.strides or (1,) * len(size), self.padding)
        if self.use_bias:
            y = y + jnp.asarray(self.param("bias", self.bias_init, (c,)), self.dtype)
        return y
