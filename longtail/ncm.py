"""NCM (nearest class mean, Decoupling): class centroids of a stage-1 backbone's features.

  python -m longtail.ncm --config=configs/longtail/digits_lt.py:ncm --checkpoint=STAGE1 --out=DIR
  python -m common.evaluate --config=configs/longtail/digits_lt.py:ncm --checkpoint=DIR

The features of the training split are computed with the eval transform (classifier-
balancing's `train_plain` loader) in eval mode; the cl2n transform subtracts their mean and
L2-normalises; the centroids are the per-class means of the transformed features
(heads.class_centroids). DIR holds the stage-1 variables plus the `ncm` collection that the
config's NCM head (`longtail.head = "ncm"`) reads. Runs on one process.
"""
import json
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from common import checkpoint, models, tasks
from common.classification import compute_dtype
from longtail import heads


def train_features(task, variables) -> tuple[np.ndarray, np.ndarray]:
    """Pooled backbone features [N, D] and labels [N] of the training split."""
    c = task.config.model
    backbone = models.create_model(c.name, num_classes=0, dtype=compute_dtype(c.dtype), **c.kwargs.to_dict())
    variables = {k: v for k, v in variables.items() if k != "ncm"}
    forward = jax.jit(lambda v, x: backbone.apply(v, x, train=False))
    feats, labels = [], []
    for batch in task.input_pipeline(task.config.data.train_split, 0, 1, train=False):
        keep = np.asarray(batch["mask"]) > 0
        feats.append(np.asarray(forward(variables, jnp.asarray(batch["image"])))[keep])
        labels.append(np.asarray(batch["label"])[keep])
    return np.concatenate(feats), np.concatenate(labels)


def fit(config, stage1: str, out_dir: str) -> str:
    """Writes the stage-1 variables of `stage1` with the NCM centroids added to `out_dir`."""
    task = tasks.get_task(config.task)(config)
    variables = dict(checkpoint.load_any(stage1))
    feats, labels = train_features(task, variables)
    mean = feats.mean(0)
    centroids = np.asarray(heads.class_centroids(feats, labels, task.num_classes, mean))
    # the NCM head's place in the model (e.g. {"linear": {"centroids", "mean"}})
    shapes = jax.eval_shape(task.init_variables, jax.random.PRNGKey(0))["ncm"]
    ncm = jax.tree_util.tree_map_with_path(
        lambda p, s: centroids if str(getattr(p[-1], "key", "")) == "centroids" else mean, nn.meta.unbox(shapes))
    return checkpoint.save_variables(out_dir, {**variables, "ncm": ncm})


def main():
    """The command line (flags defined here so importing this module defines none)."""
    config = config_flags.DEFINE_config_file("config", None, "Config file with longtail.head = ncm.", lock_config=True)
    ckpt = flags.DEFINE_string("checkpoint", None, "Stage-1 checkpoint (workdir or variables directory).")
    out = flags.DEFINE_string("out", None, "Directory for the NCM variables.")
    flags.mark_flags_as_required(["config", "checkpoint", "out"])

    def run(argv):
        del argv
        logging.basicConfig(level=logging.WARNING)
        from common.runner import evaluate_checkpoint
        path = fit(config.value, ckpt.value, out.value)
        print(json.dumps(evaluate_checkpoint(config.value, path, progress=False)))

    app.run(run)


if __name__ == "__main__":
    main()
