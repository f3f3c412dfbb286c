"""DualFormer: Local-Global Stratified Transformer for Efficient Video Recognition
(Liang, Zhou, Zimmermann, Yan; ECCV 2022)."""
from common.models import register_variants
from dualformer.model import VARIANTS, DualFormer, create_model

register_variants(__name__, VARIANTS, create_model)

__all__ = ["VARIANTS", "DualFormer", "create_model"]
