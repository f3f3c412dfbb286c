"""Official VOLO checkpoints (sail-sg/volo .pth.tar; timm uses the same names, also as
.safetensors) -> our Flax variables ({'params', 'batch_stats'}).

  python -m volo.convert d1_224_84.2.pth.tar OUT_DIR
  python -m volo.convert d1_224_84.2.pth.tar OUT_DIR --img_size 384   # resize pos_embed
"""
import argparse
import re
from typing import Mapping

import numpy as np

from common.convert import conv_kernel, convert_with_rules, identity, linear_kernel

# a block: network.<stage>.<j> (outlooker / transformer) or post_network.<j> (class attention)
_BLOCK = r"(network_\d+|post_network)\.(\d+)\."
_BN = r"patch_embed\.conv\.([147])\."
RULES = [
    (r"pos_embed", "params/pos_embed", identity),                       # already [1, h, w, C]
    (r"cls_token", "params/cls_token", identity),
    (r"patch_embed\.conv\.([036])\.weight", r"params/patch_embed/conv_\1/kernel", conv_kernel),
    (_BN + "weight", r"params/patch_embed/conv_\1/scale", identity),
    (_BN + "bias", r"params/patch_embed/conv_\1/bias", identity),
    (_BN + "running_mean", r"batch_stats/patch_embed/conv_\1/mean", identity),
    (_BN + "running_var", r"batch_stats/patch_embed/conv_\1/var", identity),
    (r"patch_embed\.proj\.weight", "params/patch_embed/proj/kernel", conv_kernel),
    (r"patch_embed\.proj\.bias", "params/patch_embed/proj/bias", identity),
    (r"network\.(\d+)\.proj\.weight", r"params/network_\1/kernel", conv_kernel),   # Downsample
    (r"network\.(\d+)\.proj\.bias", r"params/network_\1/bias", identity),
    (_BLOCK + r"(norm1|norm2)\.weight", r"params/\1_\2/\3/scale", identity),
    (_BLOCK + r"(norm1|norm2)\.bias", r"params/\1_\2/\3/bias", identity),
    (_BLOCK + r"(attn|mlp)\.(\w+)\.weight", r"params/\1_\2/\3/\4/kernel", linear_kernel),
    (_BLOCK + r"(attn|mlp)\.(\w+)\.bias", r"params/\1_\2/\3/\4/bias", identity),
    (r"norm\.weight", "params/norm/scale", identity),
    (r"norm\.bias", "params/norm/bias", identity),
    (r"(head|aux_head)\.weight", r"params/\1/kernel", linear_kernel),
    (r"(head|aux_head)\.bias", r"params/\1/bias", identity),
]
IGNORE = [r".*num_batches_tracked"]


def convert_state_dict(state_dict: Mapping[str, np.ndarray], img_size: int | None = None) -> dict:
    """{official/timm name: array} -> {'params', 'batch_stats'}; with `img_size` the
    position embedding is bicubic-resized to that resolution's grid (img_size / 16)."""
    # network.<stage>.<j>.* -> network_<stage>.<j>.* so one pattern covers both block kinds
    renamed = {re.sub(r"^network\.(\d+)\.(\d+)\.", r"network_\1.\2.", k): v for k, v in state_dict.items()}
    variables = convert_with_rules(renamed, RULES, IGNORE)
    if img_size is not None:
        from volo.model import resize_pos_embed
        p = variables["params"]
        p["pos_embed"] = resize_pos_embed(p["pos_embed"], img_size // 16)
    return variables


def main(argv=None):
    from common.convert import add_io_arguments, load_state_dict, run_cli, write
    p = add_io_arguments(argparse.ArgumentParser(description=__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--img_size", type=int, default=None, help="target resolution (resizes pos_embed)")
    args = p.parse_args(argv)
    return run_cli(lambda: write(convert_state_dict(load_state_dict(args.src), args.img_size), args.src,
                                 args.out_dir, args.overwrite), args.src)


if __name__ == "__main__":
    main()
