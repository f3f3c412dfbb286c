"""MvP on CMU Panoptic, 5 HD views (sail-sg/mvp configs/panoptic/best_model_config.yaml,
lib/core/config.py defaults, run/train_3d.py).

  python -m common.train --config=configs/mvp/panoptic.py --workdir=runs/mvp_panoptic \
      --config.init_from=model=converted/pose_resnet50_panoptic      # python -m mvp.convert ... --backbone
  python -m common.evaluate --config=configs/mvp/panoptic.py --checkpoint=converted/mvp_5view
  python -m common.train --config=configs/mvp/panoptic.py:demo --workdir=/tmp/mvp_demo   # CPU, stand-in

Data: `mvp_panoptic/cam5` from the panoptic-toolbox folder as manual_dir (mvp/data.py;
prepare once with common.data.sources.prepare). `:test` / `:demo` train the `tiny` model on the
generated `mvp_synthetic` stand-in (same Panoptic-format loader; nothing downloaded).
"""
import ml_collections

from common.config import base_config, check_preset, finalize

# lr x 0.1 for parameters whose names contain these (train_3d.py `lr_linear_proj_names`)
LR_X01 = r".*(reference_points|sampling_offsets)/"
# the backbone stays frozen and in eval mode (function.py: model.module.backbone.eval(); its
# params have no grad); view_embed / level_embed are parameters the forward never uses (grad
# None: torch's optimizers skip them, so does this one)
FROZEN = (dict(pattern="^backbone/", frozen=True), dict(pattern="^(view_embed|level_embed)$", frozen=True),
          dict(pattern=LR_X01, lr_mult=0.1))


def recipe(variant: str = "panoptic", arg=None):
    arg = check_preset(arg)
    c = base_config()
    c.task = "mvp.task:pose3d"
    c.model.name = f"mvp:{variant}"
    c.model.kwargs = ml_collections.ConfigDict({"freeze_backbone": True, "dropout": 0.1})

    d = c.data
    d.name, d.builder = "mvp_panoptic/cam5", "mvp.data"
    d.train_split, d.eval_split = "train", "validation"
    d.image_size = (960, 512)                   # NETWORK.IMAGE_SIZE (W, H)
    d.max_people = 10                           # MULTI_PERSON.MAX_PEOPLE_NUM
    d.num_train_examples = 25_640               # README: 3205 iterations x 8 GPUs per epoch

    c.loss = ml_collections.ConfigDict()
    c.loss.ce, c.loss.pose = 2.0, 5.0           # loss_weight_loss_ce, loss_pose_perjoint (cost weights 2 / 5)
    c.loss.matcher = "scipy"                    # scipy | jax
    c.eval = ml_collections.ConfigDict()
    c.eval.kind, c.eval.conf_thr = "panoptic", 0.1   # AP_K / MPJPE; inference_conf_thr [0.1]
    c.eval.actors = 0                           # PCP: the actor slots of actorsGT.mat (Shelf 4, Campus 3)

    c.batch_size, c.eval_batch_size = 8, 8      # 1 frame per GPU x 8 GPUs (DDP)
    c.num_epochs = 200.0                        # TRAIN.END_EPOCH
    c.optim.name, c.optim.lr = "adamw", 1e-4    # DECODER.optimizer adam: Adam, no weight decay
    c.optim.weight_decay = 0.0
    c.optim.no_decay_names, c.optim.decay_vectors = (), True
    c.optim.clip_norm = 0.1                     # TRAIN.clip_max_norm
    c.optim.groups = FROZEN
    c.schedule.name, c.schedule.warmup_epochs = "step", 0.0   # MultiStepLR(lr_decay_epoch [40], 0.1), per epoch
    c.schedule.step_epochs, c.schedule.step_factor = (40.0,), 0.1
    steps_per_epoch = d.num_train_examples // c.batch_size
    c.log_every_steps = 100
    c.eval_every_steps = c.checkpoint_every_steps = steps_per_epoch    # evaluated every epoch
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """The `tiny` model (PoseResNet-18, d 32, 4 persons, 3 views, 192 x 96; 1 decoder layer for
    :test, 3 for :demo) on the synthetic stand-in. From scratch a frozen random backbone cannot learn: it trains, with
    BatchNorm; no dropout."""
    c.model.name = "mvp:tiny"
    c.model.kwargs = ml_collections.ConfigDict({"freeze_backbone": False, "dropout": 0.0, "layers": 2,
                                                "backbone_blocks": None})
    d = c.data
    d.name = "mvp_synthetic/small" if arg == "test" else "mvp_synthetic"
    d.image_size = (192, 96)
    d.num_train_examples = 0
    d.num_threads = 2
    c.eval.kind, c.eval.conf_thr = "panoptic", 0.1
    c.optim.groups = (dict(pattern="^(view_embed|level_embed)$", frozen=True), dict(pattern=LR_X01, lr_mult=0.1))
    c.optim.lr = 1e-3
    c.schedule.name = "constant"
    c.keep_checkpoints = 2
    if arg == "test":
        # one decoder layer and one block per ResNet stage: XLA's CPU compile of a decoder
        # layer's backward is ~8 s of CPU, and the tests compile the step several times
        c.model.kwargs.layers, c.model.kwargs.backbone_blocks = 1, (1, 1, 1, 1)
        c.batch_size, c.eval_batch_size, c.num_train_steps = 2, 4, 4
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
    else:
        # the demo: the easy stand-in (1-2 persons within 0.8 m of the centre, cameras at
        # 2.8-3.2 m, black background, radius-5 joints; 320 train / 48 validation frames) in a
        # room of 4 x 4 x 2 m around (0, 0, 900), so that the initial references (spread over
        # the whole cube by the official Xavier init) start near the people; 3 decoder layers,
        # one block per ResNet-18 stage; Adam 3e-3 with warmup and a cosine decay over 1,500
        # steps of 4 frames (the limbs are learnt after step 500: MPJPE 244 -> 151 -> 142 mm at
        # steps 500 / 1000 / 1500), lr x 0.1 on sampling_offsets only (reference_points learns
        # at the full rate); clip 0.1 as the recipe
        d.name = "mvp_synthetic/easy"
        k = c.model.kwargs
        k.layers, k.backbone_blocks = 3, (1, 1, 1, 1)
        k.space_center, k.space_size = (0.0, 0.0, 900.0), (4000.0, 4000.0, 2000.0)
        c.optim.groups = (dict(pattern="^(view_embed|level_embed)$", frozen=True),
                          dict(pattern=r".*sampling_offsets/", lr_mult=0.1))
        c.optim.lr = 3e-3
        c.batch_size, c.eval_batch_size, c.num_train_steps = 4, 8, 1500
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 50, 500, 500
        c.schedule.name, c.schedule.warmup_epochs, c.schedule.warmup_init_lr = "cosine", 0.25, 3e-5
        c.schedule.min_lr = 3e-5


def actor_preset(c, name: str, views: int, space_center, space_size, actors: int):
    """`:test` of Shelf / Campus: the tiny model with the dataset's views, its 14 output joints
    and its space, on the stand-in written in that layout; ce weight 0 and PCP as the recipe."""
    from mvp.model import TO_14_JOINTS
    k = c.model.kwargs
    k.views, k.output_joints = views, TO_14_JOINTS
    k.space_center, k.space_size = space_center, space_size
    c.data.name = f"mvp_actors_synthetic/{name}"
    c.loss.ce = 0.0
    c.eval.kind, c.eval.conf_thr, c.eval.actors = "pcp", 0.0, actors


def get_config(arg=None):
    return recipe("panoptic", arg)
