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

from common import checkpoint, cli, distributed, sharding, workdir as workdirs
from common.errors import DataError, UserError, first_line
from common.metrics_writer import MetricsWriter
from common.runner import Run, check_batch_splits, flat_metrics

log = logging.getLogger("common.train")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_COORD = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process).")


class NonFiniteLoss(UserError, RuntimeError):
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
        if self.requested:    # a second signal: the user does not want to wait for the save
            log.warning("signal %d again: stopping now, without a checkpoint", signum)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        log.warning("signal %d: saving a checkpoint and stopping after this step (send it again to "
                    "stop at once)", signum)
        self.requested, self.signum = True, signum


def _windowed(metrics: dict) -> dict:
    """The scalar `train/...` metrics: averaged over the log window, required finite."""
    return {k: float(v) for k, v in metrics.items() if k.startswith("train/") and np.ndim(v) == 0}


def _check_finite(step: int, scalars: dict, ckpt: checkpoint.Checkpointer, resumed: int) -> None:
    for name, value in scalars.items():
        if not math.isfinite(value):
            raise NonFiniteLoss(f"{name} is {value} at step {step}; stopping. " + _recovery_hint(ckpt, resumed))


def _recovery_hint(ckpt: checkpoint.Checkpointer, resumed: int) -> str:
    """Where a diverged run can go on from (checkpoints are only written from finite losses)."""
    steps = ckpt.steps()
    if not steps:
        return ("No checkpoint was written yet, so there is nothing to resume: rerun with other settings "
                "(a lower optim.lr, clipping) in a fresh --workdir.")
    hint = (f"The last checkpoint, written from a finite state, is step {steps[-1]} in {ckpt.directory}: "
            "rerun the same command with other settings (e.g. a lower --config.optim.lr) and "
            "--config.allow_resume_with_changes=<the keys you changed> to continue from it.")
    if resumed and steps[-1] == resumed:
        hint += (f" This run already resumed from step {resumed}; if that state is itself diverging, move "
                 f"{ckpt.directory}/{resumed} aside to resume from step "
                 f"{steps[-2] if len(steps) > 1 else '0 (a fresh start)'}.")
    return hint


def _restored_window(meta: dict) -> dict:
    window = meta["window"]
    if "loss_sum" in window:     # checkpoints written before every train/ scalar was windowed
        return {"sums": {"train/loss": window["loss_sum"]}, "count": window["count"]}
    return window


def train_and_evaluate(config, workdir: str, progress: bool = True, devices=None) -> dict:
    """Runs (or resumes) training on `devices` (default: all); returns the final metrics of
    every eval pass, {pass name: {metric: value}} (e.g. {'eval': {'top1': ...}})."""
    distributed.assert_same_run(config, workdir)
    run = Run(config, devices)
    check_batch_splits(config, run.mesh)
    task = run.task
    total = task.total_steps()
    ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints)
    changes = workdirs.check_resume(workdir, config, ckpt.steps()[-1]) if ckpt.steps() else {}
    dataset = task.input_pipeline(config.data.train_split, jax.process_index(), jax.process_count(),
                                  train=True)
    data_iter = iter(dataset)
    window = {"sums": {}, "count": 0}
    _check_eval_data(run)

    restored = ckpt.restore_latest(run.abstract_state)
    if restored is None:
        state, start = run.init_state(), 0
        workdirs.record(workdir, config)
    else:
        start, state, meta = restored
        data_iter.set_state(meta["iterator"])
        window = _restored_window(meta)
        workdirs.record(workdir, config, changes, start)     # only once the checkpoint fits
        log.info("resumed from step %d in %s", start, workdir)
    writer = MetricsWriter(workdir, resume_step=start)
    if start >= total:
        return _finished_run(run, state, writer, ckpt, total)
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
        _check_finite(step, scalars, ckpt, start)
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
            # saved before evaluating: an eval that fails (bad data, a crash) loses no training
            if step % config.checkpoint_every_steps == 0 or step == total or stop.requested:
                ckpt.save(step, state, {"iterator": data_iter.get_state(), "window": window})
            if step % config.eval_every_steps == 0 or step == total:
                eval_metrics = run.evaluate(state)
                flat = flat_metrics(eval_metrics)
                writer.write(step, flat)
                if jax.process_index() == 0:
                    _print(bar, f"step {step}: " + format_metrics(flat))
            if stop.requested and step < total:
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
    if stop.requested and step < total:
        raise Stopped(stop.signum, step)
    return eval_metrics


def _check_eval_data(run: Run) -> None:
    """Open every split the run's evaluations read and read one batch, so a missing or broken
    split is found before training, not at the first eval hours later."""
    for split in dict.fromkeys(p.split for p in run.eval_passes()):
        try:
            next(iter(run.task.input_pipeline(split, jax.process_index(), jax.process_count(), train=False)))
        except StopIteration:
            raise DataError(f"the eval split {split!r} of dataset {run.config.data.name!r} is empty") from None
        except Exception as e:
            raise DataError(f"the eval split {split!r} of dataset {run.config.data.name!r} cannot be read "
                            f"(checked before training): {first_line(e)}") from e


def _finished_run(run: Run, state, writer: MetricsWriter, ckpt, total: int) -> dict:
    """A rerun of a finished run: evaluate its last checkpoint (and log the final eval if the
    first run was stopped before writing it)."""
    log.info("the run is complete (step %d); evaluating its last checkpoint", total)
    eval_metrics = run.evaluate(state)
    if jax.process_index() == 0 and not any(r.get("step") == total and any(k.startswith(tuple(eval_metrics))
                                                                             for k in r)
                                            for r in _read_rows(writer.path)):
        writer.write(total, flat_metrics(eval_metrics))
    writer.close()
    ckpt.close()
    return eval_metrics


def _read_rows(path: str) -> list[dict]:
    from common.metrics_writer import read_metrics
    return read_metrics(os.path.dirname(path)) if os.path.exists(path) else []


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
    cli.quiet_libraries()
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
