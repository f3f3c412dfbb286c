"""CMT on LPD-5-cleansed (wzk1015/video-bgm-generation src/train.py and README).

  python -m common.train --config=configs/cmt/cmt.py --workdir=runs/cmt \
      --config.data.data_dir=DIR        # lpd5_cp prepared from manual_dir (cmt/data.py)
  python -m common.train --config=configs/cmt/cmt.py:demo --workdir=/tmp/cmt_demo
  python -m cmt.convert loss_8_params.pt converted/cmt                       # the release
  python -m cmt.generate --config=configs/cmt/cmt.py --checkpoint=converted/cmt \
      --video clip.mp4 --out song.mid                                        # controlled generation

`:test` / `:demo` train the tiny model (272,500 params) on the generated `cmt_standin`
(music21 chorales + procedural songs; no download).
"""
import ml_collections

from common.config import base_config, check_preset, finalize


def get_config(arg=None):
    arg = check_preset(arg)
    c = base_config()
    c.task = "cmt.task:music"
    c.model.name = "cmt:cmt"
    c.model.num_classes = 0                      # unused (no classifier head)
    c.model.kwargs = ml_collections.ConfigDict({"dropout": 0.1})   # model.py: dropout 0.1

    d = c.data
    d.name, d.builder = "lpd5_cp", "cmt.data"
    d.train_split, d.eval_split = "train", "validation"
    d.seq_len = 9999                             # train.py: x = decoder[:, :-1] of 10,000-row songs
    d.shuffle = False                            # train.py: fixed batch order, remainder dropped
    d.crop = "start"                             # whole songs from their first row (train.py)

    c.batch_size, c.eval_batch_size = 8, 8       # README: -b 8 on 8 GPUs (argparse default 6)
    c.num_epochs = 200.0                         # argparse -e default (paper: 100 epochs)
    c.optim.name, c.optim.lr = "adamw", 1e-4     # torch.optim.Adam(lr=1e-4): no weight decay
    c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-8
    c.optim.weight_decay = 0.0
    c.optim.clip_norm = 3.0                      # clip_grad_norm_(max_grad_norm=3)
    c.schedule.name, c.schedule.warmup_epochs = "constant", 0.0   # DECAY_EPOCH empty: constant lr

    c.generate = ml_collections.ConfigDict()
    c.generate.control_degree = 0.7              # gen_midi_conditional.py: C = 0.7
    c.generate.max_tokens = 10000
    c.generate.seed = 0

    c.log_every_steps = 50
    c.eval_every_steps = c.checkpoint_every_steps = 1000
    if arg:
        apply_preset(c, arg)
    return finalize(c)


def apply_preset(c, arg: str):
    """The tiny model on the stand-in, dropout off. `test`: 4 steps of 8 songs x 128
    positions on the small stand-in (seconds), lr 1e-3; `demo`: 2,400 steps of 4 windows of
    512 rows, lr 3e-3 (see cmt/README.md for its figures)."""
    c.model.name = "cmt:tiny"
    c.model.kwargs.dropout = 0.0
    d = c.data
    d.name = "cmt_standin/small" if arg == "test" else "cmt_standin"
    d.shuffle = True
    d.num_threads = 1
    c.optim.lr = 1e-3
    c.keep_checkpoints = 2
    if arg == "test":
        d.seq_len = 128
        c.batch_size, c.eval_batch_size, c.num_train_steps = 8, 8, 4
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
        c.generate.max_tokens = 300
    else:
        # 16-bar songs in windows of 512 rows from a random bar: every tick is trained and the
        # windows are as long as a 16-bar ramp's generation (cmt/README.md, "the demo")
        d.seq_len, d.crop = 512, "bar"
        c.batch_size, c.eval_batch_size, c.num_train_steps = 4, 8, 2400
        c.optim.lr = 3e-3
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 50, 600, 600
        c.generate.max_tokens = 4000
