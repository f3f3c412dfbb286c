"""PSGAN on MT at 256² (wtjiang98/PSGAN configs/base.yaml + psgan/config.py + solver.py).

  python -m common.train --config=configs/psgan/psgan_mt256.py --workdir=runs/psgan \\
      --config.data.data_dir=~/tensorflow_datasets          # MT prepared from its folder (below)
  python -m common.train --config=configs/psgan/psgan_mt256.py:demo --workdir=/tmp/psgan_demo
  python -m common.evaluate --config=configs/psgan/psgan_mt256.py:demo --checkpoint=/tmp/psgan_demo
  python -m psgan.transfer --config=configs/psgan/psgan_mt256.py --checkpoint=converted/psgan SRC REF

Data: the MT release folder (images/, segs/, landmarks/, makeup.txt, non-makeup.txt) prepared
once as tfds `mt_folder` with that folder as manual_dir:
  python -c "from common.data.sources import prepare; prepare('mt_folder', '', manual_dir='data', builder='psgan.data')"
Weights: `python -m psgan.convert G.pth converted/psgan` (generator; --config.init_from=
generator=converted/psgan), ImageNet VGG-16 through `python -m common.convert torchvision
vgg16-397923af.pth converted/vgg16 --arch vgg16` (init_from=vgg=converted/vgg16; without it the
perceptual net is random). `:test` / `:demo` train the tiny model on the generated synthetic_mt.
"""
import ml_collections

from common.config import base_config, check_preset, finalize


def recipe(variant: str = "psgan", mode: str = "psgan", image_size: int = 256, arg=None):
    c = base_config()
    c.task = "psgan.task:makeup"
    c.model.name = f"psgan:{variant}"
    c.model.kwargs = ml_collections.ConfigDict({"amm_softmax": "code"})   # code | masked (the papers)

    c.disc = ml_collections.ConfigDict({"conv_dim": 64, "repeat_num": 3})    # D_CONV_DIM, D_REPEAT_NUM, SN
    c.vgg = ml_collections.ConfigDict({"arch": "vgg16"})

    l = c.loss = ml_collections.ConfigDict()
    l.mode = mode                      # psgan (the released loop) | psganpp (IDNet removal, detail loss)
    l.gan = "lsgan"                    # GANLoss(use_lsgan=True); the PSGAN++ draft writes the log-loss: "bce"
    l.lambda_a = l.lambda_b = 10.0     # LAMBDA_A / LAMBDA_B (cycle and the scale of vgg / identity)
    l.lambda_idt = 0.5                 # LAMBDA_IDT
    l.lambda_vgg = 5e-3                # LAMBDA_VGG
    l.vgg_layer = "pool5"              # the code: the whole features stack; the papers: relu4_1
    l.his_lip, l.his_skin, l.his_eye = 1.0, 0.1, 1.0   # LAMBDA_HIS x (1, LAMBDA_SKIN, LAMBDA_EYE)
    l.hist_indexing = "intended"       # intended | released (the released loop's 4-D-mask indexing)
    l.lambda_detail = 0.0              # PSGAN++ makeup detail loss (lambda_dense 5)
    l.detail_reduction = "mean"        # mean over points x channels | sum

    d = c.data
    d.name, d.builder = "mt_folder", "psgan.data"
    d.train_split, d.eval_split = "train", "test"
    d.image_size = image_size
    d.eye_margin = 0                   # 0: 16 px at 256², scaled with the image size
    d.num_train_examples = 2719        # max(#makeup 2719, #non-makeup 1115): DataReader.__len__

    c.batch_size, c.eval_batch_size = 1, 1                   # BATCH_SIZE 1
    c.num_epochs = 50.0                                      # NUM_EPOCHS (NUM_EPOCHS_DECAY 0)
    o = c.optim
    o.name, o.lr, o.b1, o.b2, o.eps, o.weight_decay = "adamw", 2e-4, 0.5, 0.999, 1e-8, 0.0   # torch Adam
    o.no_decay_names = ()
    c.d_optim = o.copy_and_resolve_references()              # D_LR 2e-4, the same betas
    c.schedule.name, c.schedule.warmup_epochs = "constant", 0.0
    c.log_every_steps = 8                                    # LOG_STEP
    c.checkpoint_every_steps = 1024                          # SNAPSHOT_STEP
    c.eval_every_steps = 2719 * 5
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """The tiny generator (width 8, with IDNet) at 64² on the generated synthetic_mt faces:
    `test` (seconds; the 'small' set) and `demo` (minutes on 2 CPU cores: the 'closeup' set,
    whose faces fill the frame and whose lips are 1.5x, so they cover ~7 of the 16 x 16
    bottleneck pixels the AMM moves matrices between instead of ~2)."""
    check_preset(arg)
    c.model.name = "psgan:tiny"
    c.disc.conv_dim = 16
    c.loss.vgg_layer = "relu1_1"                         # a random VGG's first conv: CPU-sized
    d = c.data
    d.name = "synthetic_mt/small" if arg == "test" else "synthetic_mt/closeup"
    d.image_size = 64
    d.num_train_examples = 0
    d.num_threads = 2
    c.keep_checkpoints = 2
    c.schedule.name = "constant"
    if arg == "test":
        c.batch_size, c.eval_batch_size, c.num_train_steps = 8, 8, 4
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
    else:
        c.optim.lr = c.d_optim.lr = 1e-3                  # 5x the recipe's 2e-4: a few hundred steps
        c.loss.his_lip = 5.0                              # 5x the recipe's lip histogram weight (a demo choice)
        c.batch_size, c.eval_batch_size, c.num_train_steps = 4, 16, 400
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 25, 200, 100


def get_config(arg=None):
    return recipe("psgan", "psgan", 256, arg)
