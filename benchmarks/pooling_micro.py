"""PoolFormer's token mixer (AvgPool 3x3, stride 1, count_include_pad=False, minus the input) at
PoolFormer-S12's stage shapes, batch 16: flax's avg_pool (XLA reduce-window) against
`metaformer.model.pool_minus_identity`, forward and forward + backward, medians of 7.

  python benchmarks/pooling_micro.py
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common import bench
from metaformer.model import pool_minus_identity


def reduce_window(x):
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False) - x


def main():
    rng = np.random.default_rng(0)
    print("| input | reduce-window fwd | ours fwd | reduce-window fwd+bwd | ours fwd+bwd | max abs diff (value / grad) |")
    print("|---|---|---|---|---|---|")
    for shape in [(16, 56, 56, 64), (16, 28, 28, 128), (16, 14, 14, 320), (16, 7, 7, 512)]:
        x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
        ours = lambda x: pool_minus_identity(x, 3)
        row, outs = [], []
        for f in (reduce_window, ours):
            grad = jax.grad(lambda x, f=f: jnp.sum(jnp.sin(f(x))))
            row += [bench.median_ms(jax.jit(f), x, steps=7), bench.median_ms(jax.jit(grad), x, steps=7)]
            outs.append((f(x), grad(x)))
        diffs = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(*outs)]
        print(f"| {shape} | {row[0]:.1f} ms | {row[2]:.1f} ms | {row[1]:.1f} ms | {row[3]:.1f} ms "
              f"| {diffs[0]:.1e} / {diffs[1]:.1e} |", flush=True)


if __name__ == "__main__":
    main()
