"""VOLO: Vision Outlooker for visual recognition (Yuan et al., TPAMI 2022)."""
from common.models import register_variants
from volo.model import VARIANTS, VOLO, create_model

register_variants(__name__, VARIANTS, create_model)

__all__ = ["VARIANTS", "VOLO", "create_model"]
