"""VOLO-d5 at 224: the D1 recipe with this variant's lr and drop-path (README)."""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "volo_d1_224.py").recipe("volo_d5_224", arg)
