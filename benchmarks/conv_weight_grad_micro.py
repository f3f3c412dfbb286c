"""Weight gradient of VOLO-D1's stride-1 stem conv (3x3, 64 -> 64 over [16, 112, 112, 64]):
XLA's (the autodiff convolution), common.layers.banded_conv's, and PyTorch's
(torch.nn.grad.conv2d_weight, oneDNN), medians of 5, interleaved per round.

  python benchmarks/conv_weight_grad_micro.py
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from common.bench import interleaved
from common.layers.banded_conv import banded_weight_grad

B, H, C, K = 16, 112, 64, 3
PAD = ((1, 1), (1, 1))


def main():
    import torch
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((B, H, H, C), np.float32))
    dy = jnp.asarray(rng.standard_normal((B, H, H, C), np.float32))
    w = jnp.asarray(rng.standard_normal((K, K, C, C), np.float32) * 0.05)

    def xla_grad(x, dy, w):
        conv = lambda w: lax.conv_general_dilated(x, w, (1, 1), PAD, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.vjp(conv, w)[1](dy)[0]
    xla = jax.jit(xla_grad)
    banded = jax.jit(lambda x, dy: banded_weight_grad(x, dy, w.shape, PAD))
    xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous()
    dyt = torch.from_numpy(np.array(dy)).permute(0, 3, 1, 2).contiguous()
    diff = float(jnp.abs(banded(x, dy) - xla(x, dy, w)).max())
    scale = float(jnp.abs(xla(x, dy, w)).max())
    t = interleaved({
        "xla": lambda: jax.block_until_ready(xla(x, dy, w)),
        "banded": lambda: jax.block_until_ready(banded(x, dy)),
        "torch": lambda: torch.nn.grad.conv2d_weight(xt, (C, C, K, K), dyt, padding=1),
    }, rounds=2, steps=5, warmup=1)
    for name, r in t.items():
        print(f"{name:7s} {r['median_s'] * 1e3:7.1f} ms ±{r['spread'] * 100:.0f}%")
    print(f"banded vs xla: max abs diff {diff:.1e} (max |grad| {scale:.0f})")


if __name__ == "__main__":
    main()
