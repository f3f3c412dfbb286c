"""Depth-wise conv at DualFormer-T's shapes (16x224² clip, batch 2): XLA:CPU's grouped
convolution against `common.layers.depthwise.depthwise_conv`, forward and forward + backward
(gradients of input and kernel), medians of 5, with the largest difference of the outputs.

  python benchmarks/depthwise_micro.py
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from common import bench
from common.layers.depthwise import depthwise_conv

# (input, kernel, stride, padding): PEG of stages 0-1, GP-MSA's coarse and fine pooling convs.
CASES = [((2, 8, 56, 56, 64), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3),
         ((2, 8, 28, 28, 128), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3),
         ((2, 8, 56, 56, 64), (1, 7, 7), (1, 7, 7), "VALID"),
         ((2, 8, 28, 28, 128), (1, 4, 4), (1, 4, 4), "VALID")]


def grouped(x, w, stride, padding):
    return lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
                                    feature_group_count=x.shape[-1])


def main():
    rng = np.random.default_rng(0)
    print("| input | kernel / stride | grouped fwd | ours fwd | grouped fwd+bwd | ours fwd+bwd | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for shape, kernel, stride, padding in CASES:
        x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
        w = jnp.asarray(rng.standard_normal(kernel + (1, shape[-1])), jnp.float32)
        row = []
        for f in (grouped, depthwise_conv):
            fwd = jax.jit(lambda x, w, f=f: f(x, w, stride, padding))
            grad = jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(f(x, w, stride, padding) ** 2), argnums=(0, 1)))
            row.append((bench.median_ms(fwd, x, w), bench.median_ms(grad, x, w), fwd(x, w)))
        diff = float(jnp.max(jnp.abs(row[0][2] - row[1][2])))
        print(f"| {shape} | {kernel} / {stride} | {row[0][0]:.1f} ms | {row[1][0]:.1f} ms | {row[0][1]:.1f} ms "
              f"| {row[1][1]:.1f} ms | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
