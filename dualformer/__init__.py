"""DualFormer: Local-Global Stratified Transformer for Efficient Video Recognition
(Liang, Zhou, Zimmermann, Yan; ECCV 2022)."""
import functools

from common.models import register_model
from dualformer.model import VARIANTS, DualFormer, create_model

for _name in VARIANTS:
    register_model(_name, functools.partial(create_model, _name))

__all__ = ["VARIANTS", "DualFormer", "create_model"]
