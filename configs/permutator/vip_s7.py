"""ViP-S/7 on ImageNet-1k (houqb/VisionPermutator: README training command + main.py defaults).

  python -m common.train --config=configs/permutator/vip_s7.py --workdir=DIR
  presets: `:test` (seconds), `:demo` (minutes on a CPU, digits).
The other variants (vip_s14, vip_m7, vip_l7) import `recipe` from here and change only
the variant-specific fields (drop-path rate, eval crop).
"""
from common.config import classification_config, digits_preset, finalize

# Stochastic depth: S/7 0.1 from the README command (= main.py default --drop-path). The
# official repo states no value for M/7 and L/7; 0.2 / 0.3 are BR-IDL/PaddleViT's ViP
# configs (third-party, unverified against the paper). S/14 has no recipe anywhere: 0.1 (as S/7).
DROP_PATH = {"vip_s14": 0.1, "vip_s7": 0.1, "vip_m7": 0.2, "vip_l7": 0.3}
# Eval crop_pct: official models/vip.py default_cfgs ViP_S / ViP_M / ViP_L (S/14 uses ViP_S).
CROP_PCT = {"vip_s14": 0.9, "vip_s7": 0.9, "vip_m7": 0.9, "vip_l7": 0.875}


def recipe(variant: str, arg: str | None = None):
    c = classification_config()
    c.model.name = f"permutator:{variant}"
    c.model.num_classes = 1000
    c.model.kwargs.drop_path_rate = DROP_PATH[variant]        # see DROP_PATH above
    # The README trains with --apex-amp (fp16 autocast); on GPU/TPU run with
    # --config.model.dtype=bfloat16. float32 keeps CPU runs and benchmarks comparable.
    c.model.dtype = "float32"
    c.data.name = "imagenet2012"
    c.data.image_size = 224                                    # README --img-size 224 (fixed: segment_dim)
    c.data.crop_pct = CROP_PCT[variant]                        # default_cfgs crop_pct
    c.data.eval_interpolation = "bicubic"                      # default_cfgs interpolation
    c.data.rrc_scale = (0.08, 1.0)                             # main.py --scale
    c.data.rrc_ratio = (3.0 / 4.0, 4.0 / 3.0)                  # main.py --ratio
    c.data.hflip = 0.5                                         # main.py --hflip
    c.data.randaugment = "rand-m9-mstd0.5-inc1"                # README --aa
    c.data.random_erasing = 0.25                               # README --reprob 0.25 --remode pixel
    c.mixup.mixup_alpha = 0.8                                  # README --mixup
    c.mixup.cutmix_alpha = 1.0                                 # README --cutmix
    c.mixup.prob = 1.0                                         # main.py --mixup-prob
    c.mixup.switch_prob = 0.5                                  # main.py --mixup-switch-prob
    c.mixup.label_smoothing = 0.1                              # README --smoothing
    c.batch_size = 2048                                        # README: 8 GPUs x -b 256
    c.optim.name = "adamw"                                     # README --opt adamw
    c.optim.lr = 2e-3                                          # README --lr (absolute, not batch-scaled)
    c.optim.weight_decay = 0.05                                # README --weight-decay
    c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-8     # timm AdamW defaults (main.py passes none)
    c.optim.no_decay_names = ()                                # ViP has no no_weight_decay(); ndim<=1 only
    c.optim.clip_norm = 0.0                                    # main.py --clip-grad None
    c.optim.ema_decay = 0.0                                    # no EMA ("we don't use ema in vip")
    c.num_epochs = 310.0                                       # README --epochs 300 + main.py cooldown 10
    c.schedule.name = "cosine"                                 # README --sched cosine
    c.schedule.warmup_epochs = 20.0                            # README --warmup-epochs
    c.schedule.warmup_init_lr = 1e-6                           # README --warmup-lr
    c.schedule.min_lr = 1e-5                                   # main.py --min-lr
    c.schedule.cooldown_epochs = 10.0                          # main.py --cooldown-epochs
    c.eval_batch_size = 1024
    c.log_every_steps = 100
    c.eval_every_steps = 6255                                  # every 10 epochs at 2048 (625.5 steps/epoch)
    c.checkpoint_every_steps = 1000
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """`test` (a tiny ViP, seconds) and `demo` (a small one, minutes) on digits at 32x32.

    Patch 4 gives an 8x8 token grid, so segment_dim is 8 before the Downsample and 4 after
    (H * C/segment_dim = C in every stage)."""
    digits_preset(c, arg)
    k = c.model.kwargs
    k.patch_size = 4
    k.transitions = (True, False, False, False)
    k.segment_dim = (8, 4, 4, 4)
    k.mlp_ratios = (3, 3, 3, 3)
    if arg == "test":
        k.layers = (1, 1, 1, 1)
        k.embed_dims = (32, 64, 64, 64)
        k.drop_path_rate = 0.1
    else:
        k.layers = (2, 2, 4, 2)
        k.embed_dims = (64, 128, 128, 128)
        k.drop_path_rate = 0.05


def get_config(arg=None):
    return recipe("vip_s7", arg)
