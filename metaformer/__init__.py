"""MetaFormer / PoolFormer: pooling as token mixer (Yu et al., CVPR 2022)."""
import functools

from common.models import register_model
from metaformer.model import VARIANTS, MetaFormer, create_model

for _name in VARIANTS:
    register_model(_name, functools.partial(create_model, _name))

__all__ = ["VARIANTS", "MetaFormer", "create_model"]
