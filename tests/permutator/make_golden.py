"""Build tests/permutator/golden_*.npz from the official ViP code (not committed here).

    python tests/permutator/make_golden.py --official /path/to/VisionPermutator

For each tiny configuration below, instantiates houqb/VisionPermutator:models/vip.py's
VisionPermutator with random weights (every tensor, LayerNorms and biases included),
runs it on a random batch in eval mode and saves {state_dict, input, logits}. The
configurations cover both kinds of transition the official `network` list can hold
(a 2x2 Downsample, and a 1x1 projection when the width changes without one).
With --full it instead prints the max |logit difference| of every full-size variant
against our converted model (nothing written).
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

GOLDEN_CONFIGS = {
    # 32x32 input, patch 4 -> 8x8 tokens; Downsample after stage 0 -> 4x4 (as vip_s7 / vip_l7).
    "tiny_a": dict(img_size=32, patch_size=4, layers=(1, 1, 2, 1), transitions=(True, False, False, False),
                   segment_dim=(8, 4, 4, 4), mlp_ratios=(3, 3, 3, 3), embed_dims=(32, 64, 64, 64)),
    # 1x1 projection 32 -> 48 after stage 0, Downsample after stage 1 (as vip_m7).
    "tiny_b": dict(img_size=32, patch_size=4, layers=(1, 2, 1, 1), transitions=(False, True, False, False),
                   segment_dim=(8, 8, 4, 4), mlp_ratios=(3, 3, 3, 3), embed_dims=(32, 48, 96, 96)),
}
NUM_CLASSES = 10
BATCH = 2


def load_official(checkout: str):
    sys.path.insert(0, os.path.abspath(checkout))
    from models import vip  # noqa: E402  (houqb/VisionPermutator/models/vip.py)
    return vip


def randomize(model, torch, seed: int, scale: float = 0.1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
            if name.endswith("weight") and p.ndim == 1:   # LayerNorm scales around 1
                p.add_(1.0)
    return model


def make_golden(vip, torch, name: str, cfg: dict, seed: int) -> str:
    model = vip.VisionPermutator(num_classes=NUM_CLASSES, mlp_fn=vip.WeightedPermuteMLP, **cfg)
    randomize(model.eval(), torch, seed)
    x = torch.randn(BATCH, 3, cfg["img_size"], cfg["img_size"], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(x)
    arrays = {f"param/{k}": v.numpy() for k, v in model.state_dict().items()}
    arrays["input_nchw"] = x.numpy()
    arrays["logits"] = logits.numpy()
    path = os.path.join(HERE, f"golden_{name}.npz")
    np.savez_compressed(path, **arrays)
    return path


def compare_full(vip, torch) -> None:
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, REPO_ROOT)
    from permutator import VARIANTS, create_model
    from permutator.convert import convert_state_dict

    for i, name in enumerate(VARIANTS):
        official = getattr(vip, name)().eval()
        randomize(official, torch, seed=100 + i, scale=0.02)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            want = official(x).numpy()
        params = convert_state_dict({k: v.numpy() for k, v in official.state_dict().items()})
        got = jax.jit(create_model(name).apply)(params, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
        diff = float(np.abs(np.asarray(got) - want).max())
        print(f"{name}: max |logit diff| = {diff:.2e} (max |logit| {np.abs(want).max():.3f})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="checkout of houqb/VisionPermutator")
    parser.add_argument("--full", action="store_true", help="compare the full-size variants instead")
    args = parser.parse_args()
    import torch
    vip = load_official(args.official)
    if args.full:
        compare_full(vip, torch)
        return
    for seed, (name, cfg) in enumerate(GOLDEN_CONFIGS.items()):
        path = make_golden(vip, torch, name, cfg, seed)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
