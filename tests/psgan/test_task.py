"""The makeup task on the platform's loop, from the `:test` preset on the generated synthetic
MT folder: D_A, D_B and G update in one step, evaluation prints the regression metrics, a run
resumes exactly (in process and after kill -9), 8 devices give the step of 1, and the
transfer CLI writes its result and grid (partial, degree, removal) with clear input errors."""
import os
import re
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from common import checkpoint, sharding, train
from common.metrics_writer import read_metrics
from common.runner import Run
from tests.common.configs import ROOT, load_config

CONFIG = "configs/psgan/psgan_mt256.py"
KEYS = ("train/g_loss", "train/d_a_loss", "train/d_b_loss", "train/hist", "train/cycle")


def _rows(workdir):
    return [tuple([r["step"]] + [r[k] for k in KEYS]) for r in read_metrics(workdir) if KEYS[0] in r]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("psgan_run"))
    metrics = train.train_and_evaluate(load_config(CONFIG, "test"), workdir, progress=False)
    return workdir, metrics


def test_trains_both_discriminators_and_the_generator_and_evaluates(trained):
    workdir, metrics = trained
    rows = _rows(workdir)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(v) for r in rows for v in r[1:])
    m = metrics["eval"]
    assert m["pairs"] == 4
    for k in ("hist_lip", "hist_skin", "hist_eye", "hist_lip_source", "ssim_outside", "attention_in_region",
              "removal_hist_lip"):
        assert np.isfinite(m[k]), k
    assert 0.0 <= m["attention_in_region"] <= 1.0 and 0.0 < m["hist_lip_source"] < 1.0
    nets = checkpoint.load_nets(workdir)
    assert set(nets) == {"generator", "disc_a", "disc_b", "vgg"}
    assert set(nets["disc_a"]) == {"params", "spectral_stats"}
    run = Run(load_config(CONFIG, "test"))                      # the fixture's mesh: its compiled init
    init = run.init_state()
    moved = lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).sum()) > 0   # noqa: E731
    for name, leaf in (("generator", ("stnet", "tnet_in_conv", "kernel")), ("disc_a", ("main_0", "kernel")),
                       ("disc_b", ("main_0", "kernel"))):
        got, fresh = nets[name]["params"], init[name].params
        for k in leaf:
            got, fresh = got[k], fresh[k]
        assert moved(got, fresh), name
    assert not moved(nets["vgg"]["params"]["conv1_1"]["kernel"], init["vgg"].params["conv1_1"]["kernel"])
    assert moved(nets["disc_a"]["spectral_stats"]["main_0"]["u"], init["disc_a"].model_state["spectral_stats"]["main_0"]["u"])
    # the table common.evaluate prints
    table = run.task.summarize(metrics)
    assert "lip" in table and "SSIM" in table        # (exact resume: test_resumes_exactly_after_kill_9)


_SUBPROCESS = """
import sys
from tests.conftest import *  # noqa: F401,F403  (same XLA/tfds environment)
from common import train
from tests.common.configs import load_config
train.train_and_evaluate(load_config(sys.argv[2], "test"), sys.argv[1], progress=False)
"""


def test_resumes_exactly_after_kill_9(trained, tmp_path):
    workdir = str(tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, "-c", _SUBPROCESS, workdir, CONFIG], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT})
    deadline = time.time() + 400
    ckpt = os.path.join(workdir, "checkpoints", "2")

    def logged():
        try:
            return [r[0] for r in _rows(workdir)]
        except (FileNotFoundError, ValueError):
            return []
    while not (3 in logged() and os.path.isdir(ckpt)):
        assert proc.poll() is None and time.time() < deadline, "training subprocess ended early"
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.kill()
    proc.wait()
    train.train_and_evaluate(load_config(CONFIG, "test"), workdir, progress=False)
    assert _rows(workdir) == _rows(trained[0])


def test_step_on_8_devices_equals_1_device():
    assert jax.device_count() == 8

    def run(mesh, devices):
        c = load_config(CONFIG, "test")
        c.unlock()
        c.mesh = mesh
        return Run(c, devices)

    def two_steps(r, state):
        step, batch = r.jit_train_step(), r.task.synthetic_batch(8)
        out = []
        for i in range(2):
            state, m = step(state, sharding.global_batch(batch, r.mesh), jax.random.PRNGKey(i))
            out.append([float(m[k]) for k in KEYS])
        return out

    r8, r1 = run({"data": 8, "fsdp": 1, "model": 1}, jax.devices()), run({"data": 1, "fsdp": 1, "model": 1},
                                                                         jax.devices()[:1])
    state8 = r8.init_state()
    # the same initial state on one device (one init program fewer to compile)
    state1 = jax.device_put(jax.tree_util.tree_map(np.asarray, state8), r1.state_sharding)
    m8, m1 = two_steps(r8, state8), two_steps(r1, state1)
    np.testing.assert_allclose(m8, m1, rtol=2e-4)          # step 2 runs on the networks step 1 updated


def test_transfer_cli_pictures_and_input_errors(trained, tmp_path, capsys):
    from PIL import Image
    from psgan import synthetic
    from psgan.transfer import main
    workdir, _ = trained
    root = str(tmp_path / "faces")
    synthetic.write_mt_folder(root, 1, 1, 80, seed=5)
    src, ref = os.path.join(root, "images/non-makeup/n0000.png"), os.path.join(root, "images/makeup/m0000.png")
    out = str(tmp_path / "out")
    cfg = f"{CONFIG}:test"
    assert main([f"--config={cfg}", f"--checkpoint={workdir}", src, ref, "--regions", "lip,eye", "--degree", "0.5",
                 "--out", out]) == 0
    printed = capsys.readouterr().out                             # lip / skin / eye: result / source
    dist = [float(v) for v in re.findall(r"(?:lip|skin|eye) ([0-9.]+) / ([0-9.]+)", printed)[0]]
    assert all(0.0 <= v <= 1.0 for v in dist) and dist[1] > 0.0, printed
    result = Image.open(os.path.join(out, "n0000_m0000.png"))
    grid = Image.open(os.path.join(out, "n0000_m0000_grid.png"))
    assert result.size == (80, 80) and grid.size[0] > 5 * 64 and grid.size[1] > 2 * 64
    assert main([f"--config={cfg}", f"--checkpoint={workdir}", ref, "--remove", "--out", out]) == 0
    assert os.path.isfile(os.path.join(out, "m0000_removed_grid.png"))
    before = sorted(os.listdir(out))
    # bad input: no landmarks file, unknown labels, a non-square image; each names its file
    os.remove(os.path.join(root, "landmarks/makeup/m0000.png"))
    with pytest.raises(FileNotFoundError, match="landmarks/makeup/m0000.png"):
        from psgan.transfer import run
        run(load_config(CONFIG, "test"), workdir, src, ref, out)
    seg = np.asarray(Image.open(os.path.join(root, "segs/non-makeup/n0000.png"))).copy()
    seg[0, 0] = 42
    Image.fromarray(seg).save(os.path.join(root, "segs/non-makeup/n0000.png"))
    with pytest.raises(ValueError, match=r"segs/non-makeup/n0000.png.*\[42\]"):
        run(load_config(CONFIG, "test"), workdir, src, src, out)
    Image.new("RGB", (80, 60)).save(os.path.join(root, "images/non-makeup/n0000.png"))
    with pytest.raises(ValueError, match=r"images/non-makeup/n0000.png.*80x60"):
        run(load_config(CONFIG, "test"), workdir, src, src, out)
    assert main([f"--config={cfg}", f"--checkpoint={workdir}", src, src, "--out", out]) == 1
    assert sorted(os.listdir(out)) == before                      # nothing written, nothing lost
