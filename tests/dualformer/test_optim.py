"""The official optimizer groups and the per-epoch cosine with per-iteration warmup."""
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dualformer.optim import cosine_by_epoch, make_optimizer, param_groups


def test_schedule_warms_up_from_a_tenth_and_steps_cosine_per_epoch():
    lr = cosine_by_epoch(1e-3, epochs=10, steps_per_epoch=100, warmup_epochs=2, warmup_ratio=0.1)
    assert float(lr(0)) == pytest.approx(1e-4)
    assert float(lr(100)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.1)) * (1 - 0.5 * 0.9))
    assert float(lr(200)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.2)))
    assert float(lr(250)) == float(lr(299))  # constant inside an epoch after warmup
    assert float(lr(999)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.9)))


def test_groups_give_pos_block_full_lr_no_decay_and_backbone_a_tenth_with_decay():
    params = {"backbone": {"pos_block_0": {"proj_0": {"kernel": jnp.ones((3, 3, 3, 1, 4))}},
                           "blocks_0_0": {"norm1": {"scale": jnp.ones((4,))}}},
              "cls_head": {"fc_cls": {"kernel": jnp.ones((4, 2))}}}
    assert param_groups(params)["backbone"]["blocks_0_0"]["norm1"]["scale"] == "backbone"
    c = ml_collections.ConfigDict(dict(
        optim=dict(lr=1.0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.5, backbone_lr_mult=0.1, clip_norm=0.0,
                   grad_accum_steps=1),
        schedule=dict(warmup_epochs=0.0, warmup_ratio=0.1), num_train_steps=-1, num_epochs=10.0))
    tx, _ = make_optimizer(c, steps_per_epoch=1.0)
    zeros = jax_zeros(params)
    upd, _ = tx.update(zeros, tx.init(params), params)
    # zero gradients: the update is the decoupled decay only, -lr_group * wd * p
    np.testing.assert_allclose(upd["backbone"]["pos_block_0"]["proj_0"]["kernel"], 0.0)
    np.testing.assert_allclose(upd["backbone"]["blocks_0_0"]["norm1"]["scale"], -0.1 * 0.5)
    np.testing.assert_allclose(upd["cls_head"]["fc_cls"]["kernel"], -1.0 * 0.5)


def jax_zeros(tree):
    import jax
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


def test_update_steps_are_optax_compatible():
    params = {"backbone": {"w": jnp.ones((2, 2))}, "cls_head": {"w": jnp.ones((2,))}}
    c = ml_collections.ConfigDict(dict(
        optim=dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, backbone_lr_mult=0.1, clip_norm=0.0,
                   grad_accum_steps=2),
        schedule=dict(warmup_epochs=0.0, warmup_ratio=0.1), num_train_steps=-1, num_epochs=1.0))
    tx, sched = make_optimizer(c, steps_per_epoch=10.0)
    state = tx.init(params)
    grads = jax_zeros(params)
    upd, state = tx.update(grads, state, params)
    assert isinstance(state, optax.MultiStepsState)
    assert float(sched(0)) == pytest.approx(1e-3)
