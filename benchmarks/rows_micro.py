"""fwd+bwd of the contractions that common.layers.as_rows and ViP's mixing reformulate, old
form against new, interleaved (medians; sin loss), batch 16:

- a GELU MLP on [..., C] tokens: contraction over the last axis with every leading axis kept
  (nn.Dense's dot_general) vs the rows [N, C] (`as_rows`);
- ViP's h / w mixing: the einsum over (height or width, s) vs explicit transposes + one 2-D matmul.

  python benchmarks/rows_micro.py
"""
import jax
import jax.numpy as jnp
import numpy as np

from common.bench import interleaved
from common.layers.basic import _mlp_rows, as_rows
from permutator.model import mix_height, mix_width


def grad_fn(f, *args):
    g = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums=tuple(range(len(args)))))
    return lambda: jax.block_until_ready(g(*args))


def einsum_height(x, k, seg):
    b, h, w, c = x.shape
    s = c // seg
    return jnp.einsum("bhwgs,hsit->biwgt", x.reshape(b, h, w, seg, s), k.reshape(h, s, h, s)).reshape(x.shape)


def einsum_width(x, k, seg):
    b, h, w, c = x.shape
    s = c // seg
    return jnp.einsum("bhwgs,wsvt->bhvgt", x.reshape(b, h, w, seg, s), k.reshape(w, s, w, s)).reshape(x.shape)


def main():
    rng = np.random.default_rng(0)
    normal = lambda *s: jnp.asarray(rng.standard_normal(s, np.float32))
    print("| input | op | old fwd+bwd | new fwd+bwd |\n|---|---|---|---|")
    for lead, c, r in (((16, 16, 16), 384, 3), ((16, 32, 32), 192, 3), ((16, 56, 56), 64, 4), ((16, 196), 384, 3)):
        x, p = normal(*lead, c), (normal(c, r * c) * 0.05, jnp.zeros(r * c), normal(r * c, c) * 0.05, jnp.zeros(c))
        t = interleaved({"old": grad_fn(lambda x, *p: _mlp_rows(x, *p), x, *p),
                         "new": grad_fn(lambda x, *p: as_rows(lambda rows: _mlp_rows(rows, *p), x), x, *p)},
                        rounds=2, steps=3, warmup=1)
        print(f"| {lead + (c,)} | MLP x{r} | {t['old']['median_s'] * 1e3:.1f} ms | {t['new']['median_s'] * 1e3:.1f} ms |")
    for hw, c, seg in ((32, 192, 32), (16, 384, 16)):
        x, k = normal(16, hw, hw, c), normal(c, c) * 0.05
        for name, old, new in (("h-mix", einsum_height, mix_height), ("w-mix", einsum_width, mix_width)):
            assert float(jnp.abs(old(x, k, seg) - new(x, k, seg)).max()) < 1e-4
            t = interleaved({"old": grad_fn(lambda x, k: old(x, k, seg), x, k),
                             "new": grad_fn(lambda x, k: new(x, k, seg), x, k)}, rounds=2, steps=3, warmup=1)
            print(f"| (16, {hw}, {hw}, {c}) | ViP {name} | {t['old']['median_s'] * 1e3:.1f} ms | "
                  f"{t['new']['median_s'] * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
