"""NCM (nearest class mean, Decoupling): class centroids of a stage-1 backbone's features.

  python -m longtail.ncm --config=configs/longtail/digits_lt.py:ncm --checkpoint=STAGE1 --out=DIR
  python -m common.evaluate --config=configs/longtail/digits_lt.py:ncm --checkpoint=DIR

The features of the training split are computed with the eval transform (classifier-
balancing's `train_plain` loader) in eval mode; the cl2n transform subtracts their mean and
L2-normalises; the centroids are the per-class means of the transformed features
(heads.class_centroids). DIR holds the stage-1 variables plus the `ncm` collection that the
config's NCM head (`longtail.head = "ncm"`) reads. Runs on one process.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common import checkpoint, tasks
from longtail import heads, stage_cli


def train_features(task, variables) -> tuple[np.ndarray, np.ndarray]:
    """Pooled backbone features [N, D] and labels [N] of the training split."""
    variables = {k: v for k, v in variables.items() if k != "ncm"}
    forward = jax.jit(lambda v, x: task.model.apply(v, x, train=False, features=("pooled",))["pooled"])
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
    stage_cli.fit_and_evaluate_main(fit, "Config file with longtail.head = ncm.",
                                    "Stage-1 checkpoint (workdir or variables directory).",
                                    "Directory for the NCM variables.")


if __name__ == "__main__":
    main()
