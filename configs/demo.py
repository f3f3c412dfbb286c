"""The README's demo: a small PoolFormer trained on scikit-learn's bundled digits.

No download (the data ships inside scikit-learn and is prepared into a tfds dataset on
first use); a few minutes on 2 CPU cores; ends by printing the eval top-1 accuracy.
"""
import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "poolformer_s12", os.path.join(os.path.dirname(__file__), "metaformer", "poolformer_s12.py"))
_s12 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_s12)


def get_config(arg=None):
    return _s12.recipe("poolformer_s12", "test" if arg == "test" else "demo")
