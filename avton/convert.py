"""Official PyTorch state_dicts -> our variables, as a table of renames and layouts:

- CP-VTON GMM (`gmm_final.pth`): extractionA/B.model.{i}, regression.conv.{i},
  regression.linear -> `gmm` / `igmm` (the TPS kernel has no parameters: a CP-VTON GMM
  loads into IGMM unchanged; only the warp it produces differs);
- CP-VTON TOM (`tom_final.pth`, UnetGenerator(25, 4, 6)): the recursive
  UnetSkipConnectionBlock Sequentials -> `tom` / `tofm` (29 inputs: the first conv's
  extra 4 input channels start at zero, see `widen_first_conv`);
- ACGPN `latest_net_G1.pth` / `G2` / `G` (Refine 37->14, 37->1, 24->3) -> `refine` (or
  `lpm` when the output width matches); pix2pixHD multiscale D (`latest_net_D*.pth`) -> `disc`.

conv OIHW -> HWIO; Linear (out, in) -> (in, out) (the GMM flattens NCHW before its Linear,
and so do we, so no permutation); BN weight/bias/running_mean/running_var -> scale/bias,
batch_stats mean/var; num_batches_tracked dropped. Every key must be used and every
parameter filled, or the conversion fails naming the key.

  python -m avton.convert gmm gmm_final.pth converted/gmm --variant igmm
  python -m avton.convert tom tom_final.pth converted/tom
  python -m common.train --config=configs/avton/viton_gmm.py --workdir=runs/igmm \
      --config.init_from=gmm=converted/gmm
"""
import argparse
from typing import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from avton import model as M

# the module each network name converts into, and its inputs for the shape template
NETWORKS = {"gmm": "gmm", "tom": "unet", "tofm": "unet", "lpm": "refine", "refine": "refine", "disc": "disc"}


def torch_key(kind: str, path: tuple[str, ...], num_downs: int = 6) -> str:
    """The official state_dict key of one of our leaves (path inside params/batch_stats)."""
    path = list(path)
    leaf = path[-1]
    torch_leaf = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
                  "var": "running_var"}[leaf]
    if kind == "unet":
        depth = path.count("inner")
        innermost = depth == num_downs - 1
        prefix = "model.model" + ("" if depth == 0 else ".1") + ".model.3" * max(depth - 1, 0)
        if depth > 0:
            prefix += ".model"
        layer = path[-2]
        if depth == 0:
            idx = {"down": 0, "up": 4}[layer]
        elif innermost:
            idx = {"down": 1, "up": 4}[layer]
        else:
            idx = {"down": 1, "up": 6}[layer]
        return f"{prefix}.{idx}.{torch_leaf}"
    mods = path[:-1]
    if kind == "disc":                     # scale1/layer0_0 -> scale1_layer0.0
        scale, layer = mods
        name, idx = layer.rsplit("_", 1)
        return f"{scale}_{name}.{idx}.{torch_leaf}"
    if kind == "gmm":                      # extractionA/model_0 -> extractionA.model.0
        out = []
        for m in mods:
            if "_" in m and m.rsplit("_", 1)[1].isdigit():
                out.extend(m.rsplit("_", 1))
            else:
                out.append(m)
        return ".".join(out + [torch_leaf])
    if kind == "refine":                   # conv1_0 -> conv1.0
        (m,) = mods
        return m.replace("_", ".") + "." + torch_leaf
    raise ValueError(f"unknown module kind {kind!r}")


def _layout(key: str, value: np.ndarray, target_shape) -> np.ndarray:
    v = np.asarray(value, np.float32)
    if v.ndim == 4:
        v = v.transpose(2, 3, 1, 0)
    elif v.ndim == 2:
        v = v.T
    if tuple(v.shape) != tuple(target_shape):
        raise ValueError(f"{key}: shape {tuple(v.shape)} (after layout change) but the model wants "
                         f"{tuple(target_shape)}")
    return v


def convert(kind: str, state_dict: Mapping[str, np.ndarray], template: Mapping, num_downs: int = 6,
            adapt: Callable | None = None) -> dict:
    """Variables {'params': ..., 'batch_stats': ...} shaped like `template` (a variables tree
    or its eval_shape) from a PyTorch state_dict."""
    sd = {k.removeprefix("module."): np.asarray(v) for k, v in state_dict.items()}
    used = set()

    def fill(kpath, leaf):
        path = tuple(str(getattr(k, "key", k)) for k in kpath)
        key = torch_key(kind, path[1:], num_downs)
        if key not in sd:
            raise KeyError(f"the state_dict has no {key!r} (for our {'/'.join(path)}); it has e.g. "
                           f"{sorted(sd)[:5]}")
        used.add(key)
        value = sd[key]
        if adapt is not None:
            value = adapt(key, value, leaf.shape)
        return jnp.asarray(_layout(key, value, leaf.shape))

    out = jax.tree_util.tree_map_with_path(fill, nn.meta.unbox(dict(template)))
    unused = sorted(k for k in sd if k not in used and not k.endswith("num_batches_tracked"))
    if unused:
        raise KeyError(f"state_dict keys with no place in the {kind} model: {unused[:10]}"
                       + (f" and {len(unused) - 10} more" if len(unused) > 10 else ""))
    return out


def widen_first_conv(key: str, value: np.ndarray, target_shape) -> np.ndarray:
    """A 25-input TOM into a 29-input TOFM: the first conv's new input channels (limb image
    and mask) start at zero, so the converted TOFM computes what the TOM did."""
    v = np.asarray(value)
    if v.ndim == 4 and v.shape[1] < target_shape[2]:
        pad = np.zeros((v.shape[0], target_shape[2] - v.shape[1]) + v.shape[2:], v.dtype)
        return np.concatenate([v, pad], 1)
    return v


def template(variant: str, in_ch: int, height: int = 256, width: int = 192, **kwargs):
    """eval_shape of a variant's variables for inputs of in_ch channels."""
    m = M.create_model(variant, **kwargs)
    kind = M.VARIANTS[variant]["kind"]
    if kind == "gmm":
        args = (jnp.zeros((1, height, width, in_ch)), jnp.zeros((1, height, width, 3)))
    else:
        args = (jnp.zeros((1, height, width, in_ch)),)
    return nn.meta.unbox(jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), *args)))


def load_pth(path: str) -> dict:
    import torch
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return {k: v.numpy() for k, v in sd.items()}


def in_channels(kind: str, sd: Mapping) -> int:
    first = {"gmm": "extractionA.model.0.weight", "unet": "model.model.0.weight",
             "refine": "conv1.0.weight", "disc": "scale0_layer0.0.weight"}[kind]
    return int(np.shape(sd[first])[1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("network", choices=sorted(NETWORKS), help="what the checkpoint holds")
    p.add_argument("checkpoint", help="the official .pth state_dict")
    p.add_argument("out", help="output directory (common.checkpoint.save_variables)")
    p.add_argument("--variant", default="", help="our variant (default: the network name)")
    p.add_argument("--in_ch", type=int, default=0, help="input channels of our model (default: the checkpoint's)")
    a = p.parse_args(argv)
    from common.checkpoint import save_variables
    kind = NETWORKS[a.network]
    sd = {k.removeprefix("module."): v for k, v in load_pth(a.checkpoint).items()}
    variant = a.variant or a.network
    kwargs = {}
    if kind == "refine":         # ACGPN G1 / G2 / G: output width and level widths from the checkpoint
        kwargs["out_ch"] = int(sd["conv9.6.weight"].shape[0])
        kwargs["widths"] = tuple(int(sd[f"conv{i}.0.weight"].shape[0]) for i in range(1, 6))
    if kind == "unet":           # the width and output channels the checkpoint was trained with
        kwargs["ngf"] = int(sd["model.model.0.weight"].shape[0])
        kwargs["out_ch"] = int(sd["model.model.4.weight"].shape[0])
    if kind == "disc":
        kwargs["ndf"] = int(sd["scale0_layer0.0.weight"].shape[0])
    cin = a.in_ch or in_channels(kind, sd)
    variables = convert(kind, sd, template(variant, cin, **kwargs),
                        adapt=widen_first_conv if cin != in_channels(kind, sd) else None)
    net = {"gmm": "gmm", "unet": "tofm", "refine": "lpm", "disc": "disc"}[kind]
    print(save_variables(a.out, {net: jax.tree_util.tree_map(np.asarray, variables)}))


if __name__ == "__main__":
    main()
