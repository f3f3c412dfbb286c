"""Official ViP checkpoints (houqb/VisionPermutator .pth) -> our Flax params.

    python -m permutator.convert vip_s7.pth /tmp/vip_s7_flax

The official `network` ModuleList holds blocks (`network.{k}.{j}.*`) and Downsample
convs (`network.{k}.proj.*`) side by side; our modules are named `network_{k}_{j}` and
`network_{k}`, so the index k carries over unchanged. mlp_h / mlp_w keep their
(position * S + s) input/output order and reweight.fc2 its interleaved (3c + k) order:
a plain (out, in) -> (in, out) transpose is all they need.
"""
from typing import Mapping

import numpy as np

from common.convert import conv_kernel, convert_main, convert_with_rules, identity, linear_kernel

_BLOCK = r"network\.(\d+)\.(\d+)\."
_TO_BLOCK = r"params/network_\1_\2/"

RULES = [
    (r"patch_embed\.proj\.weight", "params/patch_embed/proj/kernel", conv_kernel),
    (r"patch_embed\.proj\.bias", "params/patch_embed/proj/bias", identity),
    (r"network\.(\d+)\.proj\.weight", r"params/network_\1/proj/kernel", conv_kernel),
    (r"network\.(\d+)\.proj\.bias", r"params/network_\1/proj/bias", identity),
    (_BLOCK + r"(norm1|norm2)\.weight", _TO_BLOCK + r"\3/scale", identity),
    (_BLOCK + r"(norm1|norm2)\.bias", _TO_BLOCK + r"\3/bias", identity),
    (_BLOCK + r"attn\.(mlp_c|mlp_h|mlp_w|proj)\.weight", _TO_BLOCK + r"attn/\3/kernel", linear_kernel),
    (_BLOCK + r"attn\.proj\.bias", _TO_BLOCK + r"attn/proj/bias", identity),
    (_BLOCK + r"attn\.reweight\.(fc1|fc2)\.weight", _TO_BLOCK + r"attn/reweight/\3/kernel", linear_kernel),
    (_BLOCK + r"attn\.reweight\.(fc1|fc2)\.bias", _TO_BLOCK + r"attn/reweight/\3/bias", identity),
    (_BLOCK + r"mlp\.(fc1|fc2)\.weight", _TO_BLOCK + r"mlp/\3/kernel", linear_kernel),
    (_BLOCK + r"mlp\.(fc1|fc2)\.bias", _TO_BLOCK + r"mlp/\3/bias", identity),
    (r"norm\.weight", "params/norm/scale", identity),
    (r"norm\.bias", "params/norm/bias", identity),
    (r"head\.weight", "params/head/kernel", linear_kernel),
    (r"head\.bias", "params/head/bias", identity),
]


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
    """{official name: array} -> {'params': nested Flax tree of numpy arrays}."""
    return convert_with_rules(state_dict, RULES)


if __name__ == "__main__":
    convert_main(convert_state_dict, description="Convert an official ViP checkpoint to Flax.")
