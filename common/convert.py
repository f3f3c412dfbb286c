"""Generic PyTorch / safetensors state_dict -> Flax variable-tree helpers.

A paper's `convert.py` is a table of (source-name pattern -> Flax path, tensor
transform) rows handed to `convert_with_rules`; everything else (reading files,
checking that every source key is consumed and every Flax leaf filled, writing an
orbax checkpoint that common.evaluate / common.train load) lives here once.

  python -m common.convert torchvision resnet50.pth OUT_DIR [--arch resnet50] [--norm frozen]

converts torchvision's ImageNet ResNets for common/layers/resnet.py (and, with
`--arch vgg16|vgg19`, VGG features for common/layers/vgg.py).
"""
import argparse
import os
import re
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from common.errors import UserError, first_line

Transform = Callable[[np.ndarray], np.ndarray]


class NotAModelCheckpoint(UserError, ValueError):
    """The input is not a checkpoint, or a checkpoint of another architecture."""


# ---------------------------------------------------------------- tensor layouts
def identity(w: np.ndarray) -> np.ndarray:
    return w


def conv_kernel(w: np.ndarray) -> np.ndarray:
    """Conv weight OIHW (or OITHW for 3D, OIL for 1D) -> Flax HWIO / THWIO / LIO."""
    return np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))


def linear_kernel(w: np.ndarray) -> np.ndarray:
    """nn.Linear weight (out, in) -> Dense kernel (in, out)."""
    return np.transpose(w)


def pointwise_conv_kernel(w: np.ndarray) -> np.ndarray:
    """1x1 conv weight (O, I, 1, 1) -> Dense kernel (I, O)."""
    return np.transpose(w.reshape(w.shape[0], w.shape[1]))


def depthwise_conv_kernel(w: np.ndarray) -> np.ndarray:
    """Depthwise conv (C, 1, kh, kw) -> Flax HWIO with feature_group_count=C: (kh, kw, 1, C)."""
    return conv_kernel(w)


def nchw_to_nhwc(w: np.ndarray) -> np.ndarray:
    """A (1, C, H, W) tensor such as a position embedding -> (1, H, W, C)."""
    return np.moveaxis(w, 1, -1)


# ---------------------------------------------------------------- reading files
def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Read an official checkpoint into {name: float32/int numpy array}.

    .safetensors is read without torch; .pth / .pth.tar / .pt / .bin need torch
    (`pip install .[convert]`). Wrappers such as {'state_dict': ...}, {'model': ...},
    {'state_dict_ema': ...} and DistributedDataParallel's `module.` prefix are removed.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    if os.path.isdir(path) or os.path.getsize(path) == 0:
        raise NotAModelCheckpoint(f"{path} is {'a folder' if os.path.isdir(path) else 'empty'}, not a "
                                  ".pth / .safetensors checkpoint file")
    try:
        if path.endswith(".safetensors"):
            from safetensors.numpy import load_file
            sd = load_file(path)
        else:
            obj = _torch_load(path)
            for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
                if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
                    obj = obj[key]
                    break
            if not isinstance(obj, Mapping):
                raise NotAModelCheckpoint(f"{path} holds a {type(obj).__name__}, not a state_dict of tensors")
            sd = {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
                  for k, v in obj.items() if hasattr(v, "detach")}
    except (NotAModelCheckpoint, ImportError):
        raise
    except Exception as e:  # noqa: BLE001 - pickle / zip / safetensors header errors
        raise NotAModelCheckpoint(f"{path} is not a PyTorch or safetensors checkpoint "
                                  f"({first_line(e, 200)})") from e
    if not sd:
        raise NotAModelCheckpoint(f"{path} holds no tensors")
    return {strip_prefix(k, "module."): np.asarray(v) for k, v in sd.items()}


def _torch_load(path: str):
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"reading {path} needs torch: pip install '.[convert]'") from e
    return torch.load(path, map_location="cpu", weights_only=False)


def strip_prefix(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


def split_in_proj(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torch.nn.MultiheadAttention's packed `<attn>.in_proj_{weight,bias}` (rows q | k | v)
    -> `<attn>.{query,key,value}.{weight,bias}`, the names of separate projections."""
    out = {}
    for name, value in state_dict.items():
        m = re.fullmatch(r"(.*)\.in_proj_(weight|bias)", name)
        if not m:
            out[name] = value
            continue
        for part, chunk in zip(("query", "key", "value"), np.split(np.asarray(value), 3, axis=0)):
            out[f"{m[1]}.{part}.{m[2]}"] = chunk
    return out


# ---------------------------------------------------------------- name tables
def set_path(tree: dict, path: Sequence[str], value: np.ndarray) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if path[-1] in node:
        raise ValueError(f"Flax leaf {'/'.join(path)} is filled twice")
    node[path[-1]] = value


def convert_with_rules(state_dict: Mapping[str, np.ndarray],
                       rules: Iterable[tuple[str, str, Transform]],
                       ignore: Iterable[str] = ()) -> dict:
    """Map every source tensor through the first rule whose regex fully matches its name.

    A rule is (regex over the source name, Flax path with `\\1`-style back-references and
    `/` separators, transform). Keys matching an `ignore` regex are dropped; any other key
    that no rule matches is an error, so a checkpoint is never half-loaded silently.
    Returns a nested dict of numpy arrays, e.g. {'params': {...}}.
    """
    compiled = [(re.compile(src), dst, fn) for src, dst, fn in rules]
    ignored = [re.compile(p) for p in ignore]
    out: dict = {}
    unmatched = []
    for name, value in state_dict.items():
        for regex, dst, fn in compiled:
            m = regex.fullmatch(name)
            if m:
                path = m.expand(dst).split("/")
                set_path(out, path, np.asarray(fn(np.asarray(value)), dtype=value.dtype))
                break
        else:
            if not any(p.fullmatch(name) for p in ignored):
                unmatched.append(name)
    if unmatched and len(unmatched) == len(state_dict):
        raise NotAModelCheckpoint(f"no tensor of this model's checkpoint found; the file holds "
                                  f"{len(state_dict)} tensors such as {', '.join(list(state_dict)[:4])}")
    if unmatched:
        raise NotAModelCheckpoint(f"{len(unmatched)} of {len(state_dict)} tensors match none of this "
                                  f"model's names (another variant or architecture?): {unmatched[:6]}")
    return out


def flatten(tree: Mapping, prefix: tuple = ()) -> dict[tuple, object]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def check_against(converted: Mapping, expected: Mapping, allow_missing: Iterable[str] = ()) -> None:
    """Every leaf of `expected` (e.g. jax.eval_shape of model.init) is filled with its
    exact shape, and `converted` has nothing extra. `allow_missing` are regexes over
    '/'-joined paths that may stay unfilled (e.g. a new head, dense-task out-norms)."""
    got = {"/".join(map(str, k)): v for k, v in flatten(converted).items()}
    want = {"/".join(map(str, k)): v for k, v in flatten(expected).items()}
    allowed = [re.compile(p) for p in allow_missing]
    missing = [k for k in want if k not in got and not any(p.fullmatch(k) for p in allowed)]
    extra = [k for k in got if k not in want]
    wrong = [f"{k}: {got[k].shape} != {tuple(want[k].shape)}" for k in got
             if k in want and tuple(got[k].shape) != tuple(want[k].shape)]
    if missing or extra or wrong:
        raise ValueError(f"converted tree does not fit the model: missing={missing[:10]} "
                         f"extra={extra[:10]} wrong_shape={wrong[:10]}")


# ---------------------------------------------------------------- CLI
def add_io_arguments(parser: argparse.ArgumentParser, src_help: str = "official .pth / .pth.tar / "
                     ".safetensors file") -> argparse.ArgumentParser:
    """SRC, OUT_DIR and --overwrite, the same for every converter."""
    parser.add_argument("src", help=src_help)
    parser.add_argument("out_dir", help="directory for the converted orbax checkpoint (new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a checkpoint already in OUT_DIR (other files are never touched)")
    return parser


def write(variables: dict, src: str, out_dir: str, overwrite: bool = False) -> str:
    """Save converted variables as an orbax checkpoint (common.checkpoint.save_variables)."""
    from common import checkpoint  # imported late: keeps `import <paper>.convert` light

    path = checkpoint.save_variables(out_dir, variables, overwrite=overwrite)
    n = sum(int(np.prod(v.shape)) for v in flatten(variables).values())
    print(f"wrote {n:,} values from {src} to {path}")
    return path


def convert_main(convert_state_dict: Callable[[Mapping[str, np.ndarray]], dict],
                 argv: Sequence[str] | None = None, description: str = "") -> str:
    """`python -m <paper>.convert SRC OUT_DIR`: read, convert, write an orbax checkpoint."""
    parser = add_io_arguments(argparse.ArgumentParser(description=description or "Convert an official checkpoint."))
    args = parser.parse_args(argv)
    return run_cli(lambda: write(convert_state_dict(load_state_dict(args.src)), args.src, args.out_dir,
                                 args.overwrite), args.src)


def run_cli(convert: Callable[[], str], src: str) -> str:
    """Run a converter's work; a user error (a file that is not this model's checkpoint, an
    output folder in the way) is one line naming SRC and exit status 2."""
    from common import cli
    try:
        return convert()
    except NotAModelCheckpoint as e:
        msg = str(e)
        cli.fail(msg if src in msg else f"{src}: {msg}")
    except cli.USER_ERRORS as e:
        cli.fail(str(e))


def main(argv: Sequence[str] | None = None) -> str:
    """`python -m common.convert torchvision SRC.pth OUT_DIR [--arch resnet50] [--norm frozen]`:
    torchvision ImageNet weights -> the variables of common.layers.resnet's model."""
    from common.layers import resnet, vgg

    parser = argparse.ArgumentParser(prog="python -m common.convert",
                                     description="Convert public weights into an orbax checkpoint.")
    sources = parser.add_subparsers(dest="source", required=True)
    tv = sources.add_parser("torchvision", help="a torchvision ResNet / ResNeXt / VGG state_dict (.pth)")
    add_io_arguments(tv, "state_dict file, e.g. resnet50-11ad3fa6.pth")
    tv.add_argument("--arch", default="resnet50", choices=sorted(resnet.TORCHVISION) + sorted(vgg.ARCHS))
    tv.add_argument("--norm", default="batch", choices=resnet.NORMS,
                    help="frozen: the BatchNorm affines go to batch_stats for FrozenBatchNorm")
    args = parser.parse_args(argv)

    def convert():
        if args.arch in vgg.ARCHS:          # VGG features (no norm layers: --norm does not apply)
            variables = vgg.convert_torchvision(load_state_dict(args.src), args.arch)
        else:
            variables = resnet.convert_torchvision(load_state_dict(args.src), args.arch, args.norm)
        return write(variables, args.src, args.out_dir, args.overwrite)
    return run_cli(convert, args.src)


if __name__ == "__main__":
    main()
