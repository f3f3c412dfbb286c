"""Vision Permutator (ViP): Permute-MLP classifiers, faithful to houqb/VisionPermutator."""
from common.models import register_variants
from permutator.model import VARIANTS, create_model

register_variants(__name__, VARIANTS, create_model)

__all__ = ["VARIANTS", "create_model"]
