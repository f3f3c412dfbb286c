"""Registry of model factories by name, filled by the paper packages.

`create_model("poolformer_s12", num_classes=10)` finds the package that registered the
name (importing the paper packages on first use) and calls its factory.
"""
import importlib
from typing import Callable

import flax.linen as nn

# Packages that register models when imported; listed so a name resolves without the
# caller importing the right package first.
MODEL_PACKAGES = ("metaformer", "volo", "permutator", "dualformer", "longtail")

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    if name in _FACTORIES and _FACTORIES[name] is not factory:
        raise ValueError(f"model {name!r} is registered twice")
    _FACTORIES[name] = factory


def _import_packages() -> None:
    for pkg in MODEL_PACKAGES:
        try:
            importlib.import_module(pkg)
        except ModuleNotFoundError as e:
            if e.name != pkg:  # the package exists but is broken: say so
                raise


def available_models() -> list[str]:
    _import_packages()
    return sorted(_FACTORIES)


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _FACTORIES:
        _import_packages()
    if name not in _FACTORIES:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(available_models())}")
    return _FACTORIES[name](**kwargs)
