"""AVTON stage lpm on alltype (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/alltype_lpm.py --workdir=runs/avton_alltype_lpm
  python -m common.train --config=configs/avton/alltype_lpm.py:demo --workdir=/tmp/avton_lpm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("lpm", "alltype", arg)
