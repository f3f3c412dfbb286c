"""MvP: Direct Multi-view Multi-person 3D Pose Estimation (Wang et al., NeurIPS 2021)."""
from common.models import register_variants
from mvp.model import VARIANTS, MvP, create_model

register_variants(__name__, VARIANTS, create_model)

__all__ = ["VARIANTS", "MvP", "create_model"]
