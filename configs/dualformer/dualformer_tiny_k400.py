"""DualFormer-T on Kinetics-400 from an ImageNet-1k 2D checkpoint (sail-sg/dualformer
configs/recognition/dualformer/dualformer_tiny_patch244_window877_kinetics400_1k.py).
Every other DualFormer recipe imports `recipe` from here and states its own figures.

  python -m dualformer.inflate 2D_CHECKPOINT.pth INFLATED_DIR --variant dualformer_tiny
  python -m common.train --config=configs/dualformer/dualformer_tiny_k400.py \
      --config.init_from=INFLATED_DIR --workdir=DIR
  presets: `:test` (seconds), `:demo` (minutes on a CPU: synthetic_motion, labels only in the motion;
  measured: 55.5% top-1 / mean class accuracy on the 256 validation videos after 400 steps,
  chance 12.5%; train loss 2.09 -> 1.09, the first ~150 steps sit at chance before motion is picked up).
"""
from common.config import check_preset, classification_config, finalize
from dualformer.model import VARIANTS, WINDOW_KEYS

KINETICS_MEAN, KINETICS_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)  # RGB, 0..255
SMALL_SETS_MEAN, SMALL_SETS_STD = (104.0, 117.0, 128.0), (1.0, 1.0, 1.0)          # Diving/HMDB/UCF configs

# Official recipes (sail-sg/dualformer configs/recognition/dualformer/*.py). micro x accum x 8 GPUs.
RECIPES = {
    # name: (variant, dataset, classes, frames, interval, micro_batch, accum, gpus, lr, wd, epochs,
    #        warmup_epochs, drop_path, test_clips, test_crops)
    "dualformer_tiny_k400": ("dualformer_tiny", "kinetics400", 400, 32, 2, 8, 1, 8, 1e-3, 0.02, 30, 3.0, 0.1, 4, 1),
    "dualformer_small_k400": ("dualformer_small", "kinetics400", 400, 32, 2, 4, 2, 8, 1e-3, 0.02, 30, 2.5, 0.2, 4, 1),
    "dualformer_base_k400": ("dualformer_base", "kinetics400", 400, 32, 2, 4, 2, 8, 1e-3, 0.05, 30, 2.5, 0.3, 4, 1),
    "dualformer_base_k600": ("dualformer_base", "kinetics600", 600, 32, 2, 4, 2, 8, 5e-4, 0.05, 30, 2.5, 0.3, 4, 1),
    "dualformer_small_diving48": ("dualformer_small", "diving48_videos", 48, 32, 4, 8, 1, 8, 1e-3, 0.02, 30, 1.0,
                                  0.2, 4, 3),
    "dualformer_small_hmdb51": ("dualformer_small", "hmdb51_videos", 51, 32, 4, 4, 4, 8, 1e-3, 0.1, 16, 1.0, 0.3, 4, 3),
    "dualformer_small_ucf101": ("dualformer_small", "ucf101_videos", 101, 32, 4, 4, 4, 8, 1e-3, 0.1, 16, 1.0, 0.3, 4, 3),
    "dualformer_tiny_ucf101": ("dualformer_tiny", "ucf101_videos", 101, 16, 4, 4, 4, 8, 1e-3, 0.05, 16, 1.0, 0.2, 4, 3),
}
TRAIN_VIDEOS = {"kinetics400": 240_436, "kinetics600": 392_622}  # 0 = count the prepared split


def recipe(name: str, arg: str | None = None):
    (variant, dataset, classes, frames, interval, micro, accum, gpus, lr, wd, epochs, warmup, drop_path,
     clips, crops) = RECIPES[name]
    c = classification_config()
    c.task = "dualformer.task:video_classification"
    c.model.name = f"dualformer:{variant}"                                # configs/_base_/models/dualformer/*
    c.model.num_classes = classes                               # cls_head.num_classes
    c.model.kwargs.drop_path_rate = drop_path                   # model.backbone.drop_path_rate
    c.model.kwargs.head_dropout = 0.5                           # I3DHead dropout_ratio
    # The attention windows of the variant, here so that a shorter clip can shrink them (the
    # temporal windows must divide the clip's D = frames / 2), e.g. for a quick benchmark.
    for key in WINDOW_KEYS:
        c.model.kwargs[key] = VARIANTS[variant][key]
    d = c.data
    d.name = dataset
    d.builder = "dualformer.video_builders"
    d.eval_split = "validation"
    d.num_train_examples = TRAIN_VIDEOS.get(dataset, 0)
    d.clip_len, d.frame_interval = frames, interval             # SampleFrames(clip_len, frame_interval)
    d.frame_uniform = False                                     # dense sampling (SSv2 would use uniform)
    d.test_clips, d.test_crops = clips, crops                   # test_pipeline num_clips; CenterCrop/ThreeCrop
    d.short_side = 256                                          # Resize(scale=(-1, 256))
    d.test_short_side = 224                                     # test: Resize(scale=(-1, 224))
    d.image_size = 224                                          # RandomResizedCrop -> Resize((224, 224))
    d.rrc_scale = (0.08, 1.0)                                   # mmaction RandomResizedCrop area_range
    d.rrc_ratio = (3.0 / 4.0, 4.0 / 3.0)                        # aspect_ratio_range
    d.hflip = 0.5                                               # Flip(flip_ratio=0.5)
    kinetics = dataset.startswith("kinetics")
    d.mean = KINETICS_MEAN if kinetics else SMALL_SETS_MEAN     # img_norm_cfg (to_bgr=False)
    d.std = KINETICS_STD if kinetics else SMALL_SETS_STD
    d.randaugment, d.random_erasing = "", 0.0                   # none in the video recipes
    c.mixup.prob, c.mixup.mixup_alpha, c.mixup.cutmix_alpha = 0.0, 0.0, 0.0
    c.mixup.label_smoothing = 0.0                               # CrossEntropyLoss, hard labels
    c.batch_size = micro * accum * gpus                         # videos_per_gpu (after accumulation) x 8
    c.optim.grad_accum_steps = accum                            # optimizer_config update_interval
    c.optim.name = "adamw"
    c.optim.lr = lr                                             # optimizer lr (head; backbone x0.1)
    c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-8      # betas=(0.9, 0.999)
    c.optim.weight_decay = wd
    # paramwise_cfg custom_keys {pos_block: decay_mult 0, norm: decay_mult 0, backbone: lr_mult 0.1}:
    # mmcv applies only the first matching key after sorting them by length (descending), so
    # backbone.pos_block.* -> lr x1, wd 0; every other backbone tensor (norms and biases
    # included) -> lr x0.1, wd x1; the head -> lr x1, wd x1. AdamW decays 1-d tensors too.
    c.optim.groups = (dict(pattern="pos_block", wd_mult=0.0), dict(pattern="^backbone/", lr_mult=0.1))
    c.optim.no_decay_names, c.optim.decay_vectors = (), True
    c.num_epochs = float(epochs)                                # total_epochs
    c.schedule.name = "cosine_by_epoch"                         # lr_config CosineAnnealing, by_epoch, min_lr 0
    c.schedule.warmup_epochs = warmup                           # warmup='linear', warmup_by_epoch
    c.schedule.warmup_ratio = 0.1                               # mmcv default warmup_ratio
    c.schedule.min_lr = 0.0
    c.eval_batch_size = 8
    c.log_every_steps = 20                                      # log_config interval
    steps_per_epoch = max(d.num_train_examples // c.batch_size, 1) * accum
    c.eval_every_steps = (2 if not kinetics else 5) * steps_per_epoch  # evaluation interval (epochs)
    c.checkpoint_every_steps = steps_per_epoch                  # checkpoint_config interval=1
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """A small DualFormer on `synthetic_motion` (8 motion classes). `test`: 4x32x32 clips, a few
    steps; `demo`: 8x64x64 clips, a few minutes on 2 CPU cores. Same blocks as the full model:
    LW windows, two-level pyramids in stages 0-1, one level in stage 2, global attention in 3."""
    check_preset(arg)
    c.model.num_classes = 8
    k, d = c.model.kwargs, c.data
    d.name = "synthetic_motion/small" if arg == "test" else "synthetic_motion"
    d.num_train_examples = 0
    d.hflip = 0.0                          # a flip turns "right" into "left" (the SSv2 caveat)
    d.rrc_scale = (0.5, 1.0)
    d.mean, d.std = (110.0, 110.0, 110.0), (60.0, 60.0, 60.0)
    d.test_clips, d.test_crops = 2, 1
    k.drop_path_rate, k.head_dropout = 0.0, 0.0
    c.optim.groups = c.optim.groups[:1]    # trained from scratch: no pretrained backbone to protect (lr x1)
    c.optim.grad_accum_steps = 1
    c.optim.weight_decay = 0.02
    c.schedule.warmup_epochs = 1.0
    if arg == "test":
        d.clip_len, d.frame_interval, d.image_size, d.short_side, d.test_short_side = 4, 2, 32, 32, 32
        k.embed_dims, k.num_heads, k.depths = (8, 16, 16, 32), (1, 1, 2, 2), (2, 2, 2, 2)
        k.local_sizes = ((2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 1, 1))
        k.fine_pysizes = ((2, 2, 2), (2, 2, 2), (2, 1, 1), (2, 1, 1))
        k.coarse_pysizes, k.coarse_first_kernel = ((1, 2, 2),) * 4, (1, 2, 2)
        c.batch_size, c.eval_batch_size, c.num_train_steps = 4, 4, 3
        c.optim.lr = 1e-3
        c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 3
    else:
        d.clip_len, d.frame_interval, d.image_size, d.short_side, d.test_short_side = 8, 2, 64, 64, 64
        k.embed_dims, k.num_heads, k.depths = (16, 32, 64, 128), (1, 2, 4, 8), (2, 2, 2, 2)
        k.local_sizes = ((2, 4, 4), (2, 4, 4), (2, 4, 4), (2, 2, 2))
        k.fine_pysizes = ((2, 4, 4), (2, 4, 4), (2, 4, 4), (4, 2, 2))
        k.coarse_pysizes, k.coarse_first_kernel = ((1, 2, 2),) * 4, (1, 4, 4)
        c.batch_size, c.eval_batch_size, c.num_train_steps = 16, 16, 400
        c.optim.lr = 2e-3
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 50, 400, 400


def get_config(arg=None):
    return recipe("dualformer_tiny_k400", arg)
