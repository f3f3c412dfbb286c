"""PSGAN++ on MT-HR at 512² (the draft's 512 model; MT-HR is not public: point the
`mt_folder` builder at a folder of 512² faces in the MT layout). The AMM runs in blocks of
1,024 source rows (amm_chunk) so its 3 x 16,384² attention never exists at once.

  python -m common.train --config=configs/psgan/psganpp_mthr512.py --workdir=runs/psganpp512
"""
import importlib.util
import os

_spec = importlib.util.spec_from_file_location("_psganpp_mt256", os.path.join(os.path.dirname(__file__), "psganpp_mt256.py"))
_pp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pp)


def get_config(arg=None):
    c = _pp._base.recipe("psganpp_512", "psganpp", 512, arg)
    c.unlock()
    _pp.plus_plus(c)
    c.data.num_train_examples = 2000          # MT-HR: 2,000 makeup + 1,000 non-makeup
    c.lock()
    return c
