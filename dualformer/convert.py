"""Official DualFormer checkpoints (mmaction `.pth`) -> our variables; 2D -> 3D inflation.

`python -m dualformer.convert SRC OUT_DIR` converts a released checkpoint (keys `backbone.*`,
`cls_head.fc_cls.*`). `inflate_2d(...)` reproduces the official `DualFormer.inflate_weights`
that starts video training from an ImageNet-trained 2D DualFormer (or a Twins-SVT, which has
the same names; see `twins_svt_to_2d_dualformer`).
"""
import re
from typing import Mapping, Sequence

import numpy as np

from common.convert import conv_kernel, convert_main, convert_with_rules, identity, linear_kernel

_B = r"backbone\."
_BLK = _B + r"blocks\.(\d+)\.(\d+)\."
_P = "params/backbone/"

RULES = [
    (_B + r"patch_embeds\.(\d+)\.proj\.weight", _P + r"patch_embeds_\1/proj/kernel", conv_kernel),
    (_B + r"patch_embeds\.(\d+)\.(proj)\.bias", _P + r"patch_embeds_\1/\2/bias", identity),
    (_B + r"patch_embeds\.(\d+)\.norm\.weight", _P + r"patch_embeds_\1/norm/scale", identity),
    (_B + r"patch_embeds\.(\d+)\.norm\.bias", _P + r"patch_embeds_\1/norm/bias", identity),
    (_BLK + r"(norm1|norm2)\.weight", _P + r"blocks_\1_\2/\3/scale", identity),
    (_BLK + r"(norm1|norm2)\.bias", _P + r"blocks_\1_\2/\3/bias", identity),
    (_BLK + r"attn\.norm\.weight", _P + r"blocks_\1_\2/attn/norm/scale", identity),
    (_BLK + r"attn\.norm\.bias", _P + r"blocks_\1_\2/attn/norm/bias", identity),
    (_BLK + r"(attn|mlp)\.(qkv|q|kv|proj|fc1|fc2)\.weight", _P + r"blocks_\1_\2/\3/\4/kernel", linear_kernel),
    (_BLK + r"(attn|mlp)\.(qkv|q|kv|proj|fc1|fc2)\.bias", _P + r"blocks_\1_\2/\3/\4/bias", identity),
    (_BLK + r"attn\.sr\.weight", _P + r"blocks_\1_\2/attn/sr/kernel", conv_kernel),
    (_BLK + r"attn\.sr\.bias", _P + r"blocks_\1_\2/attn/sr/bias", identity),
    (_BLK + r"attn\.lr\.(0|3)\.weight", _P + r"blocks_\1_\2/attn/lr_\3/kernel", conv_kernel),
    (_BLK + r"attn\.lr\.(0|3)\.bias", _P + r"blocks_\1_\2/attn/lr_\3/bias", identity),
    (_BLK + r"attn\.lr\.1\.weight", _P + r"blocks_\1_\2/attn/lr_1/scale", identity),
    (_BLK + r"attn\.lr\.1\.bias", _P + r"blocks_\1_\2/attn/lr_1/bias", identity),
    (_BLK + r"attn\.lr\.1\.running_mean", r"batch_stats/backbone/blocks_\1_\2/attn/lr_1/mean", identity),
    (_BLK + r"attn\.lr\.1\.running_var", r"batch_stats/backbone/blocks_\1_\2/attn/lr_1/var", identity),
    (_B + r"pos_block\.(\d+)\.proj\.0\.weight", _P + r"pos_block_\1/proj_0/kernel", conv_kernel),
    (_B + r"pos_block\.(\d+)\.proj\.0\.bias", _P + r"pos_block_\1/proj_0/bias", identity),
    (_B + r"norm\.weight", _P + "norm/scale", identity),
    (_B + r"norm\.bias", _P + "norm/bias", identity),
    (r"cls_head\.fc_cls\.weight", "params/cls_head/fc_cls/kernel", linear_kernel),
    (r"cls_head\.fc_cls\.bias", "params/cls_head/fc_cls/bias", identity),
]
IGNORE = [r".*num_batches_tracked"]


def with_backbone_prefix(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept a bare backbone state_dict (no `backbone.`/`cls_head.` keys) too."""
    if any(k.startswith(("backbone.", "cls_head.")) for k in state_dict):
        return dict(state_dict)
    return {"backbone." + k: v for k, v in state_dict.items()}


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
    return convert_with_rules(with_backbone_prefix(state_dict), RULES, IGNORE)


# ------------------------------------------------------------------- 2D -> 3D inflation
def inflate_2d(state_dict_2d: Mapping[str, np.ndarray], target_shapes: Mapping[str, Sequence[int]], *,
               temporal_pooling: Sequence[int] = (2, 1, 1, 1), stage_frames: Sequence[int] = (16, 16, 16, 16),
               fine_pysizes: Sequence[Sequence[int]] = ((8, 7, 7), (8, 7, 7), (8, 7, 7), (16, 7, 7))) -> dict:
    """The official `inflate_weights` on a 2D DualFormer state_dict (official names, no prefix).

    `target_shapes`: the 3D backbone's official tensor names -> shapes (see `official_shapes`),
    used, as the official code uses `self.state_dict()`, to build the constant `lr.3` filters.
    `stage_frames[i]` is the token grid depth of stage i (`nvs[i][0]`: frames / 2).
    Returns a 3D state_dict (official names) holding only the tensors the 2D model provides
    plus `lr.3`; everything else keeps its initialisation, as with load_state_dict(strict=False).
    """
    sd = {k: np.asarray(v, np.float32) for k, v in state_dict_2d.items()}
    n_stages = len(temporal_pooling)
    for i, k in enumerate(k for k in list(sd) if "patch_embeds" in k and "proj.weight" in k):
        if i < n_stages:
            sd[k] = np.repeat(sd[k][:, :, None], temporal_pooling[i], axis=2) / temporal_pooling[i]
    for i, k in enumerate(k for k in list(sd) if "pos_block" in k and "weight" in k):
        if i < n_stages:
            sd[k] = np.repeat(sd[k][:, :, None], 3, axis=2) / 3
    for k in [k for k in sd if "sr.weight" in k]:
        stage = int(k[7])  # "blocks.<stage>...", as the official code reads it
        if stage < n_stages:
            e = stage_frames[stage] // fine_pysizes[stage][0]
            sd[k] = np.repeat(sd[k][:, :, None], e, axis=2) / e
    for k in [k for k in sd if "attn.lr.0.weight" in k]:
        sd[k] = sd[k][:, :, None]
    for k, shape in target_shapes.items():
        if "attn.lr.3.weight" in k:
            stage = int(k.split(".")[1])
            # Hard-coded divisors (4*2*2 and 4*1*1) as in the official code, whatever the kernel.
            sd[k] = np.ones(shape, np.float32) / {0: 16.0, 1: 4.0}[stage]
        elif "attn.lr.3.bias" in k:
            sd[k] = np.zeros(shape, np.float32)
    # load_state_dict(strict=False): unexpected keys (the 2D head) are ignored.
    return {k: v for k, v in sd.items() if k in target_shapes}


def official_shapes(variables: Mapping) -> dict[str, tuple]:
    """Our backbone variables (or their eval_shape) -> {official backbone name: official shape}."""
    import flax.linen as nn

    from common.convert import flatten
    variables = nn.meta.unbox(variables)
    leaf_names = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
                  "var": "running_var"}
    out = {}
    for collection in ("params", "batch_stats"):
        for path, v in flatten(variables.get(collection, {}).get("backbone", {})).items():
            *mods, leaf = path
            name = ".".join(re.sub(r"_(\d+)", r".\1", m) for m in mods)
            shape = tuple(v.shape)
            if leaf == "kernel":
                shape = (shape[-1], shape[-2]) + shape[:-2]  # (kt, kh, kw, I, O) / (I, O) -> torch layout
            out[f"{name}.{leaf_names[leaf]}"] = shape
    return out


def load_inflated(variables: Mapping, state_dict_2d: Mapping[str, np.ndarray], **inflate_kw) -> dict:
    """Our initialised variables with every tensor the inflated 2D checkpoint provides replaced."""
    import flax.linen as nn
    import jax
    variables = nn.meta.unbox(variables)
    shapes = official_shapes(variables)
    sd3d = inflate_2d(state_dict_2d, shapes, **inflate_kw)
    bad = {k: (v.shape, shapes[k]) for k, v in sd3d.items() if tuple(v.shape) != tuple(shapes[k])}
    if bad:  # torch's load_state_dict raises on a size mismatch even with strict=False
        raise ValueError(f"inflated tensors do not fit the model: {bad}")
    new = convert_state_dict({"backbone." + k: v for k, v in sd3d.items()})
    out = jax.tree_util.tree_map(np.asarray, dict(variables))
    _overlay(out, new)
    return out


def _overlay(dst: dict, src: Mapping) -> None:
    for k, v in src.items():
        if isinstance(v, Mapping):
            dst[k] = dict(dst[k])
            _overlay(dst[k], v)
        else:
            dst[k] = np.asarray(v, np.float32)


def twins_svt_to_2d_dualformer(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A Twins-SVT (timm `twins_svt_*`) state_dict as a 2D DualFormer one: same names except that
    Twins' `sr` is a full conv (DualFormer's is depth-wise) and it has no coarse `lr` level, so
    those and the ImageNet head are dropped (they keep their 3D initialisation)."""
    return {k: v for k, v in state_dict.items()
            if not k.startswith("head.") and not (".attn.sr." in k and v.ndim == 4 and v.shape[1] != 1)}


if __name__ == "__main__":
    convert_main(convert_state_dict, description="Convert an official DualFormer checkpoint (.pth).")
