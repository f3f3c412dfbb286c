"""The official optimizer, declared in the recipes: mmcv's parameter groups as `optim.groups`
and the per-epoch cosine with per-iteration warmup as `schedule.name = "cosine_by_epoch"`."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import optim
from tests.common.configs import load_config


def _recipe(**overrides):
    c = load_config("configs/dualformer/dualformer_tiny_k400.py")
    c.optim.lr, c.num_epochs, c.optim.grad_accum_steps = 1.0, 10.0, 1
    for k, v in overrides.items():
        c.optim[k] = v
    return c


def test_schedule_warms_up_from_a_tenth_and_steps_cosine_per_epoch():
    c = _recipe()
    c.schedule.warmup_epochs, c.schedule.warmup_ratio, c.schedule.min_lr = 2.0, 0.1, 0.0
    lr = optim.make_schedule(c.schedule, 1e-3, 10, steps_per_epoch=100)
    assert float(lr(0)) == pytest.approx(1e-4)
    assert float(lr(100)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.1)) * (1 - 0.5 * 0.9))
    assert float(lr(200)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.2)))
    assert float(lr(250)) == float(lr(299))  # constant inside an epoch after warmup
    assert float(lr(999)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.9)), rel=1e-5)


def test_groups_give_pos_block_full_lr_no_decay_and_backbone_a_tenth_with_decay():
    params = {"backbone": {"pos_block_0": {"proj_0": {"kernel": jnp.ones((3, 3, 3, 1, 4))}},
                           "blocks_0_0": {"norm1": {"scale": jnp.ones((4,))}}},
              "cls_head": {"fc_cls": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones((2,))}}}
    c = _recipe(weight_decay=0.5)
    c.schedule.warmup_epochs = 0.0
    tx, _ = optim.make_optimizer(c, steps_per_epoch=1.0)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    upd, _ = tx.update(zeros, tx.init(params), params)
    # zero gradients: the update is the decoupled decay only, -lr_group * wd * p (1-d leaves included)
    np.testing.assert_allclose(upd["backbone"]["pos_block_0"]["proj_0"]["kernel"], 0.0)
    np.testing.assert_allclose(upd["backbone"]["blocks_0_0"]["norm1"]["scale"], -0.1 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(upd["cls_head"]["fc_cls"]["kernel"], -1.0 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(upd["cls_head"]["fc_cls"]["bias"], -1.0 * 0.5, rtol=1e-6)


def test_update_steps_accumulate_and_the_schedule_counts_updates():
    params = {"backbone": {"w": jnp.ones((2, 2))}, "cls_head": {"w": jnp.ones((2,))}}
    c = _recipe(grad_accum_steps=2, lr=1e-3)
    c.schedule.warmup_epochs = 0.0
    tx, sched = optim.make_optimizer(c, steps_per_epoch=10.0)
    state = tx.init(params)
    _, state = tx.update(jax.tree_util.tree_map(jnp.zeros_like, params), state, params)
    assert isinstance(state, optax.MultiStepsState)
    assert float(sched(0)) == pytest.approx(1e-3) and float(sched(21)) == float(sched(20))
