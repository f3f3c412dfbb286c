"""Run the official PnP-DETR (or DETR) beside ours at full size with the same random weights.

    python tests/pnp_detr/compare_official.py /path/to/twangnh/pnp-detr --variant pnp_detr_r50 --alpha 0.5

Two images on an 800 x 1066 canvas (the second padded to 736 x 960), eval mode. Prints the
max abs difference of the logits and boxes of every decoder layer, of the encoder memory
(attended tokens) and of sample_reg_loss, beside the size of the values. Not a test (too
slow for the suite); the tiny-width fixtures cover CI.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.pnp_detr import golden  # noqa: E402
from tests.pnp_detr.make_golden import import_official, official_model, randomise, run_official  # noqa: E402

CANVAS = (800, 1066)
VALID = ((800, 1066), (736, 960))


def main():
    import jax
    import torch

    import pnp_detr
    from pnp_detr.convert import convert_state_dict
    from pnp_detr.model import VARIANTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("official", help="checkout of twangnh/pnp-detr (or facebookresearch/detr for detr_*)")
    ap.add_argument("--variant", default="pnp_detr_r50", choices=sorted(VARIANTS))
    ap.add_argument("--alpha", type=float, default=0.5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    official = import_official(os.path.abspath(args.official))
    reference = official_model(official, args.variant, args.alpha)
    names, shapes = randomise(reference, seed=0)
    state_dict = {k: v.numpy() for k, v in reference.state_dict().items()}
    images = golden.random_images(VALID, CANVAS, seed=0)
    valid = golden.valid_pixels(VALID, CANVAS)
    model = pnp_detr.create_model(args.variant)
    polled = {}
    if model.use_sampler:
        reference.transformer.sampler.register_forward_hook(lambda m, i, o: polled.update(index=o[2].numpy()))
    t = time.time()
    ref = run_official(reference, official, images, ~valid, args.alpha, model.use_sampler)
    print(f"official: {time.time() - t:.1f}s")
    variables, notes = convert_state_dict(state_dict, args.variant)
    t = time.time()
    with jax.default_matmul_precision("highest"):
        out, state = jax.jit(lambda v, x, m: model.apply(v, x, m, args.alpha, mutable=["intermediates"]))(
            variables, images, valid)
        out = jax.tree_util.tree_map(np.asarray, out)
    print(f"ours: {time.time() - t:.1f}s (compile included)")
    rows = {}
    for key in ("pred_logits", "pred_boxes"):
        rows[key] = dict(max_abs_diff=float(np.abs(out[key] - ref[key]).max()), max_abs=float(np.abs(ref[key]).max()),
                         last_layer_diff=float(np.abs(out[key][-1] - ref[key][-1]).max()))
    memory, pad = np.asarray(state["intermediates"]["transformer"]["memory"][0]), ref["memory_pad"]
    if model.use_sampler:
        m = model.num_pool_tokens
        n_max = pad.shape[1] - m
        memory = np.concatenate([memory[:, :n_max], memory[:, -m:]], axis=1)
        rows["sample_reg_loss"] = dict(max_abs_diff=float(abs(out["sample_reg_loss"] - ref["sample_reg_loss"])),
                                       max_abs=float(ref["sample_reg_loss"]))
    rows["memory"] = dict(max_abs_diff=float(np.abs(memory - ref["memory"])[~pad].max()),
                          max_abs=float(np.abs(ref["memory"][~pad]).max()))
    if model.use_sampler:
        # cells of exactly equal score (a saturated sigmoid) may be polled in another order by
        # torch's unstable sort: compare each attended memory row with its nearest official row
        nearest = max(np.abs(memory[b][~pad[b]][:, None] - ref["memory"][b][~pad[b]][None]).max(-1).min(1).max()
                      for b in range(len(VALID)))
        ours_index = np.asarray(out["poll_index"])
        n = (~pad[:, :n_max]).sum(1)
        rows["polled_cells"] = dict(
            same_order=[int((ours_index[b, :n[b]] == polled["index"][b, :n[b]]).sum()) for b in range(len(VALID))],
            polled=[int(k) for k in n],
            same_set=all(set(ours_index[b, :n[b]]) == set(polled["index"][b, :n[b]]) for b in range(len(VALID))))
        rows["memory"]["max_abs_diff_to_nearest_official_row"] = float(nearest)
    print(json.dumps({"variant": args.variant, "alpha": args.alpha, "canvas": CANVAS, "valid": VALID,
                      "tokens": int((~pad).sum(1)[0]), **rows}, indent=1))


if __name__ == "__main__":
    main()
