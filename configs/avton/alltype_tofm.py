"""AVTON stage tofm on alltype (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/alltype_tofm.py --workdir=runs/avton_alltype_tofm
  python -m common.train --config=configs/avton/alltype_tofm.py:demo --workdir=/tmp/avton_tofm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("tofm", "alltype", arg)
