"""AVTON stage lpm on vitonhd (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/vitonhd_lpm.py --workdir=runs/avton_vitonhd_lpm
  python -m common.train --config=configs/avton/vitonhd_lpm.py:demo --workdir=/tmp/avton_lpm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("lpm", "vitonhd", arg)
