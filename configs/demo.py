"""The README's demo: a small PoolFormer trained on scikit-learn's bundled digits.

No download (the data ships inside scikit-learn and is prepared into a tfds dataset on
first use); a few minutes on 2 CPU cores; ends by printing the eval top-1 accuracy.
"""
from common.config import check_preset, load_sibling


def get_config(arg=None):
    """No preset is this file's default, the `demo` preset; `:test` is the seconds-long one."""
    return load_sibling(__file__, "metaformer/poolformer_s12.py").recipe(
        "poolformer_s12", check_preset(arg) or "demo")
