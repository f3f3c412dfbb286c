"""MetaFormer / PoolFormer: pooling as token mixer (Yu et al., CVPR 2022)."""
from common.models import register_variants
from metaformer.model import VARIANTS, MetaFormer, create_model

register_variants(__name__, VARIANTS, create_model)

__all__ = ["VARIANTS", "MetaFormer", "create_model"]
