"""Vision Permutator (ViP): Permute-MLP classifiers, faithful to houqb/VisionPermutator."""
import functools

from common.models import register_model
from permutator.model import VARIANTS, create_model

for _name in VARIANTS:
    register_model(_name, functools.partial(create_model, _name))

__all__ = ["VARIANTS", "create_model"]
