"""FLOPs per view of DualFormer, measured by XLA, beside the paper's figures and beside full
space-time attention over the same tokens (the efficiency claim).

    python -m dualformer.flops            # writes the markdown table to stdout

XLA's cost analysis counts 2 FLOPs per multiply-add and also counts softmax, GELU and
normalisation; the official figures are fvcore multiply-adds (head excluded), so the table
divides XLA's count by 2 and reports the backbone and the head separately.
"""
import argparse

import jax
import jax.numpy as jnp

from dualformer.model import VARIANTS, DualFormer, create_model

# Official GFLOPs per view (fvcore MACs, backbone only) at 32x224x224: README totals over
# 4x1 views (T 240, S 636, B 1072) / 4; fvcore on the official backbone (sail-sg/dualformer
# mmaction/models/backbones/dualformer.py, instantiated on CPU) gives 60.09 / 158.69 / 267.96 per view.
PAPER_GMACS = {"dualformer_tiny": 60.0, "dualformer_small": 159.0, "dualformer_base": 268.0}


def full_attention_overrides(frames: int, size: int, patch=(2, 4, 4)) -> dict:
    """Windows and pyramids covering the whole token grid: every block attends to all tokens."""
    grids = [(frames // patch[0], size // patch[1] // 2 ** i, size // patch[2] // 2 ** i) for i in range(4)]
    return dict(local_sizes=tuple(grids), fine_pysizes=tuple(grids))


def xla_flops(model: DualFormer, frames: int, size: int, backbone_only: bool) -> float:
    x = jax.ShapeDtypeStruct((1, frames, size, size, 3), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x.shape)))
    features = ("norm",) if backbone_only else None
    fn = jax.jit(lambda v, x: model.apply(v, x, features=features))
    cost = fn.lower(variables, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def table(frames: int = 32, size: int = 224, variants=tuple(VARIANTS), full: bool = True) -> str:
    rows = ["| variant | XLA GFLOPs / view (model) | XLA GMACs / view (backbone) | official GMACs / view | "
            "ratio | full space-time attention GMACs (backbone) | saving |",
            "|---|---|---|---|---|---|---|"]
    for name in variants:
        m = create_model(name, num_classes=400, token_chunk=0)  # a chunked loop body would be counted once
        total = xla_flops(m, frames, size, backbone_only=False) / 1e9
        bb = xla_flops(m, frames, size, backbone_only=True) / 2e9
        if full:
            mf = create_model(name, num_classes=400, token_chunk=0, **full_attention_overrides(frames, size))
            fb = xla_flops(mf, frames, size, backbone_only=True) / 2e9
            full_cols = f"{fb:,.1f} | {fb / bb:.1f}x"
        else:
            full_cols = "- | -"
        rows.append(f"| {name} | {total:.1f} | {bb:.2f} | {PAPER_GMACS[name]:.1f} | {bb / PAPER_GMACS[name]:.3f} | "
                    f"{full_cols} |")
    return "\n".join(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--no-full", action="store_true", help="skip the full-attention comparison")
    a = ap.parse_args()
    print(table(a.frames, a.size, full=not a.no_full))
