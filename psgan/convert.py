"""Official PSGAN checkpoints -> our networks (a rename table for common.convert).

  python -m psgan.convert assets/models/G.pth converted/psgan               # the released generator
  python -m psgan.convert G.pth OUT --d-a D_A.pth --d-b D_B.pth             # + trained discriminators
  python -m psgan.convert G.pth OUT --variant psganpp --idnet-from-mdnet    # PSGAN++ start: IDNet = MDNet copy

Writes {"generator": {"params"}, ["disc_a": {"params", "spectral_stats"}, "disc_b": ...]},
which `config.init_from` and `python -m psgan.transfer --checkpoint` read.
Layouts: Conv OIHW -> HWIO; ConvTranspose2d (Cin, Cout, kh, kw) -> (kh, kw, Cout, Cin) for
flax ConvTranspose(transpose_kernel=True); InstanceNorm(affine) weight/bias -> scale/bias;
the SN discriminator's weight_bar -> kernel, weight_u / weight_v -> spectral_stats u / v.
"""
import argparse
import copy
from typing import Mapping, Sequence

import jax
import numpy as np

from common import convert
from common.convert import check_against, conv_kernel, convert_with_rules, identity


def convtranspose_kernel(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))


def generator_rules():
    g = "params"
    rules = [
        (r"pnet_in\.0\.weight", f"{g}/mdnet/pnet_in_0/kernel", conv_kernel),
        (r"pnet_in\.1\.weight", f"{g}/mdnet/pnet_in_1/scale", identity),
        (r"pnet_in\.1\.bias", f"{g}/mdnet/pnet_in_1/bias", identity),
        (r"pnet_down_(\d)\.0\.weight", rf"{g}/mdnet/pnet_down_\1_0/kernel", conv_kernel),
        (r"pnet_down_(\d)\.1\.weight", rf"{g}/mdnet/pnet_down_\1_1/scale", identity),
        (r"pnet_down_(\d)\.1\.bias", rf"{g}/mdnet/pnet_down_\1_1/bias", identity),
        (r"pnet_bottleneck_(\d)\.main\.([03])\.weight", rf"{g}/mdnet/pnet_bottleneck_\1/main_\2/kernel", conv_kernel),
        (r"pnet_bottleneck_(\d)\.main\.([14])\.weight", rf"{g}/mdnet/pnet_bottleneck_\1/main_\2/scale", identity),
        (r"pnet_bottleneck_(\d)\.main\.([14])\.bias", rf"{g}/mdnet/pnet_bottleneck_\1/main_\2/bias", identity),
        (r"simple_spade\.get_(gamma|beta)\.weight", rf"{g}/mdnet/simple_spade_get_\1/kernel", conv_kernel),
        (r"atten_bottleneck_([gb])\.g\.weight", rf"{g}/atten_bottleneck_\1/kernel", conv_kernel),
        (r"atten_bottleneck_([gb])\.g\.bias", rf"{g}/atten_bottleneck_\1/bias", identity),
        (r"tnet_in_conv\.weight", f"{g}/stnet/tnet_in_conv/kernel", conv_kernel),
        (r"tnet_down_conv_(\d)\.weight", rf"{g}/stnet/tnet_down_conv_\1/kernel", conv_kernel),
        (r"tnet_bottleneck_(\d)\.main\.([03])\.weight", rf"{g}/stnet/tnet_bottleneck_\1/main_\2/kernel", conv_kernel),
        (r"tnet_up_conv_(\d)\.weight", rf"{g}/stnet/tnet_up_conv_\1/kernel", convtranspose_kernel),
        (r"tnet_out\.0\.weight", f"{g}/stnet/tnet_out_0/kernel", conv_kernel),
    ]
    return rules


def discriminator_rules():
    return [
        (r"(main\.\d+|conv1)\.weight_bar", r"params/\1/kernel", conv_kernel),
        (r"(main\.\d+|conv1)\.bias", r"params/\1/bias", identity),
        (r"(main\.\d+|conv1)\.weight_u", r"spectral_stats/\1/u", identity),
        (r"(main\.\d+|conv1)\.weight_v", r"spectral_stats/\1/v", identity),
    ]


def _dots_to_underscores(tree):
    """`main.0` module names (from the back-references) -> our `main_0`."""
    if isinstance(tree, Mapping):
        return {k.replace(".", "_"): _dots_to_underscores(v) for k, v in tree.items()}
    return tree


def convert_generator(state_dict: Mapping[str, np.ndarray], variant: str = "psgan",
                      idnet_from_mdnet: bool = False, **model_kwargs) -> dict:
    """G.pth -> {"params": ...} of `create_model(variant)`, checked leaf by leaf (at 256²)."""
    from psgan.model import create_model, dummy_inputs
    variables = convert_with_rules(state_dict, generator_rules(), ignore=(r".*num_batches_tracked",))
    model = create_model(variant, **model_kwargs)
    if model.idnet:
        if not idnet_from_mdnet:
            raise ValueError(f"{variant} has an IDNet, which the released G.pth lacks: pass "
                             "--idnet-from-mdnet to start it from a copy of MDNet")
        variables["params"]["id_net"] = copy.deepcopy(variables["params"]["mdnet"])
    expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *dummy_inputs(1, 64)))
    check_against(variables, expected)
    return variables


def convert_discriminator(state_dict: Mapping[str, np.ndarray]) -> dict:
    """D_A.pth / D_B.pth (SN PatchGAN) -> {"params", "spectral_stats"}; conv_dim and
    repeat_num are read from the shapes."""
    import jax.numpy as jnp
    from psgan.model import Discriminator
    if "main.0.weight_bar" not in state_dict:
        raise KeyError("not an SN PatchGAN discriminator state_dict: no main.0.weight_bar")
    conv_dim = int(state_dict["main.0.weight_bar"].shape[0])
    repeat_num = sum(1 for k in state_dict if k.startswith("main.") and k.endswith(".weight_bar")) - 1
    variables = _dots_to_underscores(convert_with_rules(state_dict, discriminator_rules()))
    variables["spectral_stats"] = {k: {n: np.asarray(a).reshape(-1) for n, a in v.items()}
                                   for k, v in variables["spectral_stats"].items()}
    d = Discriminator(conv_dim, repeat_num)
    expected = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
    check_against(variables, expected)
    return variables


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="python -m psgan.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="the official generator state_dict, e.g. assets/models/G.pth")
    p.add_argument("out_dir", help="directory for the converted orbax checkpoint")
    p.add_argument("--variant", default="psgan", help="psgan | psganpp | psganpp_512 | tiny")
    p.add_argument("--idnet-from-mdnet", action="store_true", help="PSGAN++ variants: IDNet = a copy of MDNet")
    p.add_argument("--d-a", default="", help="D_A.pth (judges makeup images)")
    p.add_argument("--d-b", default="", help="D_B.pth (judges non-makeup images)")
    args = p.parse_args(argv)
    nets = {"generator": convert_generator(convert.load_state_dict(args.src), args.variant, args.idnet_from_mdnet)}
    for name, path in (("disc_a", args.d_a), ("disc_b", args.d_b)):
        if path:
            nets[name] = convert_discriminator(convert.load_state_dict(path))
    return convert.write(nets, args.src, args.out_dir)


if __name__ == "__main__":
    main()
