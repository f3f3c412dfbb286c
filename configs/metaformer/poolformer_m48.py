"""PoolFormer-M48 on ImageNet-1k: the S12 recipe with this variant's drop-path and crop
(spec §3.9); see poolformer_s12.py for the sources of every field."""
import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "poolformer_s12", os.path.join(os.path.dirname(__file__), "poolformer_s12.py"))
_s12 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_s12)


def get_config(arg=None):
    return _s12.recipe("poolformer_m48", arg)
