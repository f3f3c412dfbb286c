"""AVTON stage gmm on alltype (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/alltype_gmm.py --workdir=runs/avton_alltype_gmm
  python -m common.train --config=configs/avton/alltype_gmm.py:demo --workdir=/tmp/avton_gmm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("gmm", "alltype", arg)
