"""MLP token chunking is a field fixed when the model is built, not process state: the
factories resolve `token_chunk=-1` once, every family threads it to its Mlp's, and a
chunked model computes the same outputs and gradients as an unchunked one."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dualformer
import metaformer
import permutator
import volo
from common.layers import basic
from tests.common.test_features import FAMILIES, random_variables


def test_no_module_level_mutable_state():
    state = [k for k, v in vars(basic).items() if not k.startswith("__") and isinstance(v, (dict, list, set))]
    assert not state, state
    assert not hasattr(basic, "set_token_chunking") and not hasattr(basic, "default_token_chunk")
    assert basic.Mlp(4).token_chunk == 0
    assert basic.auto_token_chunk() == (1024 if jax.default_backend() == "cpu" else 0)


@pytest.mark.parametrize("package,name", [(metaformer, "poolformer_s12"), (volo, "volo_d1_224"),
                                          (permutator, "vip_s7"), (dualformer, "dualformer_tiny")])
def test_factories_resolve_auto_at_build_time(package, name):
    assert package.create_model(name).token_chunk == basic.auto_token_chunk()
    assert package.create_model(name, token_chunk=0).token_chunk == 0
    assert package.create_model(name, token_chunk=64).token_chunk == 64


def _loops(model, shape) -> int:
    """How many loops (lax.map over chunks) the forward program has."""
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))
    jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x))(variables, x)
    return str(jaxpr).count("scan[")


@pytest.mark.parametrize("family", ["metaformer", "volo", "permutator", "dualformer"])
def test_every_family_threads_token_chunk_to_its_mlps(family):
    model, shape, _ = FAMILIES[family]
    assert _loops(model.clone(token_chunk=0), shape) == 0
    assert _loops(model.clone(token_chunk=8), shape) > 0


def test_chunked_and_unchunked_models_agree_on_outputs_and_gradients():
    model, shape, _ = FAMILIES["metaformer"]       # 8x8 tokens x 2 images in stage 1: 128 rows
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    variables = random_variables(model, x)

    def run(token_chunk):
        m = model.clone(token_chunk=token_chunk)
        loss = lambda p: jnp.sum(jnp.sin(m.apply({**variables, "params": p}, x)))   # noqa: E731
        return jax.jit(lambda p: (m.apply({**variables, "params": p}, x), jax.grad(loss)(p)))(variables["params"])

    assert _loops(model.clone(token_chunk=24), shape) > 0
    (y0, g0), (y1, g1) = run(0), run(24)                              # 24 does not divide 128: padded chunks
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g1, g0)
