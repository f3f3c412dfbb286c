"""PSGAN++ on MT at 256² (the authors' draft; reconstructed, no released code): IDNet removal
R(y) in the cycle, the makeup detail loss (lambda_dense 5), VGG-16 relu4_1, no identity term.

  python -m common.train --config=configs/psgan/psganpp_mt256.py --workdir=runs/psganpp
  python -m common.train --config=configs/psgan/psganpp_mt256.py:demo --workdir=/tmp/psganpp_demo
  # start from the released PSGAN generator, IDNet = a copy of MDNet:
  python -m psgan.convert G.pth converted/psganpp --variant psganpp --idnet-from-mdnet
"""
import importlib.util
import os

_spec = importlib.util.spec_from_file_location("_psgan_mt256", os.path.join(os.path.dirname(__file__), "psgan_mt256.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def plus_plus(c):
    l = c.loss
    l.lambda_detail = 5.0              # lambda_dense
    l.vgg_layer = "relu4_1" if c.data.image_size >= 128 else l.vgg_layer
    l.lambda_idt = 0.0                 # not in the PSGAN++ objective
    return c


def get_config(arg=None):
    c = _base.recipe("psganpp", "psganpp", 256, arg)
    c.unlock()
    plus_plus(c)
    c.lock()
    return c
