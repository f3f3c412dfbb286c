"""PoolFormer-M36 on ImageNet-1k: the S12 recipe with this variant's drop-path and crop
(sail-sg/poolformer README, models/poolformer.py default_cfgs); see poolformer_s12.py
for the sources of every field."""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "poolformer_s12.py").recipe("poolformer_m36", arg)
