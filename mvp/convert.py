"""Official MvP checkpoints -> our variables ({'params', 'batch_stats'}).

  python -m mvp.convert model_best_5view.pth.tar OUT_DIR --variant panoptic
  python -m mvp.convert mvp_shelf.pth.tar OUT_DIR --variant shelf
  python -m mvp.convert model_best_3view_horizontal_view.pth.tar OUT_DIR --variant campus
  python -m mvp.convert pose_resnet50_panoptic.pth.tar OUT_DIR --backbone     # the 2-D pose init

The released MvP checkpoints are bare state_dicts (model_best.pth.tar); training checkpoints
({'state_dict': ...}) and DDP's `module.` prefix are read too. The decoder's `pose_embed`
list is the same tensors as the top-level one (the official code assigns it twice): both
are read and must be equal. `criterion.empty_weight` and `num_batches_tracked` are dropped.
The view count of the checkpoint (fuse_view_projction, reference_feats) must equal the
variant's: the view order is baked into those weights. `--backbone` converts a PoseResNet
state_dict (VoxelPose's pose_resnet50_panoptic) into the `backbone` subtree only, for
`--config.init_from=model=OUT_DIR` with a fresh head (common/runner.py init_from).
"""
import argparse
import re
from typing import Mapping

import numpy as np

from common.convert import (NotAModelCheckpoint, conv_kernel, convert_with_rules, identity, linear_kernel,
                            split_in_proj)

IGNORE = [r".*num_batches_tracked", r"criterion\..*", r"decoder\.pose_embed\..*"]


def deconv_kernel(w: np.ndarray) -> np.ndarray:
    """ConvTranspose2d (in, out, kh, kw) -> nn.ConvTranspose(transpose_kernel=False,
    padding 2) HWIO: the spatially flipped kernel (measured, spec section 8)."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))


def backbone_rules(prefix: str = r"backbone\."):
    from common.layers.resnet import torchvision_rules
    table = []
    for src, dst, fn in torchvision_rules("batch"):
        if src.startswith(r"fc\."):
            continue
        col, rest = dst.split("/", 1)
        table.append((prefix + src, f"{col}/backbone/{rest}", fn))
    bn = [("weight", "params", "scale"), ("bias", "params", "bias"), ("running_mean", "batch_stats", "mean"),
          ("running_var", "batch_stats", "var")]
    table.append((prefix + r"deconv_layers\.([036])\.weight", r"params/backbone/deconv_layers_\1/kernel", deconv_kernel))
    for src, col, dst in bn:
        table.append((prefix + rf"deconv_layers\.([147])\.{src}", rf"{col}/backbone/deconv_layers_\1/{dst}", identity))
    table += [(prefix + r"final_layer\.weight", "params/backbone/final_layer/kernel", conv_kernel),
              (prefix + r"final_layer\.bias", "params/backbone/final_layer/bias", identity)]
    return table


def rules(num_heads: int):
    def heads_in(w):       # in_proj rows (d_out, d_in) -> DenseGeneral kernel (d_in, heads, d_out / heads)
        return w.T.reshape(w.shape[1], num_heads, -1)

    def heads_bias(b):
        return b.reshape(num_heads, -1)

    def heads_out(w):      # out_proj (d_out, d_in) -> (heads, d_in / heads, d_out)
        return w.T.reshape(num_heads, -1, w.shape[0])

    layer = r"decoder\.layers\.(\d+)\."
    ours = r"params/decoder_layers_\1/"
    table = backbone_rules()
    table += [
        (layer + r"proj_attn\.(\w+)\.weight", ours + r"proj_attn/\2/kernel", linear_kernel),
        (layer + r"proj_attn\.(\w+)\.bias", ours + r"proj_attn/\2/bias", identity),
        (layer + r"self_attn\.(query|key|value)\.weight", ours + r"self_attn/\2/kernel", heads_in),
        (layer + r"self_attn\.(query|key|value)\.bias", ours + r"self_attn/\2/bias", heads_bias),
        (layer + r"self_attn\.out_proj\.weight", ours + "self_attn/out/kernel", heads_out),
        (layer + r"self_attn\.out_proj\.bias", ours + "self_attn/out/bias", identity),
        (layer + r"(norm\d)\.weight", ours + r"\2/scale", identity),
        (layer + r"(norm\d)\.bias", ours + r"\2/bias", identity),
        (layer + r"(linear\d|fuse_view_projction)\.weight", ours + r"\2/kernel", linear_kernel),
        (layer + r"(linear\d|fuse_view_projction)\.bias", ours + r"\2/bias", identity),
        (r"pose_embed\.(\d+)\.layers\.(\d)\.weight", r"params/pose_embed_\1/layers_\2/kernel", linear_kernel),
        (r"pose_embed\.(\d+)\.layers\.(\d)\.bias", r"params/pose_embed_\1/layers_\2/bias", identity),
        (r"class_embed\.(\d+)\.weight", r"params/class_embed_\1/kernel", linear_kernel),
        (r"class_embed\.(\d+)\.bias", r"params/class_embed_\1/bias", identity),
        (r"(reference_points|reference_feats)\.weight", r"params/\1/kernel", linear_kernel),
        (r"(reference_points|reference_feats)\.bias", r"params/\1/bias", identity),
        (r"(joint_embedding|instance_embedding|image_embedding|query_embed)\.weight", r"params/\1", identity),
        (r"(view_embed|level_embed)", r"params/\1", identity),
    ]
    return table


def unwrap(state_dict: Mapping) -> dict:
    """A bare state_dict, {'state_dict': ...} or {'model': ...}; `module.` (DDP) stripped."""
    for key in ("state_dict", "model"):
        if key in state_dict and isinstance(state_dict[key], Mapping):
            state_dict = state_dict[key]
    return {k[len("module."):] if k.startswith("module.") else k: np.asarray(v) for k, v in state_dict.items()}


def model_overrides(state_dict: Mapping[str, np.ndarray]) -> dict:
    """What the checkpoint itself fixes: d, layers, persons, joints, views, points, posembed."""
    d = state_dict["reference_points.weight"].shape[1]
    layers = len({m[1] for k in state_dict if (m := re.match(r"decoder\.layers\.(\d+)\.", k))})
    heads_points = state_dict["decoder.layers.0.proj_attn.attention_weights.weight"].shape[0]
    out = dict(d_model=d, layers=layers, views=state_dict["reference_feats.weight"].shape[1] // (3 * d))
    if "instance_embedding.weight" in state_dict:
        out["persons"] = state_dict["instance_embedding.weight"].shape[0]
        out["joints"] = state_dict["joint_embedding.weight"].shape[0]
    extra = state_dict["decoder.layers.0.proj_attn.rayconv.weight"].shape[1] - d
    out["posembed"] = {3: "rayconv", 2: "coordconv", 0: "none"}[extra]
    out["query_embed"] = ("per_joint" if "query_embed.weight" in state_dict else
                          "image_person_joint" if "image_embedding.weight" in state_dict else "person_joint")
    return out, heads_points


def convert_state_dict(state_dict: Mapping[str, np.ndarray], variant: str = "panoptic", **overrides) -> dict:
    """{official name: array} -> the variables of `create_model(variant, **overrides)`,
    checked leaf by leaf against the model."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    from common.convert import check_against
    from mvp.model import create_model, dummy_meta
    state_dict = unwrap(state_dict)
    if "reference_points.weight" not in state_dict:
        raise NotAModelCheckpoint(f"not an MvP checkpoint (no reference_points); it holds {len(state_dict)} tensors "
                                  f"such as {', '.join(list(state_dict)[:4])}. A PoseResNet? use --backbone")
    for k in [k for k in state_dict if k.startswith("decoder.pose_embed.")]:
        twin = k[len("decoder."):]
        if twin not in state_dict or not np.array_equal(state_dict[k], state_dict[twin]):
            raise NotAModelCheckpoint(f"{k} differs from {twin}: the official model shares these tensors")
    model = create_model(variant, **overrides)
    found, heads_points = model_overrides(state_dict)
    for key, value in found.items():
        if getattr(model, key) != value:
            raise NotAModelCheckpoint(f"the checkpoint has {key}={value} but variant {variant!r} has "
                                      f"{getattr(model, key)}; pick the matching variant or override it")
    variables = convert_with_rules(split_in_proj(state_dict), rules(model.heads), IGNORE)
    w, h = model.image_size
    expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, model.views, h, w, 3)),
                                                 dummy_meta(1, model.views, image_size=model.image_size)))
    check_against(variables, nn.meta.unbox(expected))
    return variables


def convert_backbone(state_dict: Mapping[str, np.ndarray], variant: str = "panoptic") -> dict:
    """A PoseResNet state_dict -> {'params': {'backbone': ...}, 'batch_stats': {'backbone': ...}}."""
    state_dict = unwrap(state_dict)
    state_dict = {k if k.startswith("backbone.") else "backbone." + k: v for k, v in state_dict.items()}
    return convert_with_rules(state_dict, backbone_rules(), IGNORE)


def main(argv=None):
    from common.convert import add_io_arguments, load_state_dict, run_cli, write
    from mvp.model import VARIANTS
    p = add_io_arguments(argparse.ArgumentParser(prog="python -m mvp.convert", description=__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter),
                         "official MvP .pth.tar (bare state_dict) or PoseResNet .pth.tar with --backbone")
    p.add_argument("--variant", default="panoptic", choices=sorted(VARIANTS))
    p.add_argument("--backbone", action="store_true", help="a PoseResNet 2-D pose checkpoint (backbone only)")
    args = p.parse_args(argv)

    def convert():
        sd = load_state_dict(args.src)
        variables = convert_backbone(sd, args.variant) if args.backbone else convert_state_dict(sd, args.variant)
        return write(variables, args.src, args.out_dir, args.overwrite)
    return run_cli(convert, args.src)


if __name__ == "__main__":
    main()
