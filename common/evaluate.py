"""Evaluate a checkpoint on a split and print the task's metrics.

  python -m common.evaluate --config=CONFIG.py --checkpoint=DIR
  python -m common.evaluate --config=... --checkpoint=WORKDIR --split=validation

Prints one JSON object, {pass name: {metric: value}}, for every evaluation pass of the task
(`--split` runs the same passes over another split).

--checkpoint is a converted official checkpoint (`python -m <paper>.convert SRC DIR`), a
training workdir (its newest checkpoint, EMA params if it keeps them), or one step
directory of a training run.
"""
import json
import logging

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from common import cli, distributed
from common.runner import check_batch_splits, checkpoint_run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).", lock_config=True)
_CKPT = flags.DEFINE_string("checkpoint", None, "Checkpoint directory to evaluate.")
_SPLIT = flags.DEFINE_string("split", None, "Split (default: config.data.eval_split).")
_FRESH = flags.DEFINE_bool("allow_fresh_init", False, "Score a checkpoint that lacks some leaves, "
                           "with those leaves at their random init (reported in the output).")
_COORD = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process).")


def main(argv):
    del argv
    logging.basicConfig(level=logging.WARNING)
    cli.quiet_libraries()
    distributed.initialize(_COORD.value, _NPROC.value, _PID.value)
    if not _CKPT.value:
        raise app.UsageError("--checkpoint is required")
    run = checkpoint_run(_CONFIG.value, _CKPT.value, allow_fresh_init=_FRESH.value)
    check_batch_splits(run.config, run.mesh, ("eval_batch_size",))
    state = run.init_state()
    if run.fresh_leaves:
        print(f"WARNING --allow_fresh_init: {len(run.fresh_leaves)} leaves are not in {_CKPT.value} and "
              f"are scored at their random init: {', '.join(run.fresh_leaves[:5])}", flush=True)
    metrics = run.evaluate(state, run.eval_passes(_SPLIT.value), progress=True)
    if jax.process_index() == 0:
        table = run.task.summarize(metrics)
        if table:
            print(table)
        if run.fresh_leaves:     # echoed in the output, so a partial score is never mistaken
            metrics = {**metrics, "fresh_init_leaves": run.fresh_leaves}
        print(json.dumps(metrics, default=lambda a: np.asarray(a).tolist()))


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    cli.run(main)
