"""Deep long-tailed learning (Zhang et al., TPAMI 2023): the survey's methods as composable
parts (samplers, losses, heads, decoupled training, BBN, multi-expert RIDE / SADE,
MiSLAS), the LT benchmarks and its metrics."""
from common.layers.resnet import resnet32, resnet50, resnext50_32x4d
from common.models import register_variants
from longtail import models as _models

MODELS = {"resnet32": resnet32, "resnet50": resnet50, "resnext50_32x4d": resnext50_32x4d, **_models.MODELS}


def create_model(name: str, num_classes: int = 1000, dtype=None, **overrides):
    import jax.numpy as jnp
    return MODELS[name](num_classes=num_classes, dtype=dtype or jnp.float32, **overrides)


register_variants(__name__, MODELS, create_model)
