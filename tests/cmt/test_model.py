"""CMT model: the variant table's exact parameter counts (spec §3.7), causal linear attention
against a float64 restatement of fast-transformers' formula, its gradient, and the recurrent
form equal to the parallel form at every position (attention alone and the whole model)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from cmt import encoding
from cmt.model import VARIANTS, count_params, create_model, init_variables
from common.layers.linear_attention import (LinearAttentionState, causal_linear_attention,
                                            recurrent_linear_attention)
from tests.cmt import golden


@pytest.mark.parametrize("variant,count", [("cmt", 39_006_324), ("tiny", 272_500), ("small", 849_780)])
def test_parameter_counts(variant, count):
    assert count_params(create_model(variant)) == count


def test_official_breakdown():
    shapes = jax.eval_shape(lambda: init_variables(create_model("cmt")))
    n = lambda tree: sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))  # noqa: E731
    p = jax.tree_util.tree_map(lambda x: x, shapes["params"])
    from flax import linen as nn
    p = nn.meta.unbox(p)
    assert n(p["transformer_encoder"]) == 37_829_632 and n(p["transformer_encoder"]["layers_0"]) == 3_152_384
    assert n(p["project_concat_type"]) == 279_040 and n(p["encoder_in_linear"]) == 459_264
    assert n(p["proj_pitch"]) == 66_177 and n(p["encoder_emb_pitch"]) == 66_048
    assert shapes["buffers"]["pe"].shape == (20000, 512)
    assert len(jax.tree_util.tree_leaves(p)) + 1 == 228      # the official state dict's entries


def _reference(q, k, v, eps=1e-6):
    """fast-transformers CausalLinearAttention in float64 NumPy."""
    phi = lambda x: np.where(x > 0, x + 1, np.exp(x))  # noqa: E731 - elu + 1
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    fq, fk = phi(q), phi(k)
    num = np.einsum("nlhd,nlhm->nlhdm", fk, v).cumsum(1)
    out = np.einsum("nlhd,nlhdm->nlhm", fq, num)
    den = np.einsum("nlhd,nlhd->nlh", fq, fk.cumsum(1))
    return out * (1 / (den + eps))[..., None]


@pytest.mark.parametrize("chunk", [1, 16, 64, 300])
def test_linear_attention_matches_float64_formula(chunk):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 77, 3, 8)).astype(np.float32) for _ in range(3))
    got = jax.jit(lambda a, b, c: causal_linear_attention(a, b, c, chunk=chunk))(q, k, v)
    np.testing.assert_allclose(got, _reference(q, k, v), atol=1e-5, rtol=1e-5)


def test_linear_attention_recurrent_equals_parallel_and_has_gradients():
    rng = np.random.default_rng(1)
    q, k, v = (jnp.asarray(rng.standard_normal((2, 40, 2, 4)), jnp.float32) for _ in range(3))
    par = causal_linear_attention(q, k, v, chunk=16)
    state = LinearAttentionState.zeros(2, 2, 4, 4)
    for t in range(40):
        out, state = recurrent_linear_attention(q[:, t], k[:, t], v[:, t], state)
        np.testing.assert_allclose(out, par[:, t], atol=2e-6, rtol=1e-5)
    check_grads(lambda a, b, c: causal_linear_attention(a, b, c, chunk=8).sum(), (q[:, :12], k[:, :12], v[:, :12]),
                order=1, modes=("rev",), atol=2e-2, rtol=2e-2)


def test_recurrent_model_equals_parallel_at_every_position():
    model = create_model("tiny")
    variables = init_variables(model, jax.random.PRNGKey(3))
    rng = np.random.default_rng(2)
    prefix = jnp.asarray(np.stack([encoding.DEFAULT_PREFIX] * 2))
    x = jnp.asarray(golden.random_tokens(rng, 2, 48, encoding.VOCAB))
    h_par = jax.jit(lambda p, a: model.apply(variables, p, a, method=model.hidden))(prefix, x)
    cache = model.apply(variables, 2, method=model.init_cache)
    step_p = jax.jit(lambda c, r: model.apply(variables, r, c, method=model.step_prefix))
    step_m = jax.jit(lambda c, r: model.apply(variables, r, c, method=model.step_music))
    for i in range(7):
        _, cache = step_p(cache, prefix[:, i])
    for t in range(x.shape[1]):
        h, cache = step_m(cache, x[:, t])
        np.testing.assert_allclose(h, h_par[:, t], atol=2e-5, rtol=1e-5)
    assert sum(a.size for a in jax.tree_util.tree_leaves(cache)) == 2 * 2 * 4 * (16 * 16 + 16)   # constant state


def test_variants_table():
    assert VARIANTS["cmt"] == dict(d_model=512, num_layers=12, num_heads=8, ffn_dim=2048)
