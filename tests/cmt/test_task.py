"""The `music` task on the platform's loop: trains the tiny CMT on the small stand-in from
the `:test` preset (tfds builder -> grain), evaluates the seven masked losses and
accuracies, resumes exactly after kill -9, generates from the trained checkpoint through the
CLI, and gives the same step on 8 devices as on 1."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from cmt.task import FIELDS
from common import sharding, tasks, train
from common.metrics_writer import read_metrics
from common.runner import Run
from tests.common.configs import load_config

CONFIG = "configs/cmt/cmt.py"


def _losses(workdir):
    return [(r["step"], r["train/loss"], r["train/loss_pitch"]) for r in read_metrics(workdir) if "train/loss" in r]


def test_trains_evaluates_and_resumes_exactly(tmp_path):
    workdir = str(tmp_path / "run")
    metrics = train.train_and_evaluate(load_config(CONFIG, "test"), workdir, progress=False)
    m = metrics["eval"]
    assert m["songs"] >= 1 and np.isfinite(m["loss"]) and 0 <= m["acc_type"] <= 100
    assert set(k for k in m if k.startswith("loss_")) == {f"loss_{k}" for k in FIELDS}
    rows = _losses(workdir)
    assert [s for s, _, _ in rows] == [1, 2, 3, 4] and all(np.isfinite(loss) for _, loss, _ in rows)
    assert rows[-1][1] < rows[0][1]                               # lr 1e-3 on 4 songs: the loss falls

    # kill -9 a run of the same config once its step-2 checkpoint is written, then resume it
    killed = str(tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, "-m", "common.train", f"--config={CONFIG}:test", f"--workdir={killed}"],
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not os.path.isdir(os.path.join(killed, "checkpoints", "2")) and proc.poll() is None:
            assert time.time() < deadline, "the subprocess wrote no step-2 checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not os.path.isdir(os.path.join(killed, "checkpoints", "4"))
    again = train.train_and_evaluate(load_config(CONFIG, "test"), killed, progress=False)
    last = {r[0]: r for r in _losses(killed)}                          # a step logged before the kill is redone
    assert [last[s] for s in (1, 2, 3, 4)] == rows                     # exactly the uninterrupted run
    assert json.dumps(again, sort_keys=True) == json.dumps(metrics, sort_keys=True)

    table = tasks.get_task(load_config(CONFIG, "test").task)(load_config(CONFIG, "test")).summarize(metrics)
    assert table.splitlines()[1].startswith("eval")

    # controlled generation from the trained checkpoint: MIDI, piano roll, metrics
    from cmt import generate, video
    out = str(tmp_path / "gen" / "ramp.mid")
    report = generate.main([f"--config={CONFIG}:test", f"--checkpoint={workdir}", "--ramp", "3", "--out", out])
    for ext in (".mid", ".png", ".json"):
        assert os.path.getsize(out[:-4] + ext) > 0
    assert report["tokens"] >= 1 and "density_error" in report and "strength_error" in report
    np.savez(tmp_path / "bad.npz", input=np.zeros((3, 4)))
    with pytest.raises(video.VideoError, match="bad.npz"):
        generate.main([f"--config={CONFIG}:test", f"--checkpoint={workdir}", "--controls", str(tmp_path / "bad.npz"),
                       "--out", out])
    assert os.path.getsize(out) > 0                                    # the earlier output is still there


def test_step_on_8_devices_equals_1_device():
    def two_steps(mesh, devices):
        c = load_config(CONFIG, "test")
        c.mesh = mesh
        r = Run(c, devices)
        state, step = r.init_state(), r.jit_train_step()
        batch = r.task.synthetic_batch(8)
        losses = []
        for i in range(2):
            state, m = step(state, sharding.global_batch(batch, r.mesh), jax.random.PRNGKey(i))
            losses.append(float(m["train/loss"]))
        return losses

    np.testing.assert_allclose(two_steps({"data": 8, "fsdp": 1, "model": 1}, jax.devices()),
                               two_steps({"data": 1, "fsdp": 1, "model": 1}, jax.devices()[:1]), rtol=1e-5)
