"""Registry of model factories by name, filled by the packages that define the models.

A config names a model as `PACKAGE:NAME` (e.g. `mypackage:tiny`): the package
is imported, which registers its variants, and the factory is called. A bare `NAME` works
once its package has been imported.

  create_model("mypackage:tiny", num_classes=10)
"""
import functools
import inspect
from typing import Callable, Iterable

import flax.linen as nn

from common.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(name: str, factory: Callable[..., nn.Module], module: str = "") -> None:
    MODELS.register(name, factory, module or getattr(factory, "__module__", ""))


def register_variants(module: str, names: Iterable[str], factory: Callable[..., nn.Module]) -> None:
    """Register `factory(name, **kwargs)` under every variant name of a family's table;
    `module` is the registering package (its `__name__`)."""
    for name in names:
        register_model(name, functools.partial(factory, name), module)


def available_models() -> list[str]:
    return MODELS.names()


def model_factory(name: str) -> Callable[..., nn.Module]:
    return MODELS.get(name)


def accepts(name: str, argument: str) -> bool:
    """Whether the named model's factory takes `argument` (e.g. `token_chunk`)."""
    return argument in inspect.signature(model_factory(name)).parameters


def create_model(name: str, **kwargs) -> nn.Module:
    return model_factory(name)(**kwargs)
