"""Autoregressive sampling with per-attribute temperature and nucleus (top-p) over a model's
recurrent step.

- `sample_categorical(rng, logits, temperature, top_p)`: softmax(logits / t) after
  subtracting the max; with `top_p`, probabilities are divided by (sum + 1e-5), sorted, and
  the tokens up to and including the first whose cumulative sum exceeds p are kept (all if
  none does), renormalised and drawn (the nucleus sampler of the compound-word transformer
  family); `top_p=None` draws from the whole distribution. Batched over leading axes, jit-able.
- `sample_fields(rng, logits, settings)`: one draw per named attribute, each with its own
  `Setting(temperature, top_p)` (a token of several attributes, e.g. a compound word).
- `generate(...)`: a `lax.scan` loop of `num_steps` recurrent steps: step(state, token) ->
  (output, state); propose(rng, output) -> token; an optional `edit(control, t, token)` may
  replace the proposal (forced tokens, controls) before it is fed back. Memory is the
  recurrent state's, whatever the length. Host-side loops with Python control logic call
  the same `step` / `propose` one token at a time instead.
"""
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp


class Setting(NamedTuple):
    temperature: float = 1.0
    top_p: float | None = None


def nucleus_probs(logits: jax.Array, temperature: float = 1.0, top_p: float | None = None) -> jax.Array:
    """The distribution a draw is made from, [..., V] (float32)."""
    logits = logits.astype(jnp.float32)
    z = (logits - logits.max(-1, keepdims=True)) / temperature
    probs = jax.nn.softmax(z, axis=-1)
    if top_p is None:
        return probs
    probs = probs / (probs.sum(-1, keepdims=True) + 1e-5)
    order = jnp.argsort(-probs, axis=-1, stable=True)
    sorted_p = jnp.take_along_axis(probs, order, -1)
    before = jnp.cumsum(sorted_p, -1) - sorted_p                   # exclusive cumulative sum
    keep_sorted = before <= top_p                                   # up to the first that exceeds p
    keep = jnp.take_along_axis(keep_sorted, jnp.argsort(order, axis=-1), -1)   # back to vocabulary order
    kept = jnp.where(keep, probs, 0.0)
    return kept / kept.sum(-1, keepdims=True)


def sample_categorical(rng: jax.Array, logits: jax.Array, temperature: float = 1.0,
                       top_p: float | None = None) -> jax.Array:
    """Token ids [...] drawn from `nucleus_probs`."""
    p = nucleus_probs(logits, temperature, top_p)
    return jax.random.categorical(rng, jnp.log(jnp.maximum(p, 1e-38)) + jnp.where(p > 0, 0.0, -jnp.inf))


def sample_fields(rng: jax.Array, logits: Mapping[str, jax.Array],
                  settings: Mapping[str, Setting]) -> dict[str, jax.Array]:
    """{name: token ids}, one independent key per attribute (folded from its position in
    `settings`, so adding an attribute does not change the others' draws)."""
    out = {}
    for i, (name, s) in enumerate(settings.items()):
        if name in logits:
            out[name] = sample_categorical(jax.random.fold_in(rng, i), logits[name], s.temperature, s.top_p)
    return out


def generate(step: Callable[[Any, jax.Array], tuple[Any, Any]],
             propose: Callable[[jax.Array, Any], jax.Array],
             state: Any, first_token: jax.Array, rng: jax.Array, num_steps: int,
             edit: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]] | None = None,
             control: Any = None):
    """Tokens [num_steps, ...] after `first_token`, and the final (state, control).

    Each step t: (output, state) = step(state, token); new = propose(fold_in(rng, t), output);
    with `edit`, (new, control) = edit(control, t, new). `new` is fed to the next step."""
    def body(carry, t):
        state, token, control = carry
        out, state = step(state, token)
        new = propose(jax.random.fold_in(rng, t), out)
        if edit is not None:
            new, control = edit(control, t, new)
        return (state, new, control), new

    (state, _, control), tokens = jax.lax.scan(body, (state, first_token, control), jnp.arange(num_steps))
    return tokens, (state, control)
