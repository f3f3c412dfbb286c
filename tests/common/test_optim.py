import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import optim
from common.config import classification_config


def _params():
    return {"stem": {"kernel": jnp.ones((3, 3, 3, 8)), "bias": jnp.ones(8)},
            "blocks_0": {"norm": {"scale": jnp.ones(8)}, "fc": {"kernel": jnp.ones((8, 8))}},
            "blocks_1": {"fc": {"kernel": jnp.ones((8, 8))}},
            "pos_embed": jnp.ones((1, 4, 4, 8)),
            "head": {"kernel": jnp.ones((8, 10)), "bias": jnp.ones(10)}}


def test_decay_mask_excludes_1d_leaves_and_named_leaves():
    mask = optim.decay_mask(_params(), ("pos_embed",))
    assert mask["stem"]["kernel"] and mask["head"]["kernel"] and mask["blocks_0"]["fc"]["kernel"]
    assert not mask["stem"]["bias"] and not mask["blocks_0"]["norm"]["scale"]
    assert not mask["pos_embed"] and not mask["head"]["bias"]


def test_weight_decay_only_touches_masked_leaves():
    c = classification_config()
    c.optim.lr, c.optim.weight_decay, c.num_epochs = 0.1, 0.5, 10
    c.schedule.name, c.schedule.warmup_epochs = "constant", 0.0
    tx, _ = optim.make_optimizer(c, steps_per_epoch=1)
    params = _params()
    zero_grads = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    assert float(jnp.abs(updates["stem"]["bias"]).max()) == 0.0
    assert float(jnp.abs(updates["pos_embed"]).max()) == 0.0
    np.testing.assert_allclose(updates["head"]["kernel"], -0.1 * 0.5, rtol=1e-6)


def test_timm_cosine_schedule_with_warmup_and_cooldown():
    """timm's CosineLRScheduler as sail-sg/poolformer train.py runs it: starts at 1e-6, ramps
    linearly over 5 epochs, cosine phase t/T_decay, then cooldown at min_lr."""
    c = classification_config()
    c.schedule.warmup_epochs, c.schedule.warmup_init_lr, c.schedule.min_lr = 5, 1e-6, 1e-5
    c.schedule.cooldown_epochs = 10
    lr = optim.make_schedule(c.schedule, 4e-3, 310, steps_per_epoch=1)
    assert float(lr(0)) == pytest.approx(1e-6)
    assert float(lr(2.5)) == pytest.approx(1e-6 + (4e-3 - 1e-6) / 2, rel=1e-5)
    t = 150.0
    assert float(lr(t)) == pytest.approx(1e-5 + 0.5 * (4e-3 - 1e-5) * (1 + np.cos(np.pi * t / 300)), rel=1e-5)
    assert float(lr(305)) == pytest.approx(1e-5) and float(lr(250)) > 2e-5


def test_step_and_linear_schedules():
    c = classification_config()
    c.schedule.name, c.schedule.warmup_epochs, c.schedule.step_epochs = "step", 0.0, (8, 11)
    lr = optim.make_schedule(c.schedule, 1.0, 12, steps_per_epoch=10)
    assert [round(float(lr(s)), 6) for s in (0, 79, 80, 110)] == [1.0, 1.0, 0.1, 0.01]
    c.schedule.name, c.schedule.min_lr = "linear", 0.0
    lr = optim.make_schedule(c.schedule, 1.0, 10, steps_per_epoch=1)
    assert float(lr(5)) == pytest.approx(0.5)


def test_layer_decay_scales_depth_wise():
    ids, top = optim.layer_ids(_params())
    assert ids["stem"]["kernel"] == 0 and ids["blocks_0"]["fc"]["kernel"] == 1
    assert ids["blocks_1"]["fc"]["kernel"] == 2 and ids["head"]["kernel"] == top == 3


def test_clipping_and_accumulation():
    c = classification_config()
    c.optim.name, c.optim.lr, c.optim.weight_decay = "sgd", 1.0, 0.0
    c.optim.momentum, c.optim.clip_norm, c.optim.grad_accum_steps = 0.0, 1.0, 2
    c.schedule.name, c.schedule.warmup_epochs, c.num_epochs = "constant", 0.0, 10
    tx, _ = optim.make_optimizer(c, steps_per_epoch=1)
    p = {"w": jnp.zeros(4)}
    s = tx.init(p)
    u1, s = tx.update({"w": jnp.full(4, 10.0)}, s, p)
    assert float(jnp.abs(u1["w"]).max()) == 0.0            # first micro-step: no update yet
    u2, s = tx.update({"w": jnp.full(4, 30.0)}, s, p)
    np.testing.assert_allclose(float(jnp.linalg.norm(u2["w"])), 1.0, rtol=1e-5)  # clipped mean
