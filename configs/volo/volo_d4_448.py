"""VOLO-d4 fine-tuned at 448 from its 224 checkpoint (README fine-tuning recipe);
set --config.init_from to the checkpoint converted with --img_size 448."""
from common.config import load_sibling


def get_config(arg=None):
    return load_sibling(__file__, "volo_d1_224.py").finetune("volo_d4_448", arg)
