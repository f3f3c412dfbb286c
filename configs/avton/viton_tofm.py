"""AVTON stage tofm on viton (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/viton_tofm.py --workdir=runs/avton_viton_tofm
  python -m common.train --config=configs/avton/viton_tofm.py:demo --workdir=/tmp/avton_tofm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("tofm", "viton", arg)
