"""ViP-S/14 (the official code defines it; no released weights or recipe) on ImageNet-1k: the S/7 recipe with this variant's drop-path and eval crop;
see vip_s7.py for the source of every field."""
import importlib.util
import os

_spec = importlib.util.spec_from_file_location("vip_s7", os.path.join(os.path.dirname(__file__), "vip_s7.py"))
_s7 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_s7)


def get_config(arg=None):
    return _s7.recipe("vip_s14", arg)
