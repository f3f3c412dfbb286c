"""Optimizers and learning-rate schedules from config (optax).

- optimizers: AdamW, LAMB, SGD with (Nesterov) momentum;
- schedules: linear warmup from `warmup_init_lr`, then cosine / linear / step / constant,
  then `cooldown_epochs` at `min_lr` (timm's scheduler semantics, stepped per iteration);
- weight decay masked off 1-d leaves (biases, norm scales, layer-scale) and named leaves
  (position embeddings, class tokens);
- global-norm clipping, gradient accumulation (optax.MultiSteps), layer-wise lr decay.
EMA of params is kept in the TrainState and updated by the task's train step.
"""
import re
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax


def path_str(path) -> str:
    parts = []
    for p in path:
        key = getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))
        if key == "value":   # the box of nn.LogicallyPartitioned
            continue
        parts.append(str(key))
    return "/".join(parts)


def decay_mask(params, no_decay_names=()) -> object:
    """True where weight decay applies: leaves with ndim >= 2 whose path names none of
    `no_decay_names` (timm's rule: no decay on biases, norms, layer-scale, pos-embed)."""
    def keep(path, leaf):
        name = path_str(path)
        return bool(np.ndim(leaf) > 1 and not any(n in name for n in no_decay_names))
    return jax.tree_util.tree_map_with_path(keep, params)


def make_schedule(s: ml_collections.ConfigDict, peak_lr: float, total_epochs: float,
                  steps_per_epoch: float) -> Callable[[jax.Array], jax.Array]:
    """lr as a function of the optimizer step. Phases (in epochs): warmup, decay over
    `total_epochs - cooldown_epochs` (timm: the cosine phase is t / t_total, warmup
    included), then cooldown at min_lr."""
    warmup = float(s.warmup_epochs)
    decay_end = max(float(total_epochs) - float(s.cooldown_epochs), 1e-8)

    def lr(step):
        t = jnp.asarray(step, jnp.float32) / steps_per_epoch
        frac = jnp.clip(t / decay_end, 0.0, 1.0)
        if s.name == "cosine":
            main = s.min_lr + 0.5 * (peak_lr - s.min_lr) * (1.0 + jnp.cos(jnp.pi * frac))
        elif s.name == "linear":
            main = peak_lr + (s.min_lr - peak_lr) * frac
        elif s.name == "step":
            passed = sum((t >= e).astype(jnp.float32) for e in s.step_epochs) if s.step_epochs else 0.0
            main = peak_lr * jnp.power(s.step_factor, passed)
        elif s.name == "constant":
            main = jnp.full_like(t, peak_lr)
        else:
            raise ValueError(f"unknown schedule {s.name!r}: cosine | linear | step | constant")
        if s.name in ("cosine", "linear"):
            main = jnp.where(t >= decay_end, s.min_lr, main)
        if warmup > 0:
            ramp = s.warmup_init_lr + (peak_lr - s.warmup_init_lr) * t / warmup
            main = jnp.where(t < warmup, ramp, main)
        return main

    return lr


def layer_ids(params) -> tuple[object, int]:
    """Depth index of every leaf for layer-wise lr decay.

    Blocks are the path prefixes ending in a numbered module (`blocks_3`, `stages_1/
    blocks_0`), numbered in creation order: the params dict's insertion order, which
    Flax keeps as call order, i.e. depth order (jax's tree flattening would sort the
    keys). Leaves before the first block (stem, embeddings) get 0, the ones after the
    last (final norm, head) get num_blocks + 1.
    """
    leaves = []  # (path, prefix) in insertion order

    def walk(node, path):
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, path + (str(k),))
        else:
            name = "/".join(path)
            m = None
            for m in re.finditer(r"[^/]*_\d+(?=/)", name):
                pass
            leaves.append((path, name[:m.end()] if m else None))

    walk(params, ())
    order = {}
    for _, prefix in leaves:
        if prefix is not None and prefix not in order:
            order[prefix] = len(order) + 1
    top = len(order) + 1
    ids, seen_block = {}, False
    for path, prefix in leaves:
        seen_block = seen_block or prefix is not None
        ids[path] = order[prefix] if prefix is not None else (top if seen_block else 0)

    def rebuild(node, path):
        if isinstance(node, Mapping):
            return {k: rebuild(v, path + (str(k),)) for k, v in node.items()}
        return ids[path]

    return rebuild(params, ()), top


def scale_by_layer_decay(params_like, decay: float) -> optax.GradientTransformation:
    ids, top = layer_ids(params_like)
    scales = jax.tree_util.tree_map(lambda i: decay ** (top - i), ids)

    def update(updates, state, params=None):
        return jax.tree_util.tree_map(lambda u, s: u * s, updates, scales), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: float,
                   params_like=None) -> tuple[optax.GradientTransformation, Callable]:
    """The optax transformation and its lr schedule. `params_like` (any tree with the
    params' structure) is needed only for layer-wise lr decay."""
    o = config.optim
    total_epochs = total_train_epochs(config, steps_per_epoch)
    schedule = make_schedule(config.schedule, o.lr, total_epochs, steps_per_epoch)
    mask = lambda p: decay_mask(p, tuple(o.no_decay_names))  # noqa: E731
    if o.name == "adamw":
        tx = optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=mask)
    elif o.name == "lamb":
        tx = optax.lamb(schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=mask)
    elif o.name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(o.weight_decay, mask),
                         optax.sgd(schedule, momentum=o.momentum or None, nesterov=o.nesterov))
    else:
        raise ValueError(f"unknown optimizer {o.name!r}: adamw | lamb | sgd")
    parts = []
    if o.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.clip_norm))
    parts.append(tx)
    if o.layer_decay > 0:
        if params_like is None:
            raise ValueError("optim.layer_decay needs the params' structure")
        parts.append(scale_by_layer_decay(params_like, o.layer_decay))
    tx = optax.chain(*parts) if len(parts) > 1 else tx
    if o.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=o.grad_accum_steps)
        # the schedule counts optimizer updates, the loop counts micro-steps
        inner = schedule
        schedule = lambda step: inner(step // o.grad_accum_steps)  # noqa: E731
    return tx, schedule


def total_train_epochs(config, steps_per_epoch: float) -> float:
    if config.num_train_steps > 0:
        return config.num_train_steps / steps_per_epoch
    return float(config.num_epochs)


def total_train_steps(config, steps_per_epoch: float) -> int:
    if config.num_train_steps > 0:
        return int(config.num_train_steps)
    return int(np.ceil(config.num_epochs * steps_per_epoch))
