"""AVTON stage gmm on viton (configs/avton/_recipe.py holds the recipe and the presets).

  python -m common.train --config=configs/avton/viton_gmm.py --workdir=runs/avton_viton_gmm
  python -m common.train --config=configs/avton/viton_gmm.py:demo --workdir=/tmp/avton_gmm_demo
"""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "_recipe.py").recipe("gmm", "viton", arg)
