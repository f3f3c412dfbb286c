"""The platform runs tasks it does not know: a toy regression scored by a median (a
non-additive evaluator) and a two-network GAN with its own optimizers and an EMA, both
defined only in tests/common/toy_tasks.py. Registration by name; common/ names no paper."""
import os
import re
import shutil
import subprocess
import sys
import time

import flax.linen as nn
import jax
import numpy as np
import pytest

from common import checkpoint, evaluators, models, sharding, tasks, train
from common.metrics_writer import read_metrics
from common.registry import Registry
from common.runner import Run
from tests.common import toy_tasks
from tests.common.configs import ROOT

PAPERS = ("metaformer", "volo", "permutator", "dualformer", "longtail", "pnp_detr", "mvp", "cmt",
          "avton", "psgan")


def _rows(workdir, *keys):
    return [tuple([r["step"]] + [r[k] for k in keys]) for r in read_metrics(workdir) if keys[0] in r]


def _drop_checkpoints_after(workdir, step):
    for s in os.listdir(os.path.join(workdir, "checkpoints")):
        if s.isdigit() and int(s) > step:
            shutil.rmtree(os.path.join(workdir, "checkpoints", s))


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("regression"))
    return workdir, train.train_and_evaluate(toy_tasks.regression_config(), workdir, progress=False)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("gan"))
    return workdir, train.train_and_evaluate(toy_tasks.gan_config(), workdir, progress=False)


def test_a_task_unknown_to_common_trains_and_is_scored_by_a_median(regression_run):
    workdir, metrics = regression_run
    median = metrics["eval"]["median_abs_error"]
    assert metrics["eval"]["count"] == 80             # the padded rows of the last batch are dropped
    # the evaluator really computed a median of per-example errors: recompute it from the checkpoint
    task = tasks.get_task("tests.common.toy_tasks:regression")(toy_tasks.regression_config())
    w = np.asarray(checkpoint.load_any(workdir)["params"]["fc"]["kernel"])[:, 0]
    b = float(np.asarray(checkpoint.load_any(workdir)["params"]["fc"]["bias"])[0])
    ex = task.source("validation")
    errors = [abs(float(e["x"] @ w + b - e["y"])) for e in ex]
    assert median == pytest.approx(float(np.median(errors)), rel=1e-5)
    assert median != pytest.approx(float(np.mean(errors)), rel=1e-3)
    losses = [loss for _, loss in _rows(workdir, "train/loss")]
    assert len(losses) == 8 and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def test_a_resumed_run_continues_exactly(regression_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(regression_run[0], workdir)
    _drop_checkpoints_after(workdir, 4)
    metrics = train.train_and_evaluate(toy_tasks.regression_config(), workdir, progress=False)
    assert _rows(workdir, "train/loss") == _rows(regression_run[0], "train/loss")
    assert metrics == regression_run[1]


def test_two_networks_train_with_their_own_optimizers_and_ema(gan_run):
    workdir, metrics = gan_run
    rows = read_metrics(workdir)
    assert all({"train/d_loss", "train/g_loss"} <= set(r) for r in rows if "train/d_loss" in r)
    assert "samples" not in rows[0]                  # an image goes to TensorBoard, not to the JSONL
    assert np.isfinite(metrics["eval"]["mean_distance"])
    state = checkpoint.load_nets(workdir)             # the EMA generator is what a checkpoint serves
    assert set(state) == {"generator", "discriminator"}
    run = Run(toy_tasks.gan_config(), jax.devices()[:1])
    restored = checkpoint.Checkpointer(workdir).restore_latest(run.abstract_state)[1]
    g = restored["generator"]
    assert restored["discriminator"].ema_params is None and g.ema_params is not None
    # the EMA lags the params; both differ from the init
    init = run.init_state()["generator"].params
    k = lambda t: np.asarray(t["fc1"]["kernel"])  # noqa: E731
    assert 0 < np.abs(k(g.ema_params) - k(init)).sum() < np.abs(k(g.params) - k(init)).sum()
    np.testing.assert_array_equal(np.asarray(state["generator"]["params"]["fc1"]["kernel"]), k(g.ema_params))
    d_init = run.init_state()["discriminator"].params
    assert np.abs(k(restored["discriminator"].params) - k(d_init)).sum() > 0


def test_two_network_run_resumes_exactly_after_kill_9(gan_run, tmp_path):
    workdir = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _SUBPROCESS_GAN, workdir], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT})
    deadline = time.time() + 240
    while not any(s >= 5 for s, *_ in _safe_rows(workdir)):
        assert proc.poll() is None and time.time() < deadline, "training subprocess ended early"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    train.train_and_evaluate(toy_tasks.gan_config(), workdir, progress=False)
    keys = ("train/d_loss", "train/g_loss")
    assert _rows(workdir, *keys) == _rows(gan_run[0], *keys)


def test_two_network_step_on_8_devices_equals_1_device():
    assert jax.device_count() == 8

    def losses(mesh, devices):
        c = toy_tasks.gan_config()
        c.unlock()
        c.mesh = mesh
        run = Run(c, devices)
        state, step = run.init_state(), run.jit_train_step()
        src = toy_tasks._examples(48, 3)
        out = []
        for i in range(3):
            local = {k: np.stack([e[k] for e in src[16 * i:16 * i + 16]]) for k in ("x", "y")}
            state, m = step(state, sharding.global_batch(local, run.mesh), jax.random.PRNGKey(i))
            out.append((float(m["train/d_loss"]), float(m["train/g_loss"])))
        return run, state, out

    _, _, one = losses({"data": 1, "fsdp": 1, "model": 1}, jax.devices()[:1])
    run8, s8, eight = losses({"data": 4, "fsdp": 1, "model": 2}, jax.devices())
    assert run8.state_sharding["generator"].params["fc1"]["kernel"].spec[1] == "model"  # tensor-parallel
    np.testing.assert_allclose(eight, one, rtol=2e-5)


def test_evaluate_init_from_and_bench_take_a_state_of_several_networks(gan_run, tmp_path):
    from common.bench import run_benchmark
    from common.runner import evaluate_checkpoint
    workdir, metrics = gan_run
    assert evaluate_checkpoint(toy_tasks.gan_config(), workdir, progress=False) == metrics
    # a converted checkpoint of one network initialises that network only
    g = checkpoint.load_any(workdir, "generator")
    path = checkpoint.save_variables(str(tmp_path / "g"), {"generator": g})
    c = toy_tasks.gan_config()
    c.unlock()
    c.init_from = f"generator={path}"
    run = Run(c, jax.devices()[:1])
    state, fresh = run.init_state(), nn.meta.unbox(run.task.init(run.init_rng))
    np.testing.assert_array_equal(np.asarray(state["generator"].params["fc1"]["kernel"]),
                                  np.asarray(g["params"]["fc1"]["kernel"]))
    np.testing.assert_array_equal(np.asarray(state["discriminator"].params["fc1"]["kernel"]),
                                  np.asarray(fresh["discriminator"].params["fc1"]["kernel"]))
    c.init_from = f"critic={path}"
    with pytest.raises(KeyError, match="has no network 'critic'"):
        Run(c, jax.devices()[:1]).init_state()
    r = run_benchmark(toy_tasks.gan_config(), batch=16, steps=1)
    assert r["train_examples_per_s"] > 0 and r["train_flops_per_step"] > 0 and r["infer_flops_per_step"] > 0


def test_registry_forms_and_errors():
    assert tasks.get_task("classification").__name__ == "ClassificationTask"
    assert tasks.get_task("tests.common.toy_tasks:toy_gan") is toy_tasks.ToyGanTask
    with pytest.raises(KeyError, match="registers 2 tasks"):
        tasks.get_task("tests.common.toy_tasks")
    with pytest.raises(KeyError, match="no module 'no_such_package.task'"):
        tasks.get_task("no_such_package.task:x")
    with pytest.raises(KeyError, match="registers no task 'nope'"):
        tasks.get_task("tests.common.toy_tasks:nope")
    model = models.create_model("metaformer:poolformer_s12", num_classes=3)
    assert type(model).__name__ == "MetaFormer"
    with pytest.raises(KeyError, match="registers no model"):
        models.create_model("volo:poolformer_s12")   # registered, but by another package
    r = Registry("thing")
    r.register("a", 1, "pkg.one")
    assert r.get("a") == 1
    r.register("a", 2, "pkg.two")          # two packages may share a variant name ("tiny")
    with pytest.raises(KeyError, match="'a' is registered by pkg.one, pkg.two; name one as 'MODULE:a'"):
        r.get("a")
    assert r.get("pkg.one:a") == 1 and r.get("pkg.two:a") == 2
    assert r.names() == ["pkg.one:a", "pkg.two:a"]


def test_run_pass_overlaps_and_reraises_evaluator_errors():
    class Failing:
        def add(self, outputs):
            raise RuntimeError("bad batch")

        def compute(self):
            return {}

    with pytest.raises(RuntimeError, match="bad batch"):
        evaluators.run_pass(Failing(), iter([{"a": np.ones(2)}] * 5))
    out = evaluators.run_pass(evaluators.SumEvaluator(lambda s: {"n": float(s["a"].sum())}),
                              ({"a": np.ones(3)} for _ in range(4)))
    assert out == {"n": 12.0}


def test_common_names_no_paper_package():
    pattern = re.compile(r"\b(" + "|".join(PAPERS) + r")\b", re.IGNORECASE)
    hits = []
    for root, _, files in os.walk(os.path.join(ROOT, "common")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                for i, line in enumerate(open(path, encoding="utf-8"), 1):
                    if pattern.search(line):
                        hits.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not hits, "common/ names paper packages:\n" + "\n".join(hits)


def _safe_rows(workdir):
    try:
        return _rows(workdir, "train/d_loss")
    except (FileNotFoundError, ValueError):
        return []


_SUBPROCESS_GAN = """
import sys
from tests.conftest import *  # noqa: F401,F403  (same XLA/tfds environment)
from common import train
from tests.common import toy_tasks
train.train_and_evaluate(toy_tasks.gan_config(), sys.argv[1], progress=False)
"""
