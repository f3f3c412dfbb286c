"""Invariants of the PnP sampler (paper Sec. 3.1-3.2; official `SortSampler`): n_b + M
attended tokens per image, padded cells change nothing that is attended, the score net is
trained only through the fine tokens, a traced alpha, the guarded empty pool."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pnp_detr.position import sine_position_embedding
from pnp_detr.sampler import SortSampler
from pnp_detr.transformer import Transformer

GRID, VALID, D, M = (6, 7), ((6, 7), (4, 5), (3, 2)), 16, 3


def inputs(seed=0):
    b, (h, w) = len(VALID), GRID
    valid = np.zeros((b, h, w), bool)
    for i, (vh, vw) in enumerate(VALID):
        valid[i, :vh, :vw] = True
    x = np.random.default_rng(seed).standard_normal((b, h * w, D)).astype(np.float32)
    pos = sine_position_embedding(jnp.asarray(valid), D // 2).reshape(b, h * w, D)
    return jnp.asarray(x), jnp.asarray(valid.reshape(b, -1)), pos


@pytest.fixture(scope="module")
def sampler():
    model = SortSampler(num_pool_tokens=M)
    x, valid, pos = inputs()
    return model, jax.jit(model.init, static_argnums=4)(jax.random.PRNGKey(0), x, valid, pos, 0.5)


def counts(valid, alpha):
    return (np.asarray(valid).sum(1).astype(np.float32) * np.float32(alpha)).astype(np.int32)


@pytest.mark.parametrize("alpha", [0.33, 0.5, 0.65, 0.8])
def test_attended_tokens_per_image_are_n_plus_m_for_static_and_traced_alpha(sampler, alpha):
    model, variables = sampler
    x, valid, pos = inputs()
    static = model.apply(variables, x, valid, pos, alpha)
    traced = jax.jit(model.apply)(variables, x, valid, pos, jnp.float32(alpha))
    n = counts(valid, alpha)
    for out in (static, traced):
        np.testing.assert_array_equal(np.asarray(out.valid).sum(1), n + M)
        np.testing.assert_array_equal(np.asarray(out.poll_valid).sum(1), n)
    assert static.tokens.shape[1] == int(np.float32(42) * np.float32(alpha)) + M
    assert traced.tokens.shape[1] == int(np.float32(42) * np.float32(0.8)) + M
    k = static.poll_index.shape[1]
    mask = np.asarray(static.poll_valid)
    for a, b in ((static.tokens[:, :k], traced.tokens[:, :k]), (static.tokens[:, k:], traced.tokens[:, -M:]),
                 (static.pos[:, k:], traced.pos[:, -M:])):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(a[mask] if a.shape[1] == k else a, b[mask] if b.shape[1] == k else b, atol=1e-6)
    np.testing.assert_allclose(float(static.sample_reg_loss), float(traced.sample_reg_loss), atol=1e-7)


def test_fine_slots_are_the_top_scored_valid_cells_and_the_regulariser_their_mean(sampler):
    model, variables = sampler
    x, valid, pos = inputs()
    out = model.apply(variables, x, valid, pos, 0.5)
    p = nn.meta.unbox(variables["params"])
    hidden = jax.nn.relu(x @ p["score_pred_net_0"]["kernel"] + p["score_pred_net_0"]["bias"])
    scores = np.asarray(jax.nn.sigmoid(hidden @ p["score_pred_net_2"]["kernel"] + p["score_pred_net_2"]["bias"]))[..., 0]
    n = counts(valid, 0.5)
    top = []
    for b in range(len(VALID)):
        ranked = np.argsort(-np.where(np.asarray(valid[b]), scores[b], -1.0), kind="stable")
        np.testing.assert_array_equal(np.asarray(out.poll_index[b, :n[b]]), ranked[:n[b]])
        top.append(scores[b, ranked[:n.max()]])
    np.testing.assert_allclose(float(out.sample_reg_loss), np.mean(top), rtol=1e-6)


def test_padded_cells_change_no_attended_output(sampler):
    model, variables = sampler
    x, valid, pos = inputs()
    noise = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)) * 10
    x2 = jnp.where(valid[..., None], x, noise)
    a, b = model.apply(variables, x, valid, pos, 0.5), model.apply(variables, x2, valid, pos, 0.5)
    keep = np.asarray(a.valid)
    np.testing.assert_array_equal(np.asarray(a.valid), np.asarray(b.valid))
    np.testing.assert_array_equal(np.asarray(a.tokens)[keep], np.asarray(b.tokens)[keep])
    np.testing.assert_array_equal(np.asarray(a.pos)[keep], np.asarray(b.pos)[keep])
    # (sample_reg_loss may change: as the official mean over the first N_max slots, it reads the scores
    # of padded cells where an image has fewer valid cells than N_max, as the third image here)
    # ... nor the transformer's output (sampler -> encoder -> decoder)
    transformer = Transformer(num_heads=2, ffn_dim=32, num_encoder_layers=1, num_decoder_layers=1, num_pool_tokens=M)
    query_pos = jnp.asarray(np.random.default_rng(2).standard_normal((5, D)).astype(np.float32))
    tv = jax.jit(transformer.init, static_argnums=5)(jax.random.PRNGKey(0), x, valid, pos, query_pos, 0.5)
    run = jax.jit(lambda x: transformer.apply(tv, x, valid, pos, query_pos, 0.5)[0])
    np.testing.assert_allclose(np.asarray(run(x)), np.asarray(run(x2)), atol=1e-6)


def test_score_net_is_trained_only_through_the_fine_tokens(sampler):
    model, variables = sampler
    x, valid, pos = inputs()
    r = jax.random.normal(jax.random.PRNGKey(3), (len(VALID), 64, D))

    def grads(part: str):
        def f(params):
            out = model.apply({"params": params}, x, valid, pos, 0.5)
            k = out.poll_index.shape[1]
            tokens = {"fine": out.tokens[:, :k] * out.valid[:, :k, None], "coarse": out.tokens[:, k:],
                      "coarse_pos": out.pos[:, k:]}[part]
            return (tokens * r[:, :tokens.shape[1]]).sum()
        g = nn.meta.unbox(jax.jit(jax.grad(f))(variables["params"]))
        return [np.abs(np.asarray(v)).max() for k, tree in g.items() if k.startswith("score_pred_net")
                for v in jax.tree_util.tree_leaves(tree)]

    assert min(grads("fine")) > 0
    assert max(grads("coarse")) == 0.0 and max(grads("coarse_pos")) == 0.0


def test_nothing_left_to_pool_gives_zero_coarse_tokens_not_nan(sampler):
    model, variables = sampler
    x, valid, pos = inputs()
    out = jax.jit(model.apply, static_argnums=4)(variables, x, valid, pos, 1.0)      # n_b = every valid cell
    coarse = np.asarray(out.tokens[:, -M:])
    np.testing.assert_array_equal(coarse, 0.0)
    np.testing.assert_array_equal(np.asarray(out.pos[:, -M:]), 0.0)
    g = jax.jit(jax.grad(lambda p: model.apply({"params": p}, x, valid, pos, 1.0).tokens.sum()))(variables["params"])
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree_util.tree_leaves(g))


def test_traced_alpha_above_max_alpha_is_clipped_to_the_capacity(sampler):
    model, variables = sampler
    x, valid, pos = inputs()
    out = jax.jit(model.apply)(variables, x, valid, pos, jnp.float32(0.95))
    capacity = int(np.float32(42) * np.float32(model.max_alpha))
    np.testing.assert_array_equal(np.asarray(out.poll_valid).sum(1), np.minimum(counts(valid, 0.95), capacity))
