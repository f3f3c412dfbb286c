"""Compare our MvP with the official model at full width, once, outside the test suite.

    python tests/mvp/compare_official.py /path/to/sail-sg/mvp [--size 256x128] [--full]

Builds the official Panoptic model (best_model_config.yaml: PoseResNet-50, d 256, 8 heads, 4
points, 6 layers, 10 x 15 queries, 5 views) with numpy-regenerated random weights
(tests/mvp/golden.py), converts its state_dict with mvp.convert, runs both in eval mode on
the same 5 views and cameras (distortion on; one view sees nothing, one faces away), and
prints the max |diff| per decoder layer of the logits and the normalised joints: through the
backbone, and from the official backbone's features given to our head. --full uses the
official 960 x 512 input (about 0.7 TFLOP per forward on the CPU). The official rays are
computed in float64 (make_golden.rays_in_float64).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.mvp import golden, make_golden  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkout")
    p.add_argument("--size", default="256x128")
    p.add_argument("--full", action="store_true")
    p.add_argument("--plain-cameras", action="store_true", help="every camera sees the room (no hard views)")
    p.add_argument("--layers", type=int, default=6)
    args = p.parse_args()
    w, h = (960, 512) if args.full else (int(s) for s in args.size.split("x"))
    import torch
    import jax
    import jax.numpy as jnp
    from mvp import cameras, convert
    from mvp.model import create_model

    official = make_golden.import_official(args.checkout)
    official.cfgmod.update_config(os.path.join(args.checkout, "configs/panoptic/best_model_config.yaml"))
    cfg = official.cfgmod.config
    cfg.NETWORK.IMAGE_SIZE = [w, h]
    cfg.NETWORK.PRETRAINED_BACKBONE = ""
    cfg.DECODER.use_loss_pose_perprojection = False
    cfg.DECODER.num_decoder_layers = args.layers
    model = official.mvpt.get_mvp(cfg, is_train=False)
    sd = model.state_dict()
    weights = golden.random_state_dict(list(sd), [tuple(v.shape) for v in sd.values()], seed=1)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    model.eval()

    rng = np.random.default_rng(5)
    from mvp import synthetic
    cams = synthetic.ring_cameras(rng, 5, (1920, 1080), distortion=True)
    cams = cams if args.plain_cameras else golden.hard_cameras(cams)
    images = rng.standard_normal((1, 5, h, w, 3)).astype(np.float32)
    poses = synthetic.people(rng, 3)
    golden.IMAGE_WH = (1920, 1080)                      # official_meta reads it
    meta_t = make_golden.official_meta(cams, poses, np.ones(poses.shape[:2]), [w, h])
    views = [torch.from_numpy(images[:, v].transpose(0, 3, 1, 2).copy()) for v in range(5)]
    with torch.no_grad():
        out = model(views=views, meta=meta_t)
        feats = model.backbone(torch.cat(views, 0), [0, 1, 2])[::-1]
    layers = out["aux_outputs"] + [{"pred_logits": out["pred_logits"], "pred_poses": out["pred_poses"]}]
    logits = np.stack([o["pred_logits"].numpy() for o in layers])
    coords = np.stack([o["pred_poses"]["outputs_coord"].numpy() for o in layers]).reshape(args.layers, 1, 10, 15, 3)

    ours = create_model("panoptic", image_size=(w, h), layers=args.layers)
    variables = convert.convert_state_dict(weights, "panoptic", image_size=(w, h), layers=args.layers)
    meta = {k: v[None] for k, v in cameras.stack_meta(cams, (1920, 1080), (w, h)).items()}
    res = jax.jit(lambda v, x, m: ours.apply(v, x, m))(variables, images, meta)
    given = [jnp.asarray(f.numpy().transpose(0, 2, 3, 1)[None]) for f in feats]
    head = jax.jit(lambda v, f, m: ours.apply(v, f, m, method=ours.decode))(variables, given, meta)
    noisy = [f * (1 + 1e-6 * jax.random.normal(jax.random.PRNGKey(i), f.shape)) for i, f in enumerate(given)]
    # the conditioning of these random weights: our head on features with 1e-6 relative noise
    sens = jax.jit(lambda v, f, m: ours.apply(v, f, m, method=ours.decode))(variables, noisy, meta)
    n = args.layers
    report = {"input": f"{w}x{h}", "views": 5, "layers": n, "hard_views": not args.plain_cameras}
    for name, r in (("through_backbone", res), ("head_from_official_features", head)):
        report[name] = {
            "logits_max_abs": [float(np.abs(np.asarray(r["pred_logits"][l]) - logits[l]).max()) for l in range(n)],
            "coords_max_abs": [float(np.abs(np.asarray(r["pred_poses"][l]) - coords[l]).max()) for l in range(n)]}
    report["ours_vs_ours_with_1e-6_feature_noise"] = {
        "logits_max_abs": [float(np.abs(np.asarray(sens["pred_logits"][l] - head["pred_logits"][l])).max()) for l in range(n)],
        "coords_max_abs": [float(np.abs(np.asarray(sens["pred_poses"][l] - head["pred_poses"][l])).max()) for l in range(n)]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
