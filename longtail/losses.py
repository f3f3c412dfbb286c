"""Class-sensitive losses of the survey (Vanint/Awesome-LongTailed-Learning Main-codebase
loss/*.py, Ensemble-codebase model/loss.py), as pure functions of logits [B, C],
integer labels [B] and per-class training counts [C]."""
import jax
import jax.numpy as jnp
import numpy as np


def log_prior(counts) -> jnp.ndarray:
    counts = jnp.asarray(counts, jnp.float32)
    return jnp.log(counts / counts.sum() + 1e-9)


def weighted_ce(logits, labels, weights=None):
    """CE with class weights, PyTorch's weighted mean: sum w_y * l / sum w_y."""
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32)), labels[:, None], 1)[:, 0]
    if weights is None:
        return nll.mean()
    w = jnp.asarray(weights, jnp.float32)[labels]
    return (w * nll).sum() / w.sum()


def pair_ce(logits, y_a, y_b, lam_a):
    """Mixed-label CE with a weight per sample: mean of lam_a * CE(y_a) + (1 - lam_a) * CE(y_b)
    (Remix, whose label weights are set per pair)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    nll_a = -jnp.take_along_axis(logp, y_a[:, None], 1)[:, 0]
    nll_b = -jnp.take_along_axis(logp, y_b[:, None], 1)[:, 0]
    return jnp.mean(lam_a * nll_a + (1.0 - lam_a) * nll_b)


def survey_softmax_weights(counts) -> np.ndarray:
    """Weighted Softmax of the survey code: w_c = 1 + ln(n_max / n_c) (not 1/pi)."""
    counts = np.asarray(counts, np.float64)
    return 1.0 + np.log(counts.max() / counts)


def class_balanced_weights(counts, beta: float = 0.9999) -> np.ndarray:
    """Cui et al.: w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to C."""
    counts = np.asarray(counts, np.float64)
    w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return w / w.sum() * len(counts)


def focal(logits, labels, gamma: float = 3.0):
    """-(1 - p_y)^gamma log p_y with p_y detached in the factor (survey Main-codebase, gamma 3)."""
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32)), labels[:, None], 1)[:, 0]
    factor = jax.lax.stop_gradient((1.0 - jnp.exp(logp)) ** gamma)
    return -(factor * logp).mean()


def logit_adjusted_ce(logits, labels, counts, tau: float = 1.0):
    """Logit-adjusted loss CE(z + tau log pi, y); tau = 1 is Balanced Softmax."""
    return weighted_ce(logits + tau * log_prior(counts), labels)


def posthoc_adjust(logits, counts, tau: float = 1.0):
    """Post-hoc logit adjustment at inference: z - tau log pi."""
    return logits - tau * log_prior(counts)


def ldam_margins(counts, max_m: float = 0.5) -> np.ndarray:
    """m_c = C / n_c^(1/4), scaled so the largest margin (rarest class) is max_m."""
    m = 1.0 / np.power(np.asarray(counts, np.float64), 0.25)
    return m * (max_m / m.max())


def ldam(logits, labels, counts, s: float = 30.0, max_m: float = 0.5, weights=None):
    """LDAM on s-scaled logits: the target logit is lowered by s * m_y (RIDE / survey form)."""
    m = jnp.asarray(ldam_margins(counts, max_m), jnp.float32)[labels]
    adjusted = logits - s * m[:, None] * jax.nn.one_hot(labels, logits.shape[-1])
    return weighted_ce(adjusted, labels, weights)


def equalization_softmax(rng, logits, labels, counts, lambda_: float = 4.3e-4, gamma: float = 0.9):
    """ESQL (survey code): for each (sample, class) entry independently, a tail class
    (frequency < lambda) that is not the ground truth has its logit replaced by a large
    negative with probability gamma."""
    freq = jnp.asarray(counts, jnp.float32) / jnp.sum(jnp.asarray(counts, jnp.float32))
    tail = (freq < lambda_)[None, :]
    gt = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
    drop = jax.random.uniform(rng, logits.shape) < gamma
    masked = tail & ~gt & drop
    neg = jnp.finfo(jnp.float32).min / 2
    return weighted_ce(jnp.where(masked, neg, logits.astype(jnp.float32)), labels)


def label_aware_smoothing_eps(counts, head: float = 0.3, tail: float = 0.0) -> np.ndarray:
    """MiSLAS 'concave' smoothing: eps_c = tail + (head - tail) sin(pi (n_c - n_min) / (2 (n_max - n_min)))."""
    n = np.asarray(counts, np.float64)
    return tail + (head - tail) * np.sin(np.pi * (n - n.min()) / (2.0 * (n.max() - n.min())))


def label_aware_smoothing(logits, labels, counts, head: float = 0.3, tail: float = 0.0):
    """MiSLAS stage 2: (1 - eps_y) (-log p_y) + eps_y mean_c(-log p_c), batch mean."""
    eps = jnp.asarray(label_aware_smoothing_eps(counts, head, tail), jnp.float32)[labels]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    nll = -jnp.take_along_axis(logp, labels[:, None], 1)[:, 0]
    return jnp.mean((1.0 - eps) * nll - eps * logp.mean(-1))


def ride_temperatures(counts, reweight_factor: float = 0.02) -> np.ndarray:
    """RIDE's per-class diversity temperatures once DRW is on: w_c = C pi_c f + 1 - f, / max."""
    pi = np.asarray(counts, np.float64) / np.sum(counts)
    w = len(pi) * pi * reweight_factor + 1.0 - reweight_factor
    return w / w.max()


def ride(expert_logits, labels, counts, s: float = 30.0, max_m: float = 0.5, weights=None,
         diversity: float = -0.2, temperature=1.0):
    """RIDE loss over experts [B, E, C]: per expert, LDAM(-DRW) on its logits plus
    diversity * mean(T)^2 * KL(softmax(z_mean / T) || softmax(z_e / T)) (batch mean; the
    target is the detached expert mean; a negative factor pushes the experts apart)."""
    z = expert_logits.astype(jnp.float32)
    mean = z.mean(1)
    t = jnp.broadcast_to(jnp.asarray(temperature, jnp.float32), (z.shape[-1],))
    target_log = jax.lax.stop_gradient(jax.nn.log_softmax(mean / t))
    total = 0.0
    for e in range(z.shape[1]):
        total += ldam(mean if diversity == 0 else z[:, e], labels, counts, s, max_m, weights)
        kl = jnp.sum(jnp.exp(target_log) * (target_log - jax.nn.log_softmax(z[:, e] / t))) / z.shape[0]
        total += diversity * jnp.mean(t) ** 2 * kl
    return total


def inverse_prior(counts) -> np.ndarray:
    """SADE's inverse prior: the sorted prior reversed by rank (the largest class gets the
    smallest prior), not 1/pi normalised."""
    prior = np.asarray(counts, np.float64) / np.sum(counts)
    order = np.argsort(prior, kind="stable")
    rank = np.argsort(order, kind="stable")
    return prior[order][len(prior) - 1 - rank]


def sade(expert_logits, labels, counts, tau: float = 2.0):
    """SADE's skill-diverse experts [B, 3, C]: CE(z1), CE(z2 + log pi), CE(z3 + log pi - tau log pi~)."""
    z = expert_logits.astype(jnp.float32)
    log_inverse = jnp.log(jnp.asarray(inverse_prior(counts), jnp.float32) + 1e-9)
    return (weighted_ce(z[:, 0], labels) + weighted_ce(z[:, 1] + log_prior(counts), labels)
            + weighted_ce(z[:, 2] + log_prior(counts) - tau * log_inverse, labels))


def lade(logits, labels, counts, remine_lambda: float = 0.1):
    """LADE regulariser (hyperconnect/LADE, the survey's LADELoss): per class c, the ReMINE
    lower bound  mean_{i: y_i = c} z_ic - (logsumexp_i(z_ic - log pi_c + log(1/C)) - log B)
    minus remine_lambda * (second term)^2, weighted by pi_c and negated."""
    z = logits.astype(jnp.float32)
    num_classes = z.shape[-1]
    pi = jnp.asarray(counts, jnp.float32) / jnp.sum(jnp.asarray(counts, jnp.float32))
    onehot = jax.nn.one_hot(labels, num_classes)                              # [B, C]
    first = jnp.sum(z * onehot, 0) / (onehot.sum(0) + 1e-8)
    spread = z - jnp.log(pi + 1e-9) + jnp.log(1.0 / num_classes + 1e-9)
    second = jax.scipy.special.logsumexp(spread, axis=0) - jnp.log(z.shape[0])
    bound = first - second - remine_lambda * second ** 2
    return -jnp.sum(bound * pi)


def bbn_alpha(epoch, t_div: float):
    """BBN cumulative learning: alpha = 1 - ((e - 1) / T_div)^2 for the 1-indexed epoch e,
    i.e. 1 - (epoch / T_div)^2 for the 0-indexed `epoch` given here."""
    return 1.0 - (epoch / t_div) ** 2


def inverse_frequency_weights(counts) -> np.ndarray:
    """IB's class weights: 1 / n_c normalised to sum to C."""
    w = 1.0 / np.asarray(counts, np.float64)
    return w / w.sum() * len(w)


def influence_balanced(logits, labels, features, counts, alpha: float = 1000.0):
    """IB loss (pseulki/IB-Loss): mean_i w_y CE_i * alpha / (|p_i - onehot_i|_1 * |h_i|_1 + 1e-3),
    h = the pooled features, w = inverse_frequency_weights (not a weighted mean)."""
    z = logits.astype(jnp.float32)
    onehot = jax.nn.one_hot(labels, z.shape[-1])
    nll = -jnp.sum(jax.nn.log_softmax(z) * onehot, -1)
    w = jnp.asarray(inverse_frequency_weights(counts), jnp.float32)[labels]
    influence = jnp.sum(jnp.abs(jax.nn.softmax(z) - onehot), -1) * jnp.sum(jnp.abs(features.astype(jnp.float32)), -1)
    return jnp.mean(w * nll * alpha / (influence + 1e-3))
