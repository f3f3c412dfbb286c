"""The same train step on 1 device and on a (data=4, model=2) mesh of 8 fake CPU devices."""
import jax
import numpy as np
import pytest

from common import sharding
from common.runner import Run
from tests.common.configs import tiny_config


def _batch(seed=0, n=16):
    rng = np.random.default_rng(seed)
    return {"image": rng.standard_normal((n, 32, 32, 3)).astype(np.float32),
            "label": rng.integers(0, 10, n).astype(np.int32)}


def _three_steps(config, devices):
    run = Run(config, devices=devices)
    state = run.init_state()
    step = run.jit_train_step()
    losses = []
    for i in range(3):
        state, metrics = step(state, sharding.global_batch(_batch(i), run.mesh),
                              jax.random.PRNGKey(i))
        losses.append(float(metrics["train/loss"]))
    return run, state, losses


def test_mesh_shapes_and_errors():
    assert dict(sharding.make_mesh({"data": -1, "fsdp": 1, "model": 2}).shape) == \
        {"data": 4, "fsdp": 1, "model": 2}
    with pytest.raises(ValueError, match="needs 6 devices"):
        sharding.make_mesh({"data": 3, "model": 2})


def _on_mesh(mesh: dict, devices):
    c = tiny_config()
    c.mesh = mesh
    return _three_steps(c, devices)


def test_data_model_sharded_step_equals_single_device_step():
    assert jax.device_count() == 8
    _, s1, l1 = _on_mesh({"data": 1, "fsdp": 1, "model": 1}, jax.devices()[:1])
    run8, s8, l8 = _on_mesh({"data": 4, "fsdp": 1, "model": 2}, jax.devices())
    # the model axis really shards MLP kernels (tensor parallelism), not only the batch
    fc1 = run8.state_sharding.model.params["network_0_0"]["mlp"]["fc1"]["kernel"]
    assert fc1.spec[1] == "model"
    assert len(s8.model.params["network_0_0"]["mlp"]["fc1"]["kernel"].sharding.device_set) == 8
    np.testing.assert_allclose(l8, l1, rtol=2e-5)
    for a, b in zip(jax.tree_util.tree_leaves(s8.model.params), jax.tree_util.tree_leaves(s1.model.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_fsdp_sharded_step_equals_single_device_step():
    _, _, l1 = _on_mesh({"data": 1, "fsdp": 1, "model": 1}, jax.devices()[:1])
    _, _, l8 = _on_mesh({"data": 2, "fsdp": 4, "model": 1}, jax.devices())
    np.testing.assert_allclose(l8, l1, rtol=2e-5)


def test_bfloat16_compute_with_ema_and_layer_decay():
    """Params stay float32 under bfloat16 compute; the EMA tracks params; layer-wise lr
    decay and LAMB build from config and train."""
    c = tiny_config(**{"model.dtype": "bfloat16", "optim.ema_decay": 0.5,
                       "optim.groups": ({"pattern": ".", "layer_decay": 0.75},),
                       "optim.name": "lamb"})
    c.mesh = {"data": 1, "fsdp": 1, "model": 1}
    run, state, losses = _three_steps(c, jax.devices()[:1])
    assert all(np.isfinite(losses))
    leaves = jax.tree_util.tree_leaves(state.model.params)
    assert all(leaf.dtype == np.float32 for leaf in leaves)
    ema = jax.tree_util.tree_leaves(state.model.ema_params)
    init = jax.tree_util.tree_leaves(run.init_state().model.params)
    # after 3 steps with decay 0.5 the EMA sits strictly between the init and the params
    k = [i for i, leaf in enumerate(leaves) if leaf.ndim == 4][0]
    d_ema, d_par = np.abs(np.asarray(ema[k]) - np.asarray(init[k])), np.abs(np.asarray(leaves[k]) - np.asarray(init[k]))
    assert 0 < d_ema.sum() < d_par.sum()
