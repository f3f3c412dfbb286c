"""The method-specific losses (MiSLAS label-aware smoothing, RIDE, SADE, LADE) against numpy
re-computations on hand-made inputs (the formulas of Ensemble-codebase model/loss.py, MiSLAS
methods.py and Main-codebase loss/LADELoss.py), and BBN's paired sampler."""
import jax.numpy as jnp
import numpy as np
import pytest

from longtail import losses, samplers


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ce(z, y, w=None):
    nll = -_log_softmax(z)[np.arange(len(y)), y]
    w = np.ones(z.shape[-1]) if w is None else np.asarray(w)
    return (w[y] * nll).sum() / w[y].sum()


RNG = np.random.default_rng(0)
COUNTS = np.array([100, 50, 10, 4])
Y = np.array([0, 1, 2, 3, 3, 0])


def test_label_aware_smoothing():
    eps = losses.label_aware_smoothing_eps([100, 50, 10], 0.3, 0.0)
    np.testing.assert_allclose(eps, [0.3, 0.3 * np.sin(2 * np.pi / 9), 0.0])       # concave, head 0.3 tail 0
    z = RNG.normal(size=(6, 4))
    e = losses.label_aware_smoothing_eps(COUNTS, 0.3, 0.0)[Y]
    logp = _log_softmax(z)
    want = np.mean((1 - e) * -logp[np.arange(6), Y] + e * -logp.mean(-1))
    np.testing.assert_allclose(losses.label_aware_smoothing(jnp.asarray(z), jnp.asarray(Y), COUNTS), want, rtol=1e-5)


def _ride_reference(z, y, counts, s, max_m, w, factor, t):
    """RIDE's loss written out per expert: LDAM on s-scaled logits + factor * mean(T)^2 * KL."""
    m = 1 / np.sqrt(np.sqrt(counts))
    m = m * max_m / m.max()
    mean = z.mean(1)
    p = np.exp(_log_softmax(mean / t))
    total = 0.0
    for e in range(z.shape[1]):
        ze = z[:, e].copy()
        ze[np.arange(len(y)), y] -= s * m[y]
        total += _ce(ze, y, w)
        total += factor * np.mean(t) ** 2 * np.sum(p * (np.log(p) - _log_softmax(z[:, e] / t))) / len(y)
    return total


def test_ride_loss_matches_reference_and_kl_vanishes_when_experts_agree():
    z = 10 * RNG.normal(size=(6, 3, 4))
    t = losses.ride_temperatures(COUNTS, 0.02)
    w = losses.class_balanced_weights(COUNTS, 0.9999)
    got = losses.ride(jnp.asarray(z), jnp.asarray(Y), COUNTS, 30.0, 0.5, jnp.asarray(w), -0.2, jnp.asarray(t))
    np.testing.assert_allclose(got, _ride_reference(z, Y, COUNTS, 30.0, 0.5, w, -0.2, t), rtol=1e-4)
    same = np.repeat(z[:, :1], 3, axis=1)
    agree = losses.ride(jnp.asarray(same), jnp.asarray(Y), COUNTS, 30.0, 0.5, None, -0.2, 1.0)
    np.testing.assert_allclose(agree, 3 * losses.ldam(jnp.asarray(z[:, 0]), jnp.asarray(Y), COUNTS), rtol=1e-5)


def test_ride_temperatures():
    pi = np.array([0.9, 0.1])
    w = 2 * pi * 0.02 + 0.98
    np.testing.assert_allclose(losses.ride_temperatures([90, 10], 0.02), w / w.max())
    np.testing.assert_allclose(losses.ride_temperatures([90, 10], 0.0), [1.0, 1.0])


def test_sade_inverse_prior_and_loss():
    np.testing.assert_allclose(losses.inverse_prior([5, 3, 1]), np.array([1, 3, 5]) / 9)          # SADE's DiverseExpertLoss
    np.testing.assert_allclose(losses.inverse_prior([3, 5, 1]), np.array([3, 1, 5]) / 9)          # rank reversal
    z = RNG.normal(size=(6, 3, 4))
    pi = COUNTS / COUNTS.sum()
    inv = losses.inverse_prior(COUNTS)
    want = (_ce(z[:, 0], Y) + _ce(z[:, 1] + np.log(pi + 1e-9), Y)
            + _ce(z[:, 2] + np.log(pi + 1e-9) - 2.0 * np.log(inv + 1e-9), Y))
    np.testing.assert_allclose(losses.sade(jnp.asarray(z), jnp.asarray(Y), COUNTS, 2.0), want, rtol=1e-5)


def test_lade_regulariser():
    z = RNG.normal(size=(6, 4))
    pi = COUNTS / COUNTS.sum()
    want = 0.0
    for c in range(4):       # ReMINE bound per class, weighted by the prior
        first = z[Y == c, c].sum() / ((Y == c).sum() + 1e-8)
        q = z[:, c] - np.log(pi[c] + 1e-9) + np.log(0.25 + 1e-9)
        second = np.log(np.exp(q).sum()) - np.log(6)
        want -= pi[c] * (first - second - 0.1 * second ** 2)
    np.testing.assert_allclose(losses.lade(jnp.asarray(z), jnp.asarray(Y), COUNTS, 0.1), want, rtol=1e-5)


def test_influence_balanced_loss():
    z, h = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 5))
    w = (1 / COUNTS) / (1 / COUNTS).sum() * 4
    p = np.exp(_log_softmax(z))
    onehot = np.eye(4)[Y]
    nll = -_log_softmax(z)[np.arange(6), Y]
    want = np.mean(w[Y] * nll * 1000.0 / (np.abs(p - onehot).sum(1) * np.abs(h).sum(1) + 1e-3))
    got = losses.influence_balanced(jnp.asarray(z), jnp.asarray(Y), jnp.asarray(h), COUNTS, 1000.0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_paired_source_and_order():
    src = [{"image": np.full((2, 2, 3), i, np.uint8), "label": i % 3} for i in range(6)]
    paired = samplers.PairedSource(src)
    assert len(paired) == 36
    item = paired[2 * 6 + 5]
    assert item["label"] == 2 and item["label_rb"] == 2 and int(item["image_rb"][0, 0, 0]) == 5
    labels = np.repeat(np.arange(3), [80, 15, 5])
    codes = np.concatenate([samplers.paired_order("instance", "reversed", labels, 3, e, 0) for e in range(200)])
    a, b = np.divmod(codes, len(labels))
    assert sorted(a[:100]) == list(range(100))                                   # epoch 0: a permutation
    hist = np.bincount(labels[b], minlength=3) / len(b)
    np.testing.assert_allclose(hist, samplers.reversed_probabilities([80, 15, 5]), atol=0.01)


def test_bbn_cumulative_alpha():
    """alpha = 1 - ((e - 1) / T_max)^2 with 1-indexed epochs e, here T_max = 10."""
    for e, alpha in [(1, 1.0), (6, 0.75), (10, 0.19)]:
        assert float(losses.bbn_alpha(e - 1, 10.0)) == pytest.approx(alpha)
