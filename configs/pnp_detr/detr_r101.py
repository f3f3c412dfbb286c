"""detr_r101 on COCO 2017: the recipe of pnp_detr_r50.py with this variant (M = 100 pooled tokens
with DC5, 30 without; plain DETR evaluates once, without a poll ratio)."""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "pnp_detr_r50.py").recipe("detr_r101", arg)
