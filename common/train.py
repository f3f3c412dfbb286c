"""Train any registered task from a config file.

  python -m common.train --config=configs/demo.py --workdir=/tmp/demo
  python -m common.train --config=CONFIG.py:test --workdir=DIR \
      --config.batch_size=64 --config.optim.lr=2e-3
  # multi-process (one command per process; auto-detected on TPU pods / SLURM):
  python -m common.train ... --coordinator_address=HOST:PORT --num_processes=2 --process_id=0

Writes DIR/metrics.jsonl, DIR/tensorboard/, DIR/checkpoints/. Started again with the same
command it resumes from the newest readable checkpoint and logs, step for step, what an
uninterrupted run logs. SIGTERM saves a checkpoint and exits; a non-finite loss stops the
run with an error naming the step (checkpoints are only ever written from finite states).
"""
import logging
import math
import os
import signal
import sys
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from common import checkpoint, cli, distributed, sharding
from common.metrics_writer import MetricsWriter
from common.runner import Run, flat_metrics

log = logging.getLogger("common.train")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_COORD = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process).")


class NonFiniteLoss(RuntimeError):
    pass


class Stopped(Exception):
    """Raised by train_and_evaluate after a SIGTERM/SIGINT stop has saved its checkpoint, so
    a caller running several trainings (a benchmark, a sweep) stops too instead of going on
    with a half-trained model. The same command resumes the run."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by signal {signum} at step {step}; the same command resumes from here")
        self.signum, self.step = signum, step


class _Stop:
    """SIGTERM/SIGINT request a checkpoint and a clean exit at the next step boundary."""

    def __init__(self):
        self.requested = False
        self.signum = 0
        self._previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore(self):
        """Give the signals back, so a caller running several trainings can still be stopped."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum, frame):
        log.warning("signal %d: saving a checkpoint and stopping after this step", signum)
        self.requested, self.signum = True, signum


def _windowed(metrics: dict) -> dict:
    """The scalar `train/...` metrics: averaged over the log window, required finite."""
    return {k: float(v) for k, v in metrics.items() if k.startswith("train/") and np.ndim(v) == 0}


def _check_finite(step: int, scalars: dict) -> None:
    for name, value in scalars.items():
        if not math.isfinite(value):
            raise NonFiniteLoss(f"{name} is {value} at step {step}; stopping. The last checkpoint "
                                "(written from a finite state) is kept; lower the lr or check the data.")


def _restored_window(meta: dict) -> dict:
    window = meta["window"]
    if "loss_sum" in window:     # checkpoints written before every train/ scalar was windowed
        return {"sums": {"train/loss": window["loss_sum"]}, "count": window["count"]}
    return window


def train_and_evaluate(config, workdir: str, progress: bool = True, devices=None) -> dict:
    """Runs (or resumes) training on `devices` (default: all); returns the final metrics of
    every eval pass, {pass name: {metric: value}} (e.g. {'eval': {'top1': ...}})."""
    distributed.assert_same_config(config)
    run = Run(config, devices)
    task = run.task
    total = task.total_steps()
    ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints)
    dataset = task.input_pipeline(config.data.train_split, jax.process_index(), jax.process_count(),
                                  train=True)
    data_iter = iter(dataset)
    window = {"sums": {}, "count": 0}

    restored = ckpt.restore_latest(run.abstract_state)
    if restored is None:
        state, start = run.init_state(), 0
    else:
        start, state, meta = restored
        data_iter.set_state(meta["iterator"])
        window = _restored_window(meta)
        log.info("resumed from step %d in %s", start, workdir)
    writer = MetricsWriter(workdir, resume_step=start)
    train_step = run.jit_train_step()
    stop = _Stop()
    bar = _progress(progress, start, total)
    t_window, n_window = time.perf_counter(), 0
    pending = None   # (step, metrics) of the step dispatched last: read one step late
    eval_metrics = {}

    def finish_step(step, metrics):
        nonlocal t_window, n_window
        metrics = jax.device_get(metrics)
        scalars = _windowed(metrics)
        _check_finite(step, scalars)
        for k, v in scalars.items():
            window["sums"][k] = window["sums"].get(k, 0.0) + v
        window["count"] += 1
        n_window += 1
        if step % config.log_every_steps == 0 or step == total:
            dt = time.perf_counter() - t_window
            row = {k: v for k, v in metrics.items() if k not in scalars}
            row.update({k: v / window["count"] for k, v in window["sums"].items()})
            row["examples_per_sec"] = n_window * task.examples_per_step() / max(dt, 1e-9)
            writer.write(step, row)
            if bar is not None:
                shown = sorted(scalars, key=lambda k: k != "train/loss")[:3]    # the loss first
                bar.set_postfix({k.removeprefix("train/"): f"{row[k]:.4f}" for k in shown}
                                | ({"lr": f"{float(row['lr']):.2e}"} if "lr" in row else {}))
            window.update(sums={}, count=0)
            t_window, n_window = time.perf_counter(), 0

    try:
        for step in range(start + 1, total + 1):
            local = next(data_iter)
            batch = sharding.global_batch(local, run.mesh)
            state, metrics = train_step(state, batch, jax.random.fold_in(run.train_rng, step))
            if pending is not None:
                finish_step(*pending)
            pending = (step, metrics)
            if bar is not None:
                bar.update(1)
            boundary = (step % config.checkpoint_every_steps == 0 or step == total or stop.requested
                        or step % config.eval_every_steps == 0)
            if boundary:
                finish_step(*pending)
                pending = None
            if step % config.eval_every_steps == 0 or step == total:
                eval_metrics = run.evaluate(state)
                flat = flat_metrics(eval_metrics)
                writer.write(step, flat)
                if jax.process_index() == 0:
                    _print(bar, f"step {step}: " + format_metrics(flat))
            if step % config.checkpoint_every_steps == 0 or step == total or stop.requested:
                ckpt.save(step, state, {"iterator": data_iter.get_state(), "window": window})
            if stop.requested:
                _print(bar, f"stopped at step {step}; the same command resumes from here")
                break
    finally:
        stop.restore()
    if pending is not None:
        finish_step(*pending)
    if bar is not None:
        bar.close()
    writer.close()
    ckpt.close()
    # A run stopped before its first logged step has no metrics to draw.
    if jax.process_index() == 0 and os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        from common.plot import plot_runs
        plot_runs([workdir], os.path.join(workdir, "learning_curves.png"))
    if stop.requested:
        raise Stopped(stop.signum, step)
    return eval_metrics


def _progress(enabled: bool, start: int, total: int):
    if not enabled or jax.process_index() != 0:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=start, desc="train", dynamic_ncols=True, file=sys.stderr)


def format_metrics(metrics: dict) -> str:
    """Scalars of a flat metrics dict as `name=value, ...` (arrays are left to the files)."""
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in metrics.items() if np.ndim(v) == 0)


def _print(bar, msg: str) -> None:
    if bar is not None:
        bar.write(msg)
    else:
        print(msg, flush=True)


def main(argv):
    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("absl", "orbax", "jax._src", "tensorflow_datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    distributed.initialize(_COORD.value, _NPROC.value, _PID.value)
    if _WORKDIR.value is None:
        raise app.UsageError("--workdir is required")
    try:
        metrics = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except Stopped as e:
        print(e, flush=True)
        sys.exit(128 + e.signum)   # the shell's code for "ended by this signal"; the checkpoint is saved
    if jax.process_index() == 0:
        for name, values in metrics.items():
            print(f"final {name}: " + format_metrics(values), flush=True)


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    cli.run(main)
