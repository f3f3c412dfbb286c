"""dualformer_tiny_ucf101: the official recipe (sail-sg/dualformer configs/recognition/dualformer/; its figures
are the RECIPES row in dualformer_tiny_k400.py). Fine-tunes (Diving-48, HMDB51, UCF101)
start from the converted K400 checkpoint: --config.init_from=DIR --config.init_reset_head=True."""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "dualformer_tiny_k400.py").recipe("dualformer_tiny_ucf101", arg)
