"""Official checkpoints -> our variables ({'params', 'batch_stats'}).

  python -m pnp_detr.convert detr-r50-e632da11.pth OUT_DIR --variant pnp_detr_r50
  python -m pnp_detr.convert checkpoint.pth OUT_DIR --variant pnp_detr_r50_dc5

Sources: DETR's released models (facebookresearch/detr: detr-r50 / -dc5 / -r101 / -r101-dc5,
whose 'model' entry is the state_dict) and training checkpoints of the official PnP-DETR
code (twangnh/pnp-detr main.py: {'model', 'optimizer', ...}). A DETR checkpoint has no
sampler: converted to a PnP variant, the sampler keeps a fresh PyTorch-default init, which
is written into the output (and said so). torch nn.MultiheadAttention's fused in_proj is
split into our query / key / value projections; 1x1 convs become Dense kernels; the
FrozenBatchNorm buffers go to batch_stats.
"""
import argparse
from typing import Mapping

import numpy as np

from common.convert import convert_with_rules, identity, linear_kernel, pointwise_conv_kernel, split_in_proj

IGNORE = [r".*num_batches_tracked"]
SAMPLER = "transformer/sampler"


def dense_kernel(w: np.ndarray) -> np.ndarray:
    """nn.Linear (out, in) or 1x1 nn.Conv2d (out, in, 1, 1) -> Dense kernel (in, out)."""
    return pointwise_conv_kernel(w) if w.ndim == 4 else linear_kernel(w)


def rules(num_heads: int):
    from common.layers.resnet import torchvision_rules

    def heads_in(w):       # (d_out, d_in) -> DenseGeneral kernel (d_in, heads, d_out / heads)
        return w.T.reshape(w.shape[1], num_heads, -1)

    def heads_bias(b):     # (d,) -> (heads, d / heads)
        return b.reshape(num_heads, -1)

    def heads_out(w):      # out_proj (d_out, d_in) -> (heads, d_in / heads, d_out)
        return w.T.reshape(num_heads, -1, w.shape[0])

    def nest(dst):         # torchvision's paths live under `backbone` here
        collection, rest = dst.split("/", 1)
        return f"{collection}/backbone/{rest}"

    layer = r"transformer\.(encoder|decoder)\.layers\.(\d+)\."
    ours = r"params/transformer/\1/layers_\2/"
    table = [(r"backbone\.0\.body\." + src, nest(dst), fn) for src, dst, fn in torchvision_rules("frozen")]
    table += [
        (r"input_proj\.weight", "params/input_proj/kernel", dense_kernel),
        (r"input_proj\.bias", "params/input_proj/bias", identity),
        (r"query_embed\.weight", "params/query_embed", identity),
        (r"(class_embed)\.weight", r"params/\1/kernel", dense_kernel),
        (r"(class_embed)\.bias", r"params/\1/bias", identity),
        (r"bbox_embed\.layers\.(\d)\.weight", r"params/bbox_embed/layers_\1/kernel", dense_kernel),
        (r"bbox_embed\.layers\.(\d)\.bias", r"params/bbox_embed/layers_\1/bias", identity),
        (layer + r"(self_attn|multihead_attn)\.(query|key|value)\.weight", ours + r"\3/\4/kernel", heads_in),
        (layer + r"(self_attn|multihead_attn)\.(query|key|value)\.bias", ours + r"\3/\4/bias", heads_bias),
        (layer + r"(self_attn|multihead_attn)\.out_proj\.weight", ours + r"\3/out_proj/kernel", heads_out),
        (layer + r"(self_attn|multihead_attn)\.out_proj\.bias", ours + r"\3/out_proj/bias", identity),
        (layer + r"(linear\d)\.weight", ours + r"\3/kernel", dense_kernel),
        (layer + r"(linear\d)\.bias", ours + r"\3/bias", identity),
        (layer + r"(norm\d)\.weight", ours + r"\3/scale", identity),
        (layer + r"(norm\d)\.bias", ours + r"\3/bias", identity),
        (r"transformer\.decoder\.norm\.weight", "params/transformer/decoder/norm/scale", identity),
        (r"transformer\.decoder\.norm\.bias", "params/transformer/decoder/norm/bias", identity),
        (r"transformer\.sampler\.(score_pred_net|k_proj)\.(\d)\.weight", rf"params/{SAMPLER}/\1_\2/kernel",
         dense_kernel),
        (r"transformer\.sampler\.(score_pred_net|k_proj)\.(\d)\.bias", rf"params/{SAMPLER}/\1_\2/bias", identity),
        (r"transformer\.sampler\.(score_pred_net|k_proj|v_proj)\.weight", rf"params/{SAMPLER}/\1/kernel",
         dense_kernel),
        (r"transformer\.sampler\.(score_pred_net|k_proj|v_proj)\.bias", rf"params/{SAMPLER}/\1/bias", identity),
    ]
    return table


def build_model(variant: str, state_dict: Mapping[str, np.ndarray], **overrides):
    """The variant (with `overrides`), with the checkpoint's class and query counts."""
    from pnp_detr.model import create_model
    return create_model(variant, num_classes=state_dict["class_embed.weight"].shape[0] - 1,
                        num_queries=state_dict["query_embed.weight"].shape[0], **overrides)


def fresh_sampler_params(model, seed: int = 0) -> dict:
    """PyTorch-default init of the model's sampler (pnp_detr.sampler.SortSampler)."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    from pnp_detr.sampler import SortSampler
    sampler = SortSampler(model.num_pool_tokens, model.score_net, model.pool_logits_net, model.pos_in_pool_logits,
                          model.max_alpha)
    d = model.hidden_dim
    variables = sampler.init(jax.random.PRNGKey(seed), jnp.zeros((1, 4, d)), jnp.ones((1, 4), bool),
                             jnp.zeros((1, 4, d)), 0.5)
    return jax.tree_util.tree_map(np.asarray, nn.meta.unbox(variables["params"]))


def convert_state_dict(state_dict: Mapping[str, np.ndarray], variant: str = "pnp_detr_r50",
                       seed: int = 0, **overrides) -> tuple[dict, list[str]]:
    """{official name: array} -> (variables of `create_model(variant, **overrides)`, notes).
    A PnP variant converted from a checkpoint without sampler gets a fresh sampler (`seed`),
    named in the notes."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    from common.convert import check_against
    model = build_model(variant, state_dict, **overrides)
    variables = convert_with_rules(split_in_proj(state_dict), rules(model.num_heads), IGNORE)
    notes = []
    has_sampler = any(k.startswith("transformer.sampler.") for k in state_dict)
    if model.use_sampler and not has_sampler:
        variables["params"]["transformer"]["sampler"] = fresh_sampler_params(model, seed)
        notes.append(f"the checkpoint has no sampler: {SAMPLER} keeps a fresh PyTorch-default init (seed {seed})")
    elif has_sampler and not model.use_sampler:
        raise ValueError(f"the checkpoint has a PnP sampler but {variant} is plain DETR; use a pnp_detr_* variant")
    expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                                                 jnp.ones((1, 64, 64), bool), 0.5))
    check_against(variables, nn.meta.unbox(expected))
    return variables, notes


def main(argv=None):
    from common.convert import add_io_arguments, load_state_dict, run_cli, write
    from pnp_detr.model import VARIANTS
    p = add_io_arguments(argparse.ArgumentParser(prog="python -m pnp_detr.convert", description=__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter),
                         "official .pth (DETR release or PnP-DETR training checkpoint)")
    p.add_argument("--variant", default="pnp_detr_r50", choices=sorted(VARIANTS))
    p.add_argument("--seed", type=int, default=0, help="init of a sampler the checkpoint lacks")
    args = p.parse_args(argv)

    def convert():
        variables, notes = convert_state_dict(load_state_dict(args.src), args.variant, args.seed)
        path = write(variables, args.src, args.out_dir, args.overwrite)
        for note in notes:
            print(f"note: {note}")
        return path
    return run_cli(convert, args.src)


if __name__ == "__main__":
    main()
