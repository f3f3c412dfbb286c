import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
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


def _grouped(groups, **optim_fields):
    c = classification_config()
    c.optim.name, c.optim.lr, c.optim.weight_decay, c.optim.momentum = "sgd", 0.1, 0.0, 0.0
    c.schedule.name, c.schedule.warmup_epochs, c.num_epochs = "constant", 0.0, 10
    c.optim.groups = groups
    for k, v in optim_fields.items():
        c.optim[k] = v
    return optim.make_optimizer(c, steps_per_epoch=1, params_like=_params())[0]


def _updates(tx, grads_value=1.0, steps=1):
    params = _params()
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, grads_value), params)
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return updates, params, state


def test_frozen_groups_never_change_keep_no_state_and_are_not_clipped():
    frozen = ({"pattern": "^(stem|blocks_0)/", "frozen": True},)
    tx = _grouped(frozen, weight_decay=0.5, momentum=0.9, clip_norm=1.0)
    _, params, state = _updates(tx, grads_value=100.0, steps=3)
    init = _params()
    for name in ("stem", "blocks_0"):
        chex.assert_trees_all_equal(params[name], init[name])
    assert not np.allclose(params["head"]["kernel"], init["head"]["kernel"])
    # momentum buffers exist for the trained leaves only (scalars are the schedules' step counts)
    n_state = sum(int(np.prod(np.shape(x))) for x in jax.tree_util.tree_leaves(state) if np.ndim(x))
    n_trained = sum(int(np.prod(np.shape(x))) for k, v in init.items() if k not in ("stem", "blocks_0")
                    for x in jax.tree_util.tree_leaves(v))
    assert n_state == n_trained
    # clipping measures the trained gradients only: the same update as if the frozen ones were absent
    u_frozen, _, _ = _updates(_grouped(frozen, clip_norm=1.0), grads_value=100.0)
    norm = float(optax.global_norm({k: v for k, v in u_frozen.items() if k not in ("stem", "blocks_0")}))
    assert norm == pytest.approx(0.1 * 1.0, rel=1e-5)


def test_lr_and_weight_decay_multipliers_scale_their_group_only():
    base, _, _ = _updates(_grouped((), weight_decay=0.5))
    scaled, _, _ = _updates(_grouped(({"pattern": "^head/", "lr_mult": 0.1},
                                      {"pattern": "^blocks_1/", "wd_mult": 0.0}), weight_decay=0.5))
    np.testing.assert_allclose(scaled["head"]["kernel"], 0.1 * base["head"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(scaled["stem"]["kernel"], base["stem"]["kernel"], rtol=1e-6)
    # blocks_1: plain gradient step without decay (-0.1 * 1) instead of -0.1 * (1 + 0.5 * 1)
    np.testing.assert_allclose(scaled["blocks_1"]["fc"]["kernel"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(base["blocks_1"]["fc"]["kernel"], -0.15, rtol=1e-6)


def test_layer_decay_rule_scales_by_depth():
    u, _, _ = _updates(_grouped(({"pattern": ".", "layer_decay": 0.5},)))
    # ids: stem 0, blocks_0 1, blocks_1 2, head 3 = top -> lr x 0.5^(3 - id)
    np.testing.assert_allclose(u["stem"]["kernel"], -0.1 * 0.125, rtol=1e-6)
    np.testing.assert_allclose(u["blocks_1"]["fc"]["kernel"], -0.1 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(u["head"]["kernel"], -0.1, rtol=1e-6)


def test_group_summary_counts_every_parameter_once_first_rule_wins():
    groups = optim.ParamGroups(({"pattern": "kernel$", "lr_mult": 0.1}, {"pattern": "^head/", "frozen": True}))
    summary = groups.summary(_params())
    total = sum(int(np.prod(np.shape(x))) for x in jax.tree_util.tree_leaves(_params()))
    assert sum(n for _, _, n in summary) == total
    kernels = 3 * 3 * 3 * 8 + 8 * 8 + 8 * 8 + 8 * 10
    assert summary[0][2] == kernels and summary[1][2] == 10          # head/kernel went to rule 0
    assert summary[-1][0] == "default" and "lr_mult=0.1" in summary[0][0]
    assert "group default" in groups.describe(_params())
    with pytest.raises(ValueError, match="takes only"):
        optim.ParamGroups(({"pattern": "x", "lr": 0.1},))
