"""ViP-S/14 (the official code defines it; no released weights or recipe) on ImageNet-1k: the S/7 recipe with this variant's drop-path and eval crop;
see vip_s7.py for the source of every field."""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "vip_s7.py").recipe("vip_s14", arg)
