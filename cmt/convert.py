"""The released CMT checkpoint (or any state dict of the official src/model.py) -> our
variables {'params': ..., 'buffers': {'pe': ...}}.

  python -m cmt.convert loss_8_params.pt converted/cmt            # the release (variant cmt)
  python -m cmt.convert exp/my_run/loss_30_params.pt OUT --variant tiny

loss_8_params.pt is `torch.save(DataParallel(CMT).state_dict())`: 228 entries with a
`module.` prefix (stripped by common.convert.load_state_dict), 227 parameters and the
positional-encoding buffer `encoder_pos_emb.pe` (1, 20000, 512), which is kept as it is
(recomputing it in float32 differs from torch's by up to 2e-3). Linear (out, in) -> Dense
kernel (in, out); nn.Embedding `lut.weight` -> `embedding`; LayerNorm weight -> scale.
fast-transformers' recurrent encoder shares these names, so one tree serves the parallel
and the recurrent forms. The number of heads is not in the shapes: it comes from the variant
(8 for the release), the other sizes are checked against it.
"""
import argparse
from typing import Mapping

import numpy as np

from common.convert import check_against, convert_with_rules, identity, linear_kernel

LAYER = r"transformer_encoder\.layers\.(\d+)\."
RULES = [
    (r"(init_emb_\w+|encoder_emb_\w+)\.lut\.weight", r"params/\1/embedding", identity),
    (r"encoder_pos_emb\.pe", "buffers/pe", lambda pe: pe.reshape(pe.shape[-2], pe.shape[-1])),
    (LAYER + r"attention\.(query|key|value|out)_projection\.weight", r"params/transformer_encoder/layers_\1/"
     r"attention/\2_projection/kernel", linear_kernel),
    (LAYER + r"attention\.(query|key|value|out)_projection\.bias", r"params/transformer_encoder/layers_\1/"
     r"attention/\2_projection/bias", identity),
    (LAYER + r"(linear\d)\.weight", r"params/transformer_encoder/layers_\1/\2/kernel", linear_kernel),
    (LAYER + r"(linear\d|norm\d)\.bias", r"params/transformer_encoder/layers_\1/\2/bias", identity),
    (LAYER + r"(norm\d)\.weight", r"params/transformer_encoder/layers_\1/\2/scale", identity),
    (r"transformer_encoder\.norm\.weight", "params/transformer_encoder/norm/scale", identity),
    (r"transformer_encoder\.norm\.bias", "params/transformer_encoder/norm/bias", identity),
    (r"(\w+)\.weight", r"params/\1/kernel", linear_kernel),      # init_in_linear, encoder_*_linear, proj_*
    (r"(\w+)\.bias", r"params/\1/bias", identity),
]


def variant_of(state_dict: Mapping[str, np.ndarray]) -> str:
    from cmt.model import VARIANTS
    d = state_dict["init_in_linear.weight"].shape[0]
    for name, v in VARIANTS.items():
        if v["d_model"] == d:
            return name
    raise ValueError(f"no variant with d_model {d}; pass --variant")


def convert_state_dict(state_dict: Mapping[str, np.ndarray], variant: str | None = None) -> dict:
    import jax
    from flax import linen as nn

    from cmt.model import create_model, init_variables
    state_dict = {k[len("module."):] if k.startswith("module.") else k: np.asarray(v, np.float32)
                  for k, v in state_dict.items()}
    variables = convert_with_rules(state_dict, RULES)
    model = create_model(variant or variant_of(state_dict))
    expected = jax.eval_shape(lambda: nn.meta.unbox(init_variables(model)))
    check_against(variables, expected)
    return variables


def main(argv=None):
    from common.convert import load_state_dict, write
    from cmt.model import VARIANTS
    p = argparse.ArgumentParser(prog="python -m cmt.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="official state dict (.pt), e.g. loss_8_params.pt")
    p.add_argument("out_dir", help="directory for the converted orbax checkpoint")
    p.add_argument("--variant", default=None, choices=sorted(VARIANTS), help="default: from d_model")
    args = p.parse_args(argv)
    return write(convert_state_dict(load_state_dict(args.src), args.variant), args.src, args.out_dir)


if __name__ == "__main__":
    main()
