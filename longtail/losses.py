"""Class-sensitive losses of the survey (spec §5.2), as pure functions of logits [B, C],
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
