"""The training loop end to end: metrics, eval, resume exactness, NaN guard, corrupt
checkpoints."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from common import train
from common.metrics_writer import read_metrics
from tests.common.configs import ROOT, tiny_config


def _losses(workdir):
    return [(r["step"], r["train/loss"]) for r in read_metrics(workdir) if "train/loss" in r]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ref"))
    metrics = train.train_and_evaluate(tiny_config(), workdir, progress=False)
    return workdir, metrics


def test_end_to_end_writes_metrics_eval_and_checkpoints(reference_run):
    workdir, metrics = reference_run
    rows = read_metrics(workdir)
    steps = [r["step"] for r in rows if "train/loss" in r]
    assert steps == list(range(1, 9))
    assert all({"lr", "examples_per_sec"} <= set(r) for r in rows if "train/loss" in r)
    assert metrics["eval"]["count"] == 359 and 0.0 <= metrics["eval"]["top1"] <= 100.0
    assert any("eval/top1" in r for r in rows)
    assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == [2, 4, 6, 8]
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert os.path.getsize(os.path.join(workdir, "learning_curves.png")) > 1000


def test_resume_after_sigterm_logs_exactly_the_same_losses(reference_run, tmp_path):
    workdir = str(tmp_path)

    def send_sigterm_after_step_3():
        while not any(s >= 3 for s, _ in _safe_losses(workdir)):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_sigterm_after_step_3, daemon=True).start()
    with pytest.raises(train.Stopped, match="signal 15"):
        train.train_and_evaluate(tiny_config(), workdir, progress=False)
    stopped_at = max(s for s, _ in _losses(workdir))
    assert stopped_at < 8, "SIGTERM did not stop the run"
    train.train_and_evaluate(tiny_config(), workdir, progress=False)
    assert _losses(workdir) == _losses(reference_run[0])


def test_resume_after_kill_9_logs_exactly_the_same_losses(reference_run, tmp_path):
    workdir = str(tmp_path)
    cmd = [sys.executable, "-c", _SUBPROCESS_TRAIN, workdir]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    deadline = time.time() + 240
    while not any(s >= 5 for s, _ in _safe_losses(workdir)):
        assert proc.poll() is None and time.time() < deadline, "training subprocess ended early"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    train.train_and_evaluate(tiny_config(), workdir, progress=False)
    assert _losses(workdir) == _losses(reference_run[0])


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    workdir = str(tmp_path)
    with pytest.raises(train.NonFiniteLoss, match="at step 2.*No checkpoint was written yet.*fresh --workdir"):
        train.train_and_evaluate(tiny_config(**{"optim.lr": float("nan")}), workdir, progress=False)
    assert not os.path.exists(os.path.join(workdir, "checkpoints")) or \
        not os.listdir(os.path.join(workdir, "checkpoints"))
    # a finite run first, then a diverging continuation: the good checkpoints stay, and the
    # error names the last one and how to go on from it
    train.train_and_evaluate(tiny_config(num_train_steps=4), workdir, progress=False)
    diverging = tiny_config(**{"optim.lr": float("inf"), "allow_resume_with_changes": "optim.lr,num_train_steps"})
    with pytest.raises(train.NonFiniteLoss, match=r"at step 6.*last checkpoint.*is step 4.*"
                                                  r"allow_resume_with_changes.*already resumed from step 4"):
        train.train_and_evaluate(diverging, workdir, progress=False)
    assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == [2, 4]


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(reference_run, tmp_path, caplog):
    import shutil
    workdir = str(tmp_path / "run")
    shutil.copytree(reference_run[0], workdir)
    latest = os.path.join(workdir, "checkpoints", "8", "state")
    for root, _, files in os.walk(latest):   # truncate every data file of the latest state
        for f in files:
            with open(os.path.join(root, f), "r+b") as fh:
                fh.truncate(max(0, os.path.getsize(os.path.join(root, f)) // 3))
    with caplog.at_level("WARNING"):
        train.train_and_evaluate(tiny_config(), workdir, progress=False)
    assert "checkpoint 8" in caplog.text and "cannot be restored" in caplog.text
    assert os.path.isdir(os.path.join(workdir, "checkpoints_corrupt", "8"))
    # resumed from step 6 and re-ran 7..8 identically
    assert _losses(workdir) == _losses(reference_run[0])


def _safe_losses(workdir):
    try:
        return _losses(workdir)
    except (FileNotFoundError, json.JSONDecodeError):
        return []


_SUBPROCESS_TRAIN = """
import sys
from tests.conftest import *  # noqa: F401,F403  (same XLA/tfds environment)
from common import train
from tests.common.configs import tiny_config
train.train_and_evaluate(tiny_config(), sys.argv[1], progress=False)
"""
