"""Hungarian (minimum-cost bipartite) matching of predictions to padded targets.

`hungarian_match(cost, target_valid, solver=...)` takes cost [..., Q, T] (any leading
axes, e.g. decoder layers x images) and target_valid [..., T] (broadcast against the
leading axes), and returns int32 `pred_index`, `target_index` and a bool `valid`, each
[..., min(Q, T)]: a complete assignment (every index distinct within its matrix) whose
`valid` pairs are the matched real targets. The pairs restricted to `valid` are an
optimal assignment of the cost matrix with the padded target columns removed, which is
what facebookresearch/detr models/matcher.py `HungarianMatcher.forward` solves per image
with `scipy.optimize.linear_sum_assignment(C[i])` on the image's own targets. Their order
within a matrix is unspecified. No gradient flows into the cost.

Solvers:
- "scipy": `scipy.optimize.linear_sum_assignment` on the host through one
  `jax.pure_callback` for all leading axes; padded columns are sliced off on the host,
  so for identical costs the valid pairs equal the official matcher's (same solver, same
  tie-breaking). A device -> host round trip per call.
- "jax": an exact O(n^2 m) shortest-augmenting-path Hungarian algorithm (potentials,
  Kuhn-Munkres as in Jonker & Volgenant 1987; google-research/scenic
  model_lib/matchers/hungarian_jax.py is a TPU formulation of the same algorithm) in
  `lax.scan` + `lax.while_loop`, vmapped: no host round trip, runs under jit/pjit on any
  device. Padded columns get one constant cost per matrix, larger than every real cost,
  so the real sub-assignment stays optimal (any assignment that leaves a real column
  unused while a row sits on a padded column improves by moving that row). Ties may be
  broken differently from scipy: the total cost is the same, the indices may not be.

Non-finite costs (a diverged model) are replaced by finite extremes before solving, so
the call returns and the NaN reaches the loss, where the training loop reports it.
"""
import jax
import jax.numpy as jnp
import numpy as np

SOLVERS = ("scipy", "jax")


def hungarian_match(cost, target_valid, solver: str = "scipy"):
    """(pred_index, target_index, valid), each [..., min(Q, T)]; see the module doc."""
    if solver not in SOLVERS:
        raise ValueError(f"matching solver {solver!r} is not one of {SOLVERS}")
    cost = jax.lax.stop_gradient(jnp.asarray(cost))
    if cost.ndim < 2:
        raise ValueError(f"cost must be [..., Q, T], got shape {cost.shape}")
    target_valid = jnp.broadcast_to(jnp.asarray(target_valid, bool), cost.shape[:-2] + cost.shape[-1:])
    cost = _finite(cost, target_valid)
    if solver == "scipy":
        return _match_scipy(cost, target_valid)
    return _match_jax(cost, target_valid)


def _finite(cost, target_valid):
    """NaN / +inf -> (largest finite real cost) + 1, -inf -> (smallest) - 1, per matrix."""
    real = target_valid[..., None, :] & jnp.isfinite(cost)
    hi = jnp.max(jnp.where(real, cost, -jnp.inf), axis=(-2, -1), keepdims=True)
    lo = jnp.min(jnp.where(real, cost, jnp.inf), axis=(-2, -1), keepdims=True)
    hi = jnp.where(jnp.isfinite(hi), hi, 0.0)
    lo = jnp.where(jnp.isfinite(lo), lo, 0.0)
    cost = jnp.where(jnp.isnan(cost) | (cost == jnp.inf), hi + 1, cost)
    return jnp.where(cost == -jnp.inf, lo - 1, cost)


# ---------------------------------------------------------------------- scipy on the host
def _solve_host(cost: np.ndarray, valid: np.ndarray):
    from scipy.optimize import linear_sum_assignment
    *lead, q, t = cost.shape
    n = min(q, t)
    cost = np.asarray(cost).reshape(-1, q, t)
    valid = np.broadcast_to(np.asarray(valid, bool), tuple(lead) + (t,)).reshape(-1, t)
    pred = np.zeros((len(cost), n), np.int32)
    tgt = np.zeros((len(cost), n), np.int32)
    ok = np.zeros((len(cost), n), bool)
    for k in range(len(cost)):
        cols = np.flatnonzero(valid[k])
        rows, sub = linear_sum_assignment(cost[k][:, cols])
        m = len(rows)
        pred[k, :m], tgt[k, :m], ok[k, :m] = rows, cols[sub], True
        # complete with the unused predictions on the padded targets
        free_rows = np.setdiff1d(np.arange(q), rows, assume_unique=True)[:n - m]
        free_cols = np.flatnonzero(~valid[k])[:n - m]
        pred[k, m:], tgt[k, m:] = free_rows, free_cols
    shape = tuple(lead) + (n,)
    return pred.reshape(shape), tgt.reshape(shape), ok.reshape(shape)


def _match_scipy(cost, target_valid):
    shape = cost.shape[:-2] + (min(cost.shape[-2:]),)
    out = (jax.ShapeDtypeStruct(shape, jnp.int32), jax.ShapeDtypeStruct(shape, jnp.int32),
           jax.ShapeDtypeStruct(shape, jnp.bool_))
    # broadcast_all: under an outer vmap the callback still runs once, on the whole batch
    return jax.pure_callback(_solve_host, out, cost, target_valid, vmap_method="broadcast_all")


# ---------------------------------------------------------------------- pure JAX
def _hungarian_rows(cost):
    """Optimal assignment of every row of cost [n, m] (n <= m) to distinct columns:
    int32 [n] column of each row. Potentials u (rows), v (columns) and the classical
    augmenting-path search from each new row; index 0 of the column arrays is a virtual
    column holding the row being inserted (1-based rows and columns inside)."""
    n, m = cost.shape
    dtype = cost.dtype
    inf = jnp.array(jnp.inf, dtype)

    def insert_row(carry, i):
        u, v, p = carry                        # p[j]: row on column j (0 = free)
        p = p.at[0].set(i)

        def search_cond(s):
            p, j0 = s[2], s[5]
            return p[j0] != 0

        def search_step(s):
            u, v, p, used, (minv, way), j0 = s
            used = used.at[j0].set(True)
            i0 = p[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv)
            minv = jnp.where(better, cur, minv)
            way = jnp.where(better, j0, way)
            masked = jnp.where(free, minv, inf)
            j1 = jnp.argmin(masked).astype(jnp.int32) + 1
            delta = masked[j1 - 1]
            u = u.at[jnp.where(used, p, n + 1)].add(delta, mode="drop")
            v = jnp.where(used, v - delta, v)
            minv = jnp.where(free, minv - delta, minv)
            return u, v, p, used, (minv, way), j1

        init = (u, v, p, jnp.zeros(m + 1, bool),
                (jnp.full(m, inf), jnp.zeros(m, jnp.int32)), jnp.int32(0))
        u, v, p, _, (_, way), j0 = jax.lax.while_loop(search_cond, search_step, init)

        def back_step(s):
            p, j0 = s
            j1 = way[j0 - 1]
            return p.at[j0].set(p[j1]), j1

        p, _ = jax.lax.while_loop(lambda s: s[1] != 0, back_step, (p, j0))
        return (u, v, p), None

    init = (jnp.zeros(n + 1, dtype), jnp.zeros(m + 1, dtype), jnp.zeros(m + 1, jnp.int32))
    (_, _, p), _ = jax.lax.scan(insert_row, init, jnp.arange(1, n + 1, dtype=jnp.int32))
    rows = p[1:]
    return jnp.zeros(n, jnp.int32).at[jnp.where(rows > 0, rows - 1, n)].set(
        jnp.arange(m, dtype=jnp.int32), mode="drop")


def _match_one(cost, valid):
    q, t = cost.shape
    hi = jnp.max(jnp.where(valid[None, :], cost, -jnp.inf))
    hi = jnp.where(jnp.isfinite(hi), hi, 0.0)
    cost = jnp.where(valid[None, :], cost, hi + 1 + jnp.abs(hi))
    if q <= t:
        pred = jnp.arange(q, dtype=jnp.int32)
        tgt = _hungarian_rows(cost)
    else:
        tgt = jnp.arange(t, dtype=jnp.int32)
        pred = _hungarian_rows(cost.T)
    return pred, tgt, valid[tgt]


def _match_jax(cost, target_valid):
    lead = cost.shape[:-2]
    q, t = cost.shape[-2:]
    pred, tgt, ok = jax.vmap(_match_one)(cost.reshape((-1, q, t)), target_valid.reshape((-1, t)))
    shape = lead + (min(q, t),)
    return pred.reshape(shape), tgt.reshape(shape), ok.reshape(shape)
