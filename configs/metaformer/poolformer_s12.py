"""PoolFormer-S12 on ImageNet-1k (paper §4.1, App. A Table 6; sail-sg/poolformer train.py).

  python -m common.train --config=configs/metaformer/poolformer_s12.py --workdir=DIR
  presets: `:test` (seconds), `:demo` (minutes on a CPU, digits).
The other variants (s24, s36, m36, m48) import `recipe` from here and change only the
variant-specific fields (drop-path rate, eval crop).
"""
from common.config import classification_config, digits_preset, finalize

# Per-variant figures: stochastic depth (sail-sg/poolformer README training command, DROP_PATH)
# and eval crop_pct (models/poolformer.py default_cfgs).
DROP_PATH = {"poolformer_s12": 0.1, "poolformer_s24": 0.1, "poolformer_s36": 0.2,
             "poolformer_m36": 0.3, "poolformer_m48": 0.4}
CROP_PCT = {"poolformer_s12": 0.9, "poolformer_s24": 0.9, "poolformer_s36": 0.9,
            "poolformer_m36": 0.95, "poolformer_m48": 0.95}


def recipe(variant: str, arg: str | None = None):
    c = classification_config()
    c.model.name = f"metaformer:{variant}"
    c.model.num_classes = 1000
    c.model.kwargs.drop_path_rate = DROP_PATH[variant]        # README command (train.py --drop-path)
    c.data.name = "imagenet2012"
    c.data.image_size = 224
    c.data.crop_pct = CROP_PCT[variant]                        # official default_cfgs crop_pct
    c.data.eval_interpolation = "bicubic"                      # validate.py (timm bicubic)
    c.data.randaugment = "rand-m9-mstd0.5-inc1"                # train.py --aa
    c.data.random_erasing = 0.25                               # train.py --reprob, mode pixel
    c.mixup.mixup_alpha = 0.8                                  # train.py --mixup
    c.mixup.cutmix_alpha = 1.0                                 # train.py --cutmix
    c.mixup.switch_prob = 0.5                                  # timm default --mixup-switch-prob
    c.mixup.label_smoothing = 0.1                              # train.py --smoothing
    c.batch_size = 4096                                        # paper §4.1 (TPU); README uses 1024
    c.optim.name = "adamw"                                     # paper App. A Table 6
    c.optim.lr = 1e-3 * c.batch_size / 1024                    # 4e-3 at 4096 (lr = 1e-3 * B/1024)
    c.optim.weight_decay = 0.05                                # Table 6
    c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-8     # timm AdamW defaults
    c.optim.no_decay_names = ("pos_embed",)                    # + every ndim<=1 leaf (timm rule)
    c.num_epochs = 310.0                                       # 300 + train.py cooldown_epochs=10
    c.schedule.name = "cosine"                                 # timm CosineLRScheduler
    c.schedule.warmup_epochs = 5.0                             # train.py --warmup-epochs
    c.schedule.warmup_init_lr = 1e-6                           # train.py --warmup-lr
    c.schedule.min_lr = 1e-5                                   # train.py --min-lr
    c.schedule.cooldown_epochs = 10.0                          # train.py --cooldown-epochs
    c.eval_batch_size = 1024
    c.log_every_steps = 100
    c.eval_every_steps = 3130                                  # ~ every 10 epochs at 4096
    c.checkpoint_every_steps = 1000
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """`test` (a tiny PoolFormer, seconds) and `demo` (a small one, minutes) on digits."""
    digits_preset(c, arg)
    if arg == "test":
        c.model.kwargs.depths = (1, 1, 1, 1)
        c.model.kwargs.dims = (16, 32, 64, 128)
        c.model.kwargs.drop_path_rate = 0.1
    else:
        c.model.kwargs.depths = (2, 2, 4, 2)
        c.model.kwargs.dims = (32, 64, 128, 256)
        c.model.kwargs.drop_path_rate = 0.05


def get_config(arg=None):
    return recipe("poolformer_s12", arg)
