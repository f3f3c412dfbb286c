"""XLA's FLOP count of the PnP-DETR transformer (sampler + 6 encoder + 6 decoder layers) per
poll ratio alpha, beside the analytic multiply-add estimate, at an 800 x 1066 input.

    python benchmarks/pnp_detr_flops.py            # prints a markdown table

Counts come from jax.jit(...).lower(...).compile().cost_analysis() of pnp_detr.transformer.
Transformer on one image whose feature map is all valid (R50: 25 x 34 = 850 cells, M = 30;
DC5: 50 x 67 = 3,350 cells, M = 100); nothing runs. XLA counts a multiply-add as 2 FLOPs
and also counts element-wise work (softmax, LayerNorm, ...), so "XLA / 2" is compared
with multiply-adds. A Python-float alpha compiles a program with exactly N = trunc(L alpha)
fine slots; the training program (traced alpha) always has trunc(0.8 L) slots, i.e. the
cost of alpha = 0.8 whatever alpha is drawn.

Analytic multiply-adds (T = N + M tokens, Q = 100 queries, d = 256, FFN 2048):
  encoder layer  4 T d^2 + 2 T^2 d + 2 T d 2048
  decoder layer  [4 Q d^2 + 2 Q^2 d] + [2 Q d^2 + 2 T d^2 + 2 Q T d] + 2 Q d 2048
  sampler (official, k/v projections of the R = L - N pooled cells)  L (d^2 + d) + R (d M + d^2 + 2 M d)
  sampler (ours: k_proj on all L cells, v_proj after pooling)         L (d^2 + d) + L d M + M d^2 + 2 L M d
"""
import jax
import jax.numpy as jnp

from pnp_detr.flops import transformer_flops

D, Q, FFN, LAYERS = 256, 100, 2048, 6
ALPHAS = (0.33, 0.5, 0.65, 0.8)
SETTINGS = {"R50": (25 * 34, 30), "R50-DC5": (50 * 67, 100)}   # (L, M) at 800 x 1066


def transformer_macs(tokens: int) -> float:
    encoder = 4 * tokens * D ** 2 + 2 * tokens ** 2 * D + 2 * tokens * D * FFN
    decoder = (4 * Q * D ** 2 + 2 * Q ** 2 * D) + (2 * Q * D ** 2 + 2 * tokens * D ** 2 + 2 * Q * tokens * D) \
        + 2 * Q * D * FFN
    return LAYERS * (encoder + decoder)


def official_sampler_macs(cells: int, polled: int, m: int) -> float:
    rest = cells - polled
    return cells * (D ** 2 + D) + rest * (D * m + D ** 2 + 2 * m * D)


def our_sampler_macs(cells: int, m: int) -> float:
    return cells * (D ** 2 + D) + cells * D * m + m * D ** 2 + 2 * cells * m * D


def xla_flops(cells: int, m: int, alpha, use_sampler: bool = True) -> float:
    return transformer_flops(cells, alpha, num_pool_tokens=m, use_sampler=use_sampler)


def main():
    g = 1e9
    print("| setting | alpha | tokens N+M | XLA GFLOPs | XLA / 2 (G) | analytic GMACs, our sampler | "
          "analytic GMACs, official sampler | XLA/2 vs ours | vs DETR (XLA) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (cells, m) in SETTINGS.items():
        detr = xla_flops(cells, m, 1.0, use_sampler=False)
        detr_macs = transformer_macs(cells)
        print(f"| {name} DETR | - | {cells} | {detr / g:.2f} | {detr / 2 / g:.2f} | {detr_macs / g:.2f} | "
              f"{detr_macs / g:.2f} | {detr / 2 / detr_macs:.3f} | 100% |")
        for alpha in ALPHAS + (jax.ShapeDtypeStruct((), jnp.float32),):
            traced = not isinstance(alpha, float)
            polled = int(jnp.float32(cells) * jnp.float32(0.8 if traced else alpha))
            flops = xla_flops(cells, m, alpha)
            ours = transformer_macs(polled + m) + our_sampler_macs(cells, m)
            official = transformer_macs(polled + m) + official_sampler_macs(cells, polled, m)
            label = "traced (training)" if traced else f"{alpha}"
            print(f"| {name} PnP M={m} | {label} | {polled + m} | {flops / g:.2f} | {flops / 2 / g:.2f} | "
                  f"{ours / g:.2f} | {official / g:.2f} | {flops / 2 / ours:.3f} | {flops / detr:.0%} |")


if __name__ == "__main__":
    main()
