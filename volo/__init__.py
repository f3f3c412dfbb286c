"""VOLO: Vision Outlooker for visual recognition (Yuan et al., TPAMI 2022)."""
import functools

from common.models import register_model
from volo.model import VARIANTS, VOLO, create_model

for _name in VARIANTS:
    register_model(_name, functools.partial(create_model, _name))

__all__ = ["VARIANTS", "VOLO", "create_model"]
