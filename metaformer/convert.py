"""Official PoolFormer / MetaFormer checkpoints -> our Flax params.

Three naming schemes are accepted and first renamed to the official one
(sail-sg/poolformer): timm's (`stem.conv`, `stages.i.blocks.j`, `head.fc`) and
transformers' (`poolformer.encoder.block.i.j`, `classifier`). The official scheme maps
onto our module names row by row (RULES). Usage:

  python -m metaformer.convert poolformer_s12.pth.tar OUT_DIR       # official release
  python -m metaformer.convert model.safetensors OUT_DIR            # timm hub copy, no torch
"""
import re
from typing import Mapping

import numpy as np

from common.convert import (conv_kernel, convert_main, identity, linear_kernel, nchw_to_nhwc,
                            pointwise_conv_kernel)

_B = r"network\.(\d+)\.(\d+)\."     # a block: network.<stage index>.<block index>.
RULES = [
    (r"patch_embed\.proj\.weight", "params/patch_embed/proj/kernel", conv_kernel),
    (r"patch_embed\.proj\.bias", "params/patch_embed/proj/bias", identity),
    (r"network\.(\d+)\.proj\.weight", r"params/network_\1/proj/kernel", conv_kernel),
    (r"network\.(\d+)\.proj\.bias", r"params/network_\1/proj/bias", identity),
    (r"network\.(\d+)", r"params/network_\1", nchw_to_nhwc),            # hybrids' pos_embed
    (_B + r"norm([12])\.weight", r"params/network_\1_\2/norm\3/scale", identity),
    (_B + r"norm([12])\.bias", r"params/network_\1_\2/norm\3/bias", identity),
    (_B + r"mlp\.fc([12])\.weight", r"params/network_\1_\2/mlp/fc\3/kernel", pointwise_conv_kernel),
    (_B + r"mlp\.fc([12])\.bias", r"params/network_\1_\2/mlp/fc\3/bias", identity),
    (_B + r"layer_scale_([12])", r"params/network_\1_\2/layer_scale_\3", identity),
    (_B + r"token_mixer\.(qkv|proj|fc)\.weight", r"params/network_\1_\2/token_mixer/\3/kernel", linear_kernel),
    (_B + r"token_mixer\.proj\.bias", r"params/network_\1_\2/token_mixer/proj/bias", identity),
    (r"norm(\d*)\.weight", r"params/norm\1/scale", identity),      # final norm; _feat out-norms
    (r"norm(\d*)\.bias", r"params/norm\1/bias", identity),
    (r"head\.weight", "params/head/kernel", linear_kernel),
    (r"head\.bias", "params/head/bias", identity),
]


def _timm_to_official(name: str) -> str:
    """timm's poolformer (v1) names: stage i's blocks are network.2i, its downsample
    network.2i-1 (no position embeddings in the timm family)."""
    name = re.sub(r"^stem\.conv\.", "patch_embed.proj.", name)
    name = re.sub(r"^stages\.(\d+)\.downsample\.conv\.",
                  lambda m: f"network.{2 * int(m.group(1)) - 1}.proj.", name)
    name = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.",
                  lambda m: f"network.{2 * int(m.group(1))}.{m.group(2)}.", name)
    name = re.sub(r"\.layer_scale([12])\.scale$", r".layer_scale_\1", name)
    name = re.sub(r"^head\.norm\.", "norm.", name)
    return re.sub(r"^head\.fc\.", "head.", name)


def _transformers_to_official(name: str) -> str:
    name = re.sub(r"^poolformer\.encoder\.patch_embeddings\.0\.projection\.", "patch_embed.proj.", name)
    name = re.sub(r"^poolformer\.encoder\.patch_embeddings\.(\d+)\.projection\.",
                  lambda m: f"network.{2 * int(m.group(1)) - 1}.proj.", name)
    name = re.sub(r"^poolformer\.encoder\.block\.(\d+)\.(\d+)\.",
                  lambda m: f"network.{2 * int(m.group(1))}.{m.group(2)}.", name)
    for old, new in (("before_norm", "norm1"), ("after_norm", "norm2"), ("output.conv1", "mlp.fc1"),
                     ("output.conv2", "mlp.fc2")):
        name = name.replace(f".{old}.", f".{new}.")
    name = re.sub(r"^norm\.", "norm.", name)
    return re.sub(r"^classifier\.", "head.", name)


def to_official_names(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    keys = list(state_dict)
    if any(k.startswith("stages.") or k.startswith("stem.") for k in keys):
        rename = _timm_to_official
    elif any(k.startswith("poolformer.") for k in keys):
        rename = _transformers_to_official
    else:
        rename = lambda k: k  # noqa: E731
    out = {}
    for k, v in state_dict.items():
        new = rename(k)
        if new in out:
            raise ValueError(f"two checkpoint tensors map to {new}")
        out[new] = v
    return out


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
    """{official | timm | transformers name: array} -> {'params': ...} for metaformer.MetaFormer."""
    from common.convert import convert_with_rules
    return convert_with_rules(to_official_names(state_dict), RULES)


if __name__ == "__main__":
    convert_main(convert_state_dict, description=__doc__)
