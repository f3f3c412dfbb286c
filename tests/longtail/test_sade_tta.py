"""SADE's test-time self-supervised aggregation: the objective, the weight fit on hand-made
expert logits, and the stage end to end on an (untrained) Digits-LT SADE model."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import checkpoint
from common.runner import evaluate_checkpoint
from longtail import sade_tta
from longtail.task import LongTailTask
from tests.common.configs import load_config


def test_consistency_loss_is_minus_one_for_identical_views():
    z = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 5))
    assert float(sade_tta.consistency_loss(jnp.zeros(3), z, z)) == pytest.approx(-1.0, abs=1e-6)


def test_weights_move_to_the_expert_that_agrees_with_itself():
    rng = np.random.default_rng(0)

    def pairs():
        for _ in range(200):
            stable = 5 * rng.normal(size=(16, 1, 10))
            z1 = np.concatenate([stable, 5 * rng.normal(size=(16, 2, 10))], 1)
            z2 = np.concatenate([stable, 5 * rng.normal(size=(16, 2, 10))], 1)
            yield jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)
    w = sade_tta.fit_weights(pairs(), 3, lr=1.0)
    assert w.sum() == pytest.approx(1.0, abs=1e-6)
    assert w[0] > 0.5 and w[0] > w[1] and w[0] > w[2]


def test_tta_stage_writes_weights_that_evaluation_uses(tmp_path):
    config = load_config("configs/longtail/digits_lt.py", "sade,test")
    variables = nn.meta.unbox(LongTailTask(config).init_variables(jax.random.PRNGKey(0)))
    model_dir = checkpoint.save_variables(str(tmp_path / "sade"), variables)
    path = sade_tta.fit(config, model_dir, str(tmp_path / "tta"), epochs=0.3, batch_size=64)
    w = np.asarray(checkpoint.load_any(path)["aggregation"]["weights"])
    assert w.shape == (3,) and w.sum() == pytest.approx(1.0, abs=1e-5) and not np.allclose(w, 1 / 3)
    assert {"top1", "many", "medium", "few"} <= set(evaluate_checkpoint(config, path, progress=False)["eval"])
