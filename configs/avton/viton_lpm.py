"""AVTON stage lpm on viton (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/viton_lpm.py --workdir=runs/avton_viton_lpm
  python -m common.train --config=configs/avton/viton_lpm.py:demo --workdir=/tmp/avton_lpm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("lpm", "viton", arg)
