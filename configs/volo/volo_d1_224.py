"""VOLO-D1 at 224 on ImageNet-1k with token labeling (sail-sg/volo README command +
main.py defaults). The other variants and the high-resolution fine-tuning
recipes import `recipe` / `finetune` from here.

  python -m common.train --config=configs/volo/volo_d1_224.py --workdir=DIR
  presets: `:test` (seconds), `:demo` (minutes on a CPU, digits).
"""
from common.config import classification_config, digits_preset, finalize

# README training commands: absolute lr at batch 1024 (the code does not rescale it).
LR = {"d1": 1.6e-3, "d2": 1e-3, "d3": 1e-3, "d4": 1e-3, "d5": 8e-4}
DROP_PATH = {"d1": 0.1, "d2": 0.2, "d3": 0.5, "d4": 0.5, "d5": 0.75}       # README --drop-path
CROP_PCT = {224: 0.96, 384: 1.0, 448: 1.0, 512: 1.0}                        # timm default_cfgs


def recipe(variant: str, arg: str | None = None):
    depth = variant.split("_")[1]
    size = int(variant.split("_")[2])
    c = classification_config()
    c.task = "volo.task:volo_token_label"                              # main.py --token-label (the released models)
    c.model.name = f"volo:{variant}"
    c.model.kwargs.drop_path_rate = DROP_PATH[depth]
    c.data.name = "imagenet2012"
    c.data.image_size = size
    c.data.crop_pct = CROP_PCT[size]
    c.data.eval_interpolation = "bicubic"
    c.data.randaugment = "rand-m9-mstd0.5-inc1"                # main.py --aa default
    c.data.random_erasing = 0.25                               # main.py --reprob, --remode pixel
    c.data.hflip = 0.5
    c.mixup.prob = 0.0                                         # Mixup/CutMix off: MixToken instead
    c.mixup.mixup_alpha, c.mixup.cutmix_alpha = 0.0, 0.0
    c.mixup.label_smoothing = 0.1                              # main.py --smoothing
    c.batch_size = 1024                                        # README: 8 GPUs x 128
    c.optim.name = "adamw"
    c.optim.lr = LR[depth]                                     # README --lr
    c.optim.weight_decay = 0.05                                # main.py --weight-decay
    c.optim.no_decay_names = ("pos_embed", "cls_token")        # + 1-D leaves (timm rule)
    c.num_epochs = 310.0                                       # 300 + cooldown 10
    c.schedule.name = "cosine"
    c.schedule.warmup_epochs = 20.0                            # README --warmup-epochs
    c.schedule.warmup_init_lr = 1e-6                           # main.py --warmup-lr
    c.schedule.min_lr = 1e-5                                   # main.py --min-lr
    c.schedule.cooldown_epochs = 10.0                          # main.py --cooldown-epochs
    c.eval_batch_size = 512
    c.log_every_steps = 100
    c.eval_every_steps = 12510                                 # every 10 epochs at 1024
    c.checkpoint_every_steps = 1000
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def finetune(variant: str, arg: str | None = None):
    """High-resolution fine-tuning (README): start from the 224 checkpoint converted with
    `python -m volo.convert d?_224.pth.tar OUT --img_size SIZE` (bicubic pos_embed resize),
    30 epochs + 10 cooldown, warmup 5, lr 8e-6 -> 4e-6, weight decay 1e-8, batch 512."""
    c = recipe(variant, None)
    c.unlock()
    c.init_from = ""                                           # set to the converted 224 checkpoint
    c.batch_size = 512
    c.optim.lr = 8e-6
    c.optim.weight_decay = 1e-8
    c.num_epochs = 40.0
    c.schedule.warmup_epochs = 5.0
    c.schedule.min_lr = 4e-6
    c.schedule.cooldown_epochs = 10.0
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """A tiny VOLO on digits: `test` at 32x32 (2x2 token grid), `demo` at 64x64 (4x4)."""
    digits_preset(c, arg)
    c.mixup.prob = 0.0
    c.optim.lr = 5e-4              # transformers want a lower lr than the preset's 2e-3 (72% vs 20%)
    k = c.model.kwargs
    k.layers, k.num_heads, k.stem_hidden_dim = (1, 1, 1, 1), (2, 2, 2, 2), 16
    k.embed_dims = (32, 64, 64, 64) if arg == "test" else (64, 128, 128, 128)
    c.data.image_size = k.img_size = 32 if arg == "test" else 64
    k.drop_path_rate = 0.1


def get_config(arg=None):
    return recipe("volo_d1_224", arg)
