"""DualFormer recipes: the official figures per config, and the `:test` preset running one
train step and a multi-view evaluation on synthetic_motion through the real pipeline."""
import glob
import os

import jax
import numpy as np
import pytest

from tests.common.configs import ROOT, load_config
from tests.conftest import require

CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs/dualformer/*.py")))


@pytest.mark.parametrize("path", CONFIGS)
def test_every_recipe_loads_with_its_presets(path):
    c = load_config(path)
    assert c.task == "dualformer.task:video_classification" and c.data.clip_len in (16, 32)
    assert c.batch_size in (64, 128) and c.optim.groups[1] == {"pattern": "^backbone/", "lr_mult": 0.1}
    for arg in ("test", "demo"):
        assert load_config(path, arg).data.name.startswith("synthetic_motion")


def test_official_figures():
    s = load_config("configs/dualformer/dualformer_small_k400.py")
    assert (s.batch_size, s.optim.grad_accum_steps, s.optim.weight_decay) == (64, 2, 0.02)
    assert (s.model.kwargs.drop_path_rate, s.schedule.warmup_epochs, s.data.frame_interval) == (0.2, 2.5, 2)
    u = load_config("configs/dualformer/dualformer_tiny_ucf101.py")
    assert (u.data.clip_len, u.data.frame_interval, u.data.test_crops, u.batch_size) == (16, 4, 3, 128)
    assert u.data.std == (1.0, 1.0, 1.0)
    k6 = load_config("configs/dualformer/dualformer_base_k600.py")
    assert (k6.model.num_classes, k6.optim.lr, k6.optim.weight_decay) == (600, 5e-4, 0.05)


def test_test_preset_trains_a_step_and_evaluates_views(tmp_path):
    require("cv2")
    from common.tasks import get_task
    c = load_config("configs/dualformer/dualformer_tiny_k400.py", "test")
    c.unlock()
    c.data.data_dir = str(tmp_path)
    task = get_task(c.task)(c)
    state = task.init(jax.random.PRNGKey(0))
    import flax.linen as nn
    state = nn.meta.unbox(state)
    batch = next(iter(task.input_pipeline("train", 0, 1, train=True)))
    assert batch["image"].shape == (4, 4, 32, 32, 3)
    state, metrics = jax.jit(task.train_step)(state, batch, jax.random.PRNGKey(1))
    assert np.isfinite(float(metrics["train/loss"]))
    ev = next(iter(task.input_pipeline("validation", 0, 1, train=False)))
    assert ev["image"].shape == (4, 2, 4, 32, 32, 3)  # 2 clips x 1 crop per video
    sums = jax.jit(task.eval_step)(state, ev)
    evaluator = task.make_evaluator(task.eval_passes()[0])
    evaluator.add(jax.device_get(sums))
    out = evaluator.compute()
    assert out["count"] == 4 and 0.0 <= out["top1"] <= 100.0 and 0.0 <= out["mean_class_accuracy"] <= 100.0
