"""common.matching against scipy.optimize.linear_sum_assignment on random costs."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.matching import hungarian_match
from tests.conftest import require


def _reference_cost(cost, valid):
    """Optimal total per matrix, padded columns removed (the official matcher's problem)."""
    from scipy.optimize import linear_sum_assignment
    cols = np.flatnonzero(valid)
    r, c = linear_sum_assignment(cost[:, cols])
    return cost[r, cols[c]].sum(), len(r)


def _check(cost, valid, out):
    pred, tgt, ok = map(np.asarray, out)
    q, t = cost.shape[-2:]
    n = min(q, t)
    lead = cost.shape[:-2]
    valid = np.broadcast_to(valid, lead + (t,))
    assert pred.shape == tgt.shape == ok.shape == lead + (n,)
    assert pred.dtype == tgt.dtype == np.int32 and ok.dtype == bool
    for idx in np.ndindex(*lead):
        p, g, o = pred[idx], tgt[idx], ok[idx]
        assert len(set(p.tolist())) == n and len(set(g.tolist())) == n   # a complete assignment
        np.testing.assert_array_equal(o, valid[idx][g])                 # valid = real targets
        ref, m = _reference_cost(cost[idx], valid[idx])
        assert o.sum() == m
        np.testing.assert_allclose(cost[idx][p[o], g[o]].sum(), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("solver", ["scipy", "jax"])
@pytest.mark.parametrize("q,t", [(6, 4), (4, 6), (5, 5), (1, 3), (3, 1)])
def test_matches_scipy_over_layers_and_images(solver, q, t):
    require("scipy")
    rng = np.random.default_rng(q * 10 + t)
    layers, images = 3, 4
    cost = rng.normal(size=(layers, images, q, t)).astype(np.float32)
    valid = rng.random((images, t)) < 0.6
    valid[0], valid[1] = False, True                   # no targets / all real
    out = jax.jit(hungarian_match, static_argnames="solver")(cost, valid, solver=solver)
    _check(cost, valid, out)


@pytest.mark.parametrize("solver", ["scipy", "jax"])
def test_vmap_grad_and_nonfinite(solver):
    require("scipy")
    rng = np.random.default_rng(3)
    cost = rng.normal(size=(2, 3, 7, 5)).astype(np.float32)
    valid = rng.random((2, 3, 5)) < 0.7
    out = jax.vmap(lambda c, v: hungarian_match(c, v, solver=solver))(cost, valid)
    _check(cost, valid, out)

    def matched_cost(c):
        p, g, o = hungarian_match(c, valid, solver=solver)
        picked = jnp.take_along_axis(jnp.take_along_axis(c, p[..., None], -2), g[..., None], -1)[..., 0]
        return jnp.sum(jnp.where(o, picked, 0.0))
    grad = jax.grad(matched_cost)(cost)          # gradient reaches the picked entries only
    assert np.all(np.isfinite(grad)) and set(np.unique(grad)) <= {0.0, 1.0}

    bad = cost.copy()
    bad[0, 0, 0, 0], bad[0, 0, 1, 1] = np.nan, np.inf
    pred, tgt, ok = hungarian_match(bad, valid, solver=solver)
    chex.assert_shape(pred, (2, 3, 5))


def test_ties_are_broken_as_scipy_does():
    """For the scipy solver the valid pairs are exactly linear_sum_assignment's."""
    from scipy.optimize import linear_sum_assignment
    cost = np.zeros((1, 4, 3), np.float32)           # all ties
    valid = np.array([[True, False, True]])
    pred, tgt, ok = map(np.asarray, hungarian_match(cost, valid, solver="scipy"))
    r, c = linear_sum_assignment(cost[0][:, [0, 2]])
    np.testing.assert_array_equal(pred[0][ok[0]], r)
    np.testing.assert_array_equal(tgt[0][ok[0]], np.array([0, 2])[c])


def test_unknown_solver():
    with pytest.raises(ValueError, match="solver"):
        hungarian_match(np.zeros((2, 2)), np.ones(2, bool), solver="greedy")
