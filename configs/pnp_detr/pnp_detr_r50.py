"""PnP-DETR-R50 on COCO 2017 (twangnh/pnp-detr main.py defaults; DETR's recipe otherwise).

  python -m common.train --config=configs/pnp_detr/pnp_detr_r50.py --workdir=runs/pnp_r50
  python -m common.train --config=configs/pnp_detr/pnp_detr_r50.py:demo --workdir=/tmp/pnp_demo
  python -m common.evaluate --config=configs/pnp_detr/pnp_detr_r50.py --checkpoint=runs/pnp_r50   # AP per alpha
  # from the official DETR weights (every weight but the sampler):
  python -m pnp_detr.convert detr-r50-e632da11.pth converted/detr_r50 --variant pnp_detr_r50
  python -m common.train --config=configs/pnp_detr/pnp_detr_r50.py --workdir=runs/ft \
      --config.init_from=converted/detr_r50

Data: tfds `coco/2017` (`tfds build coco/2017 --file_format=array_record`), or any COCO-format
folder with `--config.data.name=coco_format --config.data.builder=pnp_detr.data` (prepared once
with its folder as manual_dir). `:test` / `:demo` train the tiny model on the generated
`synthetic_shapes` stand-in (no download).
"""
import ml_collections

from common.config import base_config, check_preset, finalize

# DETR datasets/coco.py make_coco_transforms: train scales 480..800 step 32, max 1333;
# the crop branch resizes to 400/500/600 and crops [384, 600]; eval at 800 / 1333.
TRAIN_SCALES = tuple(range(480, 801, 32))


def recipe(variant: str, arg=None):
    c = base_config()
    c.task = "pnp_detr.task:detection"
    c.model.name = f"pnp_detr:{variant}"
    c.model.num_classes = 91                     # raw COCO ids 1..90; the head has 92 outputs (+ no-object)
    sampler = variant.startswith("pnp_")

    c.pnp = ml_collections.ConfigDict()
    c.pnp.alpha_min, c.pnp.alpha_max = 1.0 / 3.0, 0.8   # main.py: random.uniform(1/3, 0.8) per iteration
    c.pnp.eval_alphas = (0.33, 0.5, 0.65, 0.8) if sampler else ()   # engine.py evaluates these each epoch

    c.loss = ml_collections.ConfigDict()
    c.loss.ce, c.loss.bbox, c.loss.giou = 1.0, 5.0, 2.0         # --cls/bbox/giou_loss_coef (also the matcher's)
    c.loss.eos_coef = 0.1                                      # no-object class weight
    c.loss.sample_reg = 1e-4                                   # sample_reg_loss weight (models/detr.py)
    c.loss.matcher = "scipy"                                   # scipy | jax (pure-JAX Hungarian, for pods)

    d = c.data
    d.name, d.builder = "coco/2017", ""
    d.train_split, d.eval_split = "train", "validation"
    d.scales, d.max_size = TRAIN_SCALES, 1333
    d.crop_scales, d.crop_size = (400, 500, 600), (384, 600)
    d.eval_size = 800
    d.canvases = ((800, 1333), (1333, 800), (1333, 1333))     # landscape, portrait, and crops that need both
    d.max_boxes = 100
    d.num_train_examples = 118_287

    c.batch_size, c.eval_batch_size = 16, 16                   # 2 per GPU x 8 GPUs (README)
    c.num_epochs = 300.0                                       # main.py --epochs 300, --lr_drop 200
    c.optim.name, c.optim.lr = "adamw", 1e-4
    c.optim.weight_decay = 1e-4                                # on every trainable tensor
    c.optim.no_decay_names, c.optim.decay_vectors = (), True
    c.optim.clip_norm = 0.1                                    # --clip_max_norm
    # backbone lr 1e-5 (--lr_backbone); stem + layer1 frozen (models/backbone.py requires_grad_)
    c.optim.groups = (dict(pattern="^backbone/(stem|layer1_)", frozen=True),
                      dict(pattern="^backbone/", lr_mult=0.1))
    c.schedule.name, c.schedule.warmup_epochs = "step", 0.0   # StepLR(lr_drop) stepped per epoch
    c.schedule.step_epochs, c.schedule.step_factor = (200.0,), 0.1
    steps_per_epoch = d.num_train_examples // c.batch_size
    c.log_every_steps = 100
    c.eval_every_steps = c.checkpoint_every_steps = steps_per_epoch
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """The tiny model on the synthetic_shapes stand-in: `test` (seconds; 96-192 px images
    resized to 96-128 px on one 128 x 128 canvas) and `demo` (2,000 steps of 16 on the easy
    stand-in, 64-96 px images on one 96 x 96 canvas; AP 20.7 / 23.7 / 24.4 / 24.5, AP50 61-68
    at alpha = 0.33 / 0.5 / 0.65 / 0.8, measured: pnp_detr/README.md)."""
    check_preset(arg)
    tiny = "tiny" if c.pnp.eval_alphas else "tiny_detr"
    c.model.name = f"pnp_detr:{tiny}"
    c.model.num_classes = 19                   # the stand-in's category ids are 1, 3 and 18
    k = c.model.kwargs
    k.hidden_dim, k.ffn_dim, k.dropout = 64, 128, 0.0   # the tiny variant, a little wider; no dropout
    k.backbone_norm, k.frozen_stages = "frozen", 1      # `test` keeps DETR's backbone setting
    k.backbone_planes, k.backbone_base_width = (16, 32, 64, 128), 64   # planes / 4: CPU time
    d = c.data
    d.builder = "pnp_detr.data"
    d.name = "synthetic_shapes/small" if arg == "test" else "synthetic_shapes"
    d.num_train_examples = 0
    d.scales, d.max_size = (96, 112, 128), 128
    d.crop_scales, d.crop_size = (96, 112), (64, 96)
    d.eval_size = 128
    d.canvases = ((128, 128),)
    d.max_boxes = 8
    d.num_threads = 2
    c.optim.lr = 1e-3
    c.schedule.name = "constant"
    c.keep_checkpoints = 2
    if arg == "test":
        c.batch_size, c.eval_batch_size, c.num_train_steps = 8, 8, 4
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
    else:
        # from scratch, a frozen random stem and FrozenBatchNorm (DETR's setting for an
        # ImageNet-pretrained backbone) cannot learn: every stage trains, with BatchNorm
        k.backbone_norm, k.frozen_stages = "batch", 0
        c.optim.groups = ()
        d.name = "synthetic_shapes/easy"
        d.scales, d.max_size = (64, 72, 80, 88, 96), 96
        d.crop_scales, d.crop_size = (64, 80), (48, 80)
        d.eval_size = 96
        d.canvases = ((96, 96),)
        d.max_boxes = 4
        c.schedule.name, c.schedule.warmup_epochs = "cosine", 1.0
        c.schedule.warmup_init_lr, c.schedule.min_lr = 1e-5, 1e-5
        c.batch_size, c.eval_batch_size, c.num_train_steps = 16, 32, 2000
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 50, 500, 500

def get_config(arg=None):
    return recipe("pnp_detr_r50", arg)
