"""One ViP train step sharded over a (data=4, model=2) mesh of 8 CPU devices equals the
same step on one device (params laid out by their logical axis names)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from permutator import create_model
from tests.permutator.util import TINY, TINY_IMAGE, random_variables

RULES = (("batch", "data"), ("embed", None), ("mlp", "model"), ("classes", None),
         ("conv_in", None), ("conv_out", "model"), ("tokens", None))


def make_step(model, tx):
    def step(params, opt_state, images, labels, rng):
        def loss_fn(p):
            logits = model.apply({"params": p}, images, train=True, rngs={"drop_path": rng})
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    return step


def run(mesh, model, tx, specs, init_params, images, labels, rng):
    param_sh = nn.logical_to_mesh_sharding(specs, mesh, RULES)["params"]
    params = jax.device_put(init_params, param_sh)
    opt_sh = jax.tree.map(lambda _: NamedSharding(mesh, P()), jax.eval_shape(tx.init, params))
    opt_state = jax.device_put(tx.init(params), opt_sh)
    batch_sh = NamedSharding(mesh, P("data"))
    step = jax.jit(make_step(model, tx),
                   in_shardings=(param_sh, None, batch_sh, batch_sh, None),
                   out_shardings=(param_sh, None, NamedSharding(mesh, P())))
    new_params, _, loss = step(params, opt_state, jax.device_put(images, batch_sh),
                               jax.device_put(labels, batch_sh), rng)
    return jax.device_get(new_params), float(loss), new_params


def test_sharded_train_step_equals_single_device():
    if jax.device_count() < 8:
        pytest.fail("needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8 (tests/conftest.py)")
    model = create_model("vip_s7", num_classes=10, drop_path_rate=0.1, **TINY)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(8, TINY_IMAGE, TINY_IMAGE, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, size=8), jnp.int32)
    specs = nn.get_partition_spec(jax.eval_shape(model.init, jax.random.PRNGKey(0), images[:1]))
    init_params = random_variables(model, TINY_IMAGE, scale=0.05)["params"]
    tx = optax.adamw(1e-3, weight_decay=0.05)
    key = jax.random.PRNGKey(1)

    single = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    multi = Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
    want, want_loss, _ = run(single, model, tx, specs, init_params, images, labels, key)
    got, got_loss, sharded = run(multi, model, tx, specs, init_params, images, labels, key)

    # tensor-parallel kernels really are split over the model axis
    kernel = sharded["network_0_0"]["attn"]["mlp_h"]["kernel"]
    assert kernel.sharding.spec == P(None, "model")
    assert kernel.addressable_shards[0].data.shape == (32, 16)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got, want)
    assert not np.allclose(got["head"]["kernel"], init_params["head"]["kernel"])
