"""Write a trained stage's outputs for the next stage, as cp-vton's test.py does: the GMM's
warped cloth and mask for every split (train and test, the next stages train on them),
or the LPM's limb image and mask.

  python -m avton.dump --config=configs/avton/viton_gmm.py --checkpoint=runs/gmm --out=runs/warp
  python -m common.train --config=configs/avton/viton_tofm.py --workdir=runs/tofm \
      --config.data.warp_dir=runs/warp --config.data.limb_dir=runs/limbs

GMM: <out>/<split>/warp-cloth/<c_name> (the warped cloth, (x + 1) / 2 * 255 truncated to
uint8 like test.py's save_images) and warp-mask/<c_name> (mask * 255). LPM:
<out>/<split>/limb-image/<im stem>.png and limb-mask/<im stem>.png (sigmoid * 255).
Files are written to a temporary name and renamed, so an interrupted dump leaves whole
files only; a second dump overwrites them.
"""
import os
import sys

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags
from PIL import Image

from avton import data
from common import sharding
from common.runner import Run

FLAGS = flags.FLAGS


def define_flags():
    """Flags of the command line (defined only when run as a program, so that importing
    the module next to common.train does not define --config twice)."""
    config_flags.DEFINE_config_file("config", None, "The stage's config (PATH[:PRESET]).", lock_config=True)
    flags.DEFINE_string("checkpoint", None, "The stage's training workdir or converted checkpoint.")
    flags.DEFINE_string("out", None, "Output directory.")
    flags.DEFINE_list("splits", ["train", "test", "test_paired"], "Splits to write.")
    flags.mark_flag_as_required("config")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """cp-vton save_images: ((x + 1) * 0.5 * 255).clamp(0, 255) cast to uint8."""
    return np.clip((x + 1.0) * 0.5 * 255.0, 0, 255).astype(np.uint8)


def _save(path: str, array: np.ndarray) -> None:
    tmp = path + ".tmp"
    fmt = "JPEG" if path.lower().endswith((".jpg", ".jpeg")) else "PNG"
    Image.fromarray(array).save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    os.replace(tmp, path)


def dump(config, checkpoint: str, out: str, splits=("train", "test", "test_paired"), devices=None) -> dict:
    """Writes the files of the module doc; returns {split: files written}."""
    config.unlock()
    config.init_from = checkpoint
    config.lock()
    run = Run(config, devices)
    state, task = run.init_state(), run.task
    if task.stage not in ("gmm", "lpm"):
        raise ValueError(f"avton.dump writes the gmm or lpm stage's outputs, not {task.stage!r}")
    forward = jax.jit(task.predict_step)
    written = {}
    for split in splits:
        names = data.names(config, split)
        subs = ("warp-cloth", "warp-mask") if task.stage == "gmm" else ("limb-image", "limb-mask")
        for sub in subs:
            os.makedirs(os.path.join(out, split, sub), exist_ok=True)
        seen, n = {}, 0
        for local in task.input_pipeline(split, 0, 1, train=False):
            res = jax.device_get(forward(state, sharding.global_batch(local, run.mesh)))
            for row in np.flatnonzero(np.asarray(local["mask"]) > 0):
                im_name, c_name = names[int(local["record"][row])]
                if task.stage == "gmm":
                    if c_name in seen and seen[c_name] != im_name:
                        print(f"warning: {split}: {c_name} is worn by {seen[c_name]} and {im_name}; "
                              "warp-cloth keeps the last (cp-vton names the files by cloth)", file=sys.stderr)
                    seen[c_name] = im_name
                    _save(os.path.join(out, split, "warp-cloth", c_name), _to_uint8(res["warp_cloth"][row]))
                    _save(os.path.join(out, split, "warp-mask", c_name), _to_uint8(res["warp_mask"][row, ..., 0] * 2 - 1))
                else:
                    stem = os.path.splitext(im_name)[0] + ".png"
                    _save(os.path.join(out, split, "limb-image", stem), _to_uint8(res["limb_image"][row]))
                    _save(os.path.join(out, split, "limb-mask", stem), _to_uint8(res["limb_mask"][row, ..., 0] * 2 - 1))
                n += 1
        written[split] = n
    return written


def main(argv):
    del argv
    if not (FLAGS.checkpoint and FLAGS.out):
        raise app.UsageError("--checkpoint and --out are required")
    for split, n in dump(FLAGS.config, FLAGS.checkpoint, FLAGS.out, FLAGS.splits).items():
        print(f"{split}: {n} files -> {os.path.join(FLAGS.out, split)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
