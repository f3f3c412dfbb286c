"""The detection task on the platform's loop: trains on the synthetic_shapes stand-in from
the `:test` preset in a child process that is killed with SIGKILL after its step-2
checkpoint, resumes exactly, evaluates COCO AP at every eval alpha, gives the same step on
8 devices as on 1, and draws its predictions."""
import json
import os
import shutil
import signal

import jax
import numpy as np

from common import sharding, tasks, train
from common.metrics_writer import read_metrics
from common.runner import Run
from tests.common.configs import killed_run, load_config

CONFIG = "configs/pnp_detr/pnp_detr_r50.py"
def _losses(workdir):
    return [(r["step"], r["train/loss"], r["train/alpha"]) for r in read_metrics(workdir) if "train/loss" in r]


def test_trains_resumes_exactly_after_kill_9_scores_ap_at_every_alpha_and_draws(tmp_path):
    """One test, so pytest-xdist does not train the model once per worker."""
    workdir = str(tmp_path / "run")
    code = killed_run(CONFIG, workdir)
    rows = _losses(workdir)
    assert [s for s, _, _ in rows] == [1, 2, 3, 4]
    alphas = [a for _, _, a in rows]
    assert all(1 / 3 <= a <= 0.8 for a in alphas) and len(set(alphas)) == 4   # a new alpha every step
    assert all(np.isfinite(loss) for _, loss, _ in rows)

    # resume from the step-2 checkpoint: steps 3..4 come out as the killed run logged them
    for name in os.listdir(os.path.join(workdir, "checkpoints")):
        if not name.startswith("2"):
            shutil.rmtree(os.path.join(workdir, "checkpoints", name))
    metrics = train.train_and_evaluate(load_config(CONFIG, "test"), workdir, progress=False, devices=jax.devices()[:1])
    assert _losses(workdir) == rows, "steps 3..4 after the resume differ from the killed run's"
    assert code == -signal.SIGKILL, f"the child was not killed mid-run (exit {code})"
    assert sorted(metrics) == ["eval_alpha0.33", "eval_alpha0.5", "eval_alpha0.65", "eval_alpha0.8"]
    for m in metrics.values():
        assert m["images"] == 8 and 0.0 <= m["AP"] <= 100.0 and 0.0 <= m["AP50"] <= 100.0

    # the table common.evaluate prints: AP and transformer GFLOPs per alpha
    table = tasks.get_task(load_config(CONFIG, "test").task)(load_config(CONFIG, "test")).summarize(metrics)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["pass", "AP", "AP50"] and lines[1].startswith("eval_alpha0.33")
    gflops = [float(line.split()[-1]) for line in lines[1:]]
    assert gflops == sorted(gflops) and gflops[0] < gflops[-1]               # fewer tokens, fewer FLOPs

    from PIL import Image
    from pnp_detr.predict import predict_files
    image = str(tmp_path / "shapes.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 150, 3), np.uint8)).save(image)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    out = str(tmp_path / "pictures")
    results, failed = predict_files(load_config(CONFIG, "test"), workdir, [image, str(tmp_path / "broken.png")],
                                    out, alpha=0.5, threshold=0.0)
    assert len(results[image]) == 10 and "broken.png" in failed[0]       # every query of the tiny model
    picture = Image.open(os.path.join(out, "shapes.png"))
    assert picture.size[0] > 2 * 150                                      # boxes beside the polled cells
    saved = json.load(open(os.path.join(out, "shapes.json")))
    assert saved["alpha"] == 0.5 and len(saved["detections"]) == 10


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
                               two_steps({"data": 1, "fsdp": 1, "model": 1}, jax.devices()[:1]), rtol=1e-4)
