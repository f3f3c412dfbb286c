"""The `music` task on the platform's loop: trains the tiny CMT on the small stand-in from
the `:test` preset (tfds builder -> grain), evaluates the seven masked losses and
accuracies, resumes exactly from a checkpoint, and gives the same step on 8 devices as on 1."""
import json
import os
import shutil

import jax
import numpy as np

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

    resumed = str(tmp_path / "resumed")
    shutil.copytree(workdir, resumed)
    shutil.rmtree(os.path.join(resumed, "checkpoints", "4"))
    again = train.train_and_evaluate(load_config(CONFIG, "test"), resumed, progress=False)
    assert _losses(resumed) == rows
    assert json.dumps(again, sort_keys=True) == json.dumps(metrics, sort_keys=True)

    table = tasks.get_task(load_config(CONFIG, "test").task)(load_config(CONFIG, "test")).summarize(metrics)
    assert table.splitlines()[1].startswith("eval")


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
