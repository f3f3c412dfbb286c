"""Classify one's own images (or video files, for a video task) with a trained or converted
checkpoint, and draw what the model says.

  python -m common.predict --config=configs/demo.py --checkpoint=/tmp/demo digit.png my_digits/
  python -m common.predict --config=CONFIG.py[:PRESET] --checkpoint=DIR INPUT... --out DIR --top_k 5

INPUT is a file or a folder (every file below it with a suffix the task reads,
`task.input_suffixes`, in sorted order). Each input goes through the task's own eval
transform (`task.predict_element`: resize, center crop, normalisation; for video the
config's frame sampling and test views) and, in batches, through the task's jitted
`predict_probs` (the logits its eval step scores; for video the views' softmax averaged).
The top-k classes are printed with their probabilities and the dataset's label names (the
`label` feature of the config's tfds builder; `--labels FILE`, one name per line, overrides
them; else class indices). `--out DIR` writes DIR/NAME.json and DIR/NAME.png for each input:
the image (for video a strip of the sampled frames) beside a bar chart of the top classes,
each tagged with its group where the task has `class_groups()`.

An input that cannot be read (not an image, a video too short for a clip, ...) is reported
with its path and skipped; the others are still predicted, and the exit code is 1. A
checkpoint that does not fit the config (or --labels with a name count that is not the
number of classes) stops with exit code 2.
"""
import concurrent.futures
import dataclasses
import json
import logging
import os
import sys
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from common import cli, pictures, sharding
from common.data import sources
from common.classification import PredictElement
from common.runner import checkpoint_run

log = logging.getLogger(__name__)


class CheckpointMismatch(Exception):
    """The checkpoint cannot fill the model of the config."""


class LabelsMismatch(ValueError):
    """The label names given are not one per class."""


@dataclasses.dataclass
class Prediction:
    """The outcome for one input: class probabilities and the element they were computed
    from, or the error that kept the input from being read."""
    path: str
    probs: np.ndarray | None = None
    element: PredictElement | None = None
    error: str | None = None

    def top(self, k: int) -> list[tuple[int, float]]:
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(int(c), float(self.probs[c])) for c in order]


def label_names(data, num_classes: int) -> list[str] | None:
    """The names of the `label` feature of the config's tfds dataset, when its builder can
    be built here and has one name per class."""
    try:
        info = sources.tfds_builder(data.name, data.data_dir, data.builder).info
        names = [str(n) for n in info.features["label"].names]
    except Exception as e:  # noqa: BLE001 - no builder or no label feature here: class indices
        log.info("no label names for %s (%s: %s); printing class indices", data.name, type(e).__name__, e)
        return None
    return names if len(names) == num_classes else None


def read_labels(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def expand_inputs(inputs: Sequence[str], suffixes: Sequence[str]) -> tuple[list[str], list[Prediction]]:
    """(files to predict, failures for inputs that name nothing to predict). A folder gives
    every file below it whose suffix is one of `suffixes`; a file is taken as it is."""
    files, missing = [], []
    suffixes = tuple(s.lower() for s in suffixes)
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                           for f in names if f.lower().endswith(suffixes))
            if not found:
                missing.append(Prediction(path, error=f"no {' / '.join(suffixes)} files in this folder"))
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            missing.append(Prediction(path, error="no such file or folder"))
    return files, missing


class Predictor:
    """A checkpoint in the config's task, scoring files in batches with the task's jitted
    `predict_probs`."""

    def __init__(self, config, checkpoint: str, labels: Sequence[str] | None = None):
        if labels is not None and len(labels) != int(config.model.num_classes):
            raise LabelsMismatch(f"{len(labels)} label names for a model of {config.model.num_classes} classes")
        config = config.copy_and_resolve_references()
        if int(config.data.num_train_examples) <= 0:
            # A run plans its optimizer by the training-set size; predicting never steps it,
            # so it needs no training split at hand.
            config.data.num_train_examples = int(config.batch_size)
        self.run = checkpoint_run(config, checkpoint)
        self.task = self.run.task
        self.config = config
        self.num_classes = int(config.model.num_classes)
        try:
            self.state = self.run.load_init(self._zero_state(), checkpoint)
        except Exception as e:  # noqa: BLE001 - whatever the loader found, it names the leaf
            raise CheckpointMismatch(
                f"checkpoint {checkpoint} does not fit the config (model {config.model.name}, "
                f"{self.num_classes} classes): {type(e).__name__}: {e}") from e
        self.names = list(labels or label_names(config.data, self.num_classes)
                          or [str(i) for i in range(self.num_classes)])
        self.groups = self.task.class_groups()
        mesh = self.run.mesh
        self.shards = int(np.prod([mesh.shape[a] for a in self.run.batch_sharding.spec[0]]))
        self._probs = jax.jit(self.task.predict_probs,
                              in_shardings=(self.run.state_sharding, self.run.batch_sharding),
                              out_shardings=self.run.replicated)

    def _zero_state(self):
        """The task's state filled with zeros in its shardings, for the checkpoint to replace
        every weight of (what Run.init_state does, without compiling the random init; the
        optimizer state stays zero and unused)."""
        abstract = self.run.abstract_state
        zeros = lambda: jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), abstract)  # noqa: E731
        return jax.jit(zeros, out_shardings=self.run.state_sharding)()

    def batch_size(self, num_inputs: int, requested: int = 0) -> int:
        """Inputs per call: `requested` (default config.eval_batch_size), at most the number
        of inputs, rounded up to a multiple of the devices the batch is split over."""
        n = min(requested or int(self.config.eval_batch_size), max(num_inputs, 1))
        return -(-n // self.shards) * self.shards

    def _read(self, path: str) -> Prediction:
        try:
            return Prediction(path, element=self.task.predict_element(path))
        except Exception as e:  # noqa: BLE001 - an unreadable input is reported and skipped
            return Prediction(path, error=f"{type(e).__name__}: {e}")

    def predict(self, paths: Sequence[str], batch_size: int = 0) -> Iterator[Prediction]:
        """One Prediction per path, in order; inputs are read in threads, a batch at a time."""
        n = self.batch_size(len(paths), batch_size)
        threads = max(1, int(self.config.data.num_threads))
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for start in range(0, len(paths), n):
                chunk = list(pool.map(self._read, paths[start:start + n]))
                ok = [p for p in chunk if p.error is None]
                if ok:
                    x = np.stack([np.asarray(p.element.input, np.float32) for p in ok])
                    x = np.concatenate([x, np.zeros((n - len(ok),) + x.shape[1:], x.dtype)])
                    probs = np.asarray(jax.device_get(
                        self._probs(self.state, sharding.global_batch({"image": x}, self.run.mesh))))
                    for p, row in zip(ok, probs):
                        p.probs, p.element = row, p.element._replace(input=None)   # scored: free it
                yield from chunk

    def describe(self, cls: int) -> str:
        """The class's name, with its group where the task has groups."""
        return f"{self.names[cls]} [{self.groups[cls]}]" if self.groups else self.names[cls]

    def record(self, p: Prediction, k: int) -> dict:
        """The JSON of one prediction."""
        if p.error is not None:
            return {"input": p.path, "error": p.error}
        top = [{"rank": r + 1, "class": c, "label": self.names[c], "prob": prob}
               for r, (c, prob) in enumerate(p.top(k))]
        if self.groups:
            for t in top:
                t["group"] = self.groups[t["class"]]
        return {"input": p.path, "top_k": top, **p.element.info}

    def picture(self, p: Prediction, k: int) -> np.ndarray:
        """The input (or a strip of its frames) beside a bar chart of the top-k classes."""
        top = p.top(k)
        if self.groups:
            kinds = sorted(set(self.groups))
            colour = dict(zip(kinds, pictures.palette(len(kinds))))
            colours = [colour[self.groups[c]] for c, _ in top]
        else:
            colours = []
        bars = pictures.bar_chart([self.describe(c) for c, _ in top], [prob for _, prob in top], colours,
                                  value_format="{:.1%}")
        panels = p.element.panels
        if len(panels) == 1:
            body = pictures.side_by_side([pictures.fit_for_display(panels[0][1]), bars])
        else:
            strip = pictures.image_grid([pictures.fit_for_display(im, 96, 160) for _, im in panels],
                                        [caption for caption, _ in panels])
            body = pictures.image_grid([strip, bars], ["", f"top {len(top)}"], columns=1)
        c, prob = top[0]
        return pictures.image_grid([body], [f"{os.path.basename(p.path)}: {self.describe(c)} {prob:.1%}"])


def format_prediction(predictor: Predictor, p: Prediction, k: int) -> str:
    if p.error is not None:
        return f"error: {p.path}: {p.error}"
    lines = [p.path] + [f"  {r + 1}. {prob:7.2%}  {predictor.describe(c)}" for r, (c, prob) in enumerate(p.top(k))]
    return "\n".join(lines)


def _unique_name(path: str, used: set) -> str:
    stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0] or "input"
    name, i = stem, 1
    while name in used:
        i += 1
        name = f"{stem}_{i}"
    used.add(name)
    return name


def predict_files(predictor: Predictor, inputs: Sequence[str], out: str | None = None, top_k: int = 5,
                  batch_size: int = 0) -> tuple[list[Prediction], int]:
    """Predict, print and (with `out`) write every input; returns (predictions, inputs that
    name nothing first, then the files in order; exit code 0, or 1 when an input failed)."""
    files, results = expand_inputs(inputs, predictor.task.input_suffixes)
    for p in results:
        print(format_prediction(predictor, p, top_k), file=sys.stderr)
    if out:
        os.makedirs(out, exist_ok=True)
    used: set = set()
    for p in predictor.predict(files, batch_size):
        results.append(p)
        print(format_prediction(predictor, p, top_k), file=sys.stderr if p.error else sys.stdout, flush=True)
        if out:
            name = _unique_name(p.path, used)
            record = predictor.record(p, top_k)
            if p.error is None:
                record["picture"] = pictures.save_png(os.path.join(out, name + ".png"), predictor.picture(p, top_k))
                p.element = p.element._replace(panels=[])                            # drawn: free it
            with open(os.path.join(out, name + ".json"), "w") as f:
                json.dump(record, f, indent=1)
    failed = sum(p.error is not None for p in results)
    if failed:
        print(f"{failed} of {len(results)} inputs failed", file=sys.stderr)
    return results, int(failed > 0)


def main():
    # flags are defined here, not at import: predict_files is also called from other programs
    config = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).", lock_config=True)
    ckpt = flags.DEFINE_string("checkpoint", None, "A training workdir, one of its step directories, or a "
                               "converted checkpoint.")
    out = flags.DEFINE_string("out", None, "Directory for one JSON and one PNG per input.")
    top_k = flags.DEFINE_integer("top_k", 5, "Classes printed and drawn per input.")
    batch = flags.DEFINE_integer("batch_size", 0, "Inputs per predict call (0: config.eval_batch_size, at "
                                 "most the number of inputs).")
    labels = flags.DEFINE_string("labels", None, "Text file of class names, one per line (overrides the "
                                 "dataset's).")
    flags.mark_flags_as_required(["config", "checkpoint"])

    def run(argv):
        absl_logging.set_verbosity(absl_logging.WARNING)   # the predictions, not the loaders' chatter
        if len(argv) < 2:
            raise app.UsageError("give at least one INPUT: a file or a folder of them")
        names = read_labels(labels.value) if labels.value else None
        try:
            predictor = Predictor(config.value, ckpt.value, names)
        except (CheckpointMismatch, LabelsMismatch) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return predict_files(predictor, argv[1:], out.value, top_k.value, batch.value)[1]

    cli.run(run)


if __name__ == "__main__":
    main()
