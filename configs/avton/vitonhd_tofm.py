"""AVTON stage tofm on vitonhd (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/vitonhd_tofm.py --workdir=runs/avton_vitonhd_tofm
  python -m common.train --config=configs/avton/vitonhd_tofm.py:demo --workdir=/tmp/avton_tofm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("tofm", "vitonhd", arg)
