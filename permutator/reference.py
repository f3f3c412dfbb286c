"""The official PyTorch ViP, loaded at run time from a checkout of houqb/VisionPermutator.

For side-by-side benchmarks and equivalence checks only; none of the official code is
part of this repository:

    git clone https://github.com/houqb/VisionPermutator /path/to/VisionPermutator
    from permutator.reference import build_official, flax_variables_of
    torch_model = build_official("vip_s7", "/path/to/VisionPermutator")   # torch.nn.Module
    variables = flax_variables_of(torch_model)        # the same weights for our model

Needs torch and timm (models/vip.py imports timm's DropPath, trunc_normal_ and
register_model; it runs with current timm, deprecation warnings aside).
"""
import importlib.util
import os
import sys

from permutator.convert import convert_state_dict
from permutator.model import VARIANTS

_MODULES: dict[str, object] = {}


def official_module(checkout: str):
    """Import `<checkout>/models/vip.py` under a private name (once per checkout)."""
    path = os.path.join(os.path.abspath(checkout), "models", "vip.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: pass a checkout of houqb/VisionPermutator")
    if path not in _MODULES:
        spec = importlib.util.spec_from_file_location("_official_vip", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault("_official_vip", module)
        spec.loader.exec_module(module)
        _MODULES[path] = module
    return _MODULES[path]


def build_official(name: str, checkout: str, num_classes: int = 1000, **kwargs):
    """The official `vip_s14` / `vip_s7` / `vip_m7` / `vip_l7` torch module (eval mode)."""
    if name not in VARIANTS:
        raise KeyError(f"unknown ViP variant {name!r}; known: {', '.join(VARIANTS)}")
    return getattr(official_module(checkout), name)(num_classes=num_classes, **kwargs).eval()


def flax_variables_of(torch_model) -> dict:
    """Our {'params': ...} holding the torch model's current weights (through the converter)."""
    return convert_state_dict({k: v.detach().cpu().float().numpy()
                               for k, v in torch_model.state_dict().items()})
