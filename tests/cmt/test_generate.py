"""Sampling and the control loop: the nucleus rule of the official sampler, the official
control loop on a scripted sampler (hand-derived forced tokens, p_beat / i_beat columns and
error lists), the recurrent lax.scan loop, the metrics and the piano roll."""
import jax
import jax.numpy as jnp
import numpy as np

from cmt import generate, metrics
from common.piano_roll import piano_roll
from common.sampling import Setting, generate as scan_generate, nucleus_probs, sample_fields


def _official_candidates(probs, p):
    """model.py nucleus(): the candidate set and its renormalised probabilities."""
    probs = probs / (probs.sum() + 1e-5)
    order = np.argsort(probs)[::-1]
    cum = np.cumsum(probs[order])
    after = cum > p
    cand = order[:np.where(after)[0][0] + 1] if after.any() else order
    out = np.zeros_like(probs)
    out[cand] = probs[cand] / probs[cand].sum()
    return out


def test_nucleus_matches_the_official_rule():
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.standard_normal(30).astype(np.float32) * 3
        t = float(rng.choice([1.0, 1.2, 2.0]))
        z = np.exp((logits - logits.max()) / t)
        want = _official_candidates(z / z.sum(), 0.9)
        np.testing.assert_allclose(nucleus_probs(jnp.asarray(logits), t, 0.9), want, atol=1e-6)
    draws = sample_fields(jax.random.PRNGKey(0), {"a": jnp.array([[0.0, 5.0, 0.0]] * 4000)}, {"a": Setting(1.0, 0.5)})
    assert (np.asarray(draws["a"]) == 1).all()                      # only the top token survives p = 0.5


class Scripted:
    """A sampler whose proposals are given; records the rows fed to it."""

    def __init__(self, proposals):
        self.proposals, self.fed = [np.array(p) for p in proposals], []

    def start(self, prefix):
        return None

    def feed(self, cache, row, rng):
        self.fed.append(np.asarray(row)[0])
        return cache, jnp.asarray(self.proposals.pop(0))[None]


CONTROLS = np.array([[17, 3, 0, 0, 32, 1], [5, 0, 4, 4, 32, 14], [17, 6, 0, 16, 32, 51]])
SCRIPT = [[1, 1, 2, 0, 0, 2, 1], [0, 2, 0, 61, 3, 2, 0], [6, 1, 1, 0, 0, 1, 1], [0, 2, 0, 40, 2, 1, 0],
          [7, 1, 1, 0, 0, 2, 1], [17, 1, 5, 0, 0, 0, 0], [17, 1, 5, 0, 0, 0, 0], [1, 1, 1, 0, 0, 1, 1]]


def test_control_loop_forces_what_the_official_loop_forces():
    s = Scripted(SCRIPT)
    r = generate.controlled_generation(s, CONTROLS, C=1.0)
    want = [[17, 1, 3, 0, 0, 0, 0, 1, 0],
            [1, 1, 2, 0, 0, 2, 1, 1, 0],           # beat 1 < control beat 5: kept
            [0, 2, 0, 61, 3, 2, 0, 1, 0],
            [5, 1, 1, 0, 0, 1, 4, 13, 4],          # sampled beat 6 >= 5: forced Drums, strength 4, p = round(12.5) + 1
            [0, 2, 0, 40, 2, 1, 0, 13, 4],
            [5, 1, 1, 0, 0, 2, 4, 13, 4],          # then Piano
            [5, 1, 1, 0, 0, 3, 4, 13, 4],          # a sampled Bar also qualifies: Guitar
            [17, 1, 6, 0, 0, 0, 0, 51, 16]]        # bar control: density forced (C = 1)
    np.testing.assert_array_equal(r["words"], want)
    assert r["err_strength"] == [0, 3, 4] and r["err_density"] == [1] and r["forced"] == 4
    np.testing.assert_array_equal(s.fed, want)                      # each output row is fed back
    keep = generate.controlled_generation(Scripted(SCRIPT), CONTROLS, C=0.0)["words"]
    np.testing.assert_array_equal(keep[-1], [17, 1, 5, 0, 0, 0, 0, 51, 16])   # C = 0: the sampled density stays
    m = metrics.official_control_errors(r["err_strength"], r["err_density"])
    assert np.isclose(m["strength_error"], 7 / 3 / 1.83) and np.isclose(m["density_error"], 1 / 10.9)


def test_scan_loop_over_a_recurrent_step():
    # a counter "model": state = running sum, output = state; propose = output + 1, edits force token 7 at t = 2
    step = lambda s, tok: (s + tok, s + tok)                       # noqa: E731
    propose = lambda rng, out: out + 1                             # noqa: E731
    edit = lambda c, t, tok: (jnp.where(t == 2, 7, tok), c + 1)    # noqa: E731
    tokens, (state, control) = jax.jit(lambda s0: scan_generate(step, propose, s0, jnp.int32(1),
                                                                jax.random.PRNGKey(0), 4, edit, jnp.int32(0)))(
        jnp.int32(0))
    np.testing.assert_array_equal(tokens, [2, 4, 7, 15])          # s=1 -> 2; s=3 -> 4; s=7 -> 8 forced to 7; s=14 -> 15
    assert int(control) == 4 and int(state) == 14


def test_metrics_and_piano_roll():
    words = np.array([[17, 1, 3, 0, 0, 0, 0, 1, 0], [1, 1, 2, 0, 0, 2, 1, 1, 0], [0, 2, 0, 61, 3, 2, 0, 1, 0],
                      [9, 1, 1, 0, 0, 2, 1, 1, 8], [0, 2, 0, 64, 3, 2, 0, 1, 8], [17, 1, 1, 0, 0, 0, 0, 1, 16]])
    np.testing.assert_array_equal(metrics.bar_densities(words), [2, 0])
    np.testing.assert_array_equal(metrics.bar_densities(words, complete=True), [2])   # the last bar is open
    ramp = np.array([[17, 3, 0, 0, 32, 1], [17, 1, 0, 16, 32, 51]])
    f = metrics.density_following(np.concatenate([words, np.zeros((1, 9), int)]), ramp)   # closed by EOS
    assert f["requested"] == [2, 0] and f["achieved"] == [2, 0] and f["density_mae"] == 0
    assert metrics.density_following(words, ramp)["achieved"] == [2]
    scale = {"Piano": [[i, 60 + i, 1] for i in range(12)]}
    assert np.isclose(metrics.pitch_class_entropy(scale), np.log2(12))
    assert metrics.grooving_similarity({"Piano": [[0, 60, 1], [16, 60, 1], [32, 62, 1]]}) == 1.0
    img = piano_roll({"Piano": [[0, 60, 4], [4, 64, 4]], "Drums": [[0, 36, 1]]},
                     curves=[("requested", [2, 5], (0, 0, 0)), ("achieved", [1, 4], (220, 30, 30))])
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[1] > 2 * 16 * 3
    assert ((img[..., 0] > 200) & (img[..., 1] < 60)).any()        # the red achieved curve is drawn


def test_offline_control_metrics():
    # controls: bar 0 (class 2) with a visual beat at tick 4 (strength 3), bar 1 (class 0); n_beat 32
    controls = np.array([[17, 3, 0, 0, 32, 1], [5, 0, 3, 4, 32, 14], [17, 1, 0, 16, 32, 51]])
    tracks = {"Drums": [[4, 36, 1]] * 3, "Piano": [[4, 60, 1], [4, 64, 1]], "Guitar": [], "Bass": [[0, 40, 4]]}
    s = metrics.strength_following(tracks, controls)
    assert s["beats"] == 1 and np.isclose(s["strength_mae"], (0 + 1 + 3) / 3)
    assert np.isclose(s["strength_error_rate"], 4 / 3 / 1.83)
    # music that is the control array itself: bars of densities 2 and 0, the beat at tick 4 with strength 3
    words = np.array([[17, 1, 3, 0, 0, 0, 0, 1, 0], [1, 1, 2, 0, 0, 4, 1, 1, 0], [5, 1, 1, 0, 0, 1, 3, 14, 4],
                      [17, 1, 1, 0, 0, 0, 0, 51, 16]])
    assert metrics.time_error(words, controls) == 0.0                        # 2 bars = 32 ticks
    assert metrics.time_error(words[:3], controls) == 0.5
    assert metrics.matching_score(words, controls) == float("inf")          # a song matches itself best
    off = words.copy()
    off[2, 6] = 5                                                            # strength 5 instead of 3
    assert np.isclose(metrics.matching_score(off, controls), 1 / (4 / 32))  # one grid cell off by 2


def test_structureness_indicator_is_musdr_si():
    rng = np.random.default_rng(0)
    phrase = [[t, int(60 + rng.integers(0, 12)), 2] for t in range(0, 32, 2)]     # 4 s at 120 qpm
    repeated = {"Piano": [[t + 32 * k, p, d] for k in range(4) for t, p, d in phrase]}
    random = {"Piano": [[t, int(60 + rng.integers(0, 12)), 2] for t in range(0, 128, 2)]}
    si_rep, si_rnd = metrics.structureness_indicator(repeated), metrics.structureness_indicator(random)
    assert set(si_rep) == {"SI_3_8", "SI_8_15", "SI_15_inf"}
    assert 0.3 < si_rep["SI_3_8"] <= 1.0 and si_rnd["SI_3_8"] < 0.5 * si_rep["SI_3_8"]   # measured 0.47 vs 0.0
    # the SSM is MusDr's: diagonal 1, penalty -2 below the 25 % threshold, values in [-2, 1]
    x = metrics._l2_columns(metrics._smooth_downsample(metrics.symbolic_chroma(repeated)))
    s = metrics.self_similarity(x)
    assert np.all(np.diag(s) == 1) and s.min() == -2 and s.max() <= 1
    assert np.isclose((s > -2).mean(), 0.25, atol=0.05)
