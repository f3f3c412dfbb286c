"""Optimizers, learning-rate schedules and parameter groups from config (optax).

- optimizers: AdamW, LAMB, SGD with (Nesterov) momentum;
- schedules: linear warmup from `warmup_init_lr`, then cosine / linear / step / constant,
  then `cooldown_epochs` at `min_lr` (timm's scheduler semantics, stepped per iteration);
  or `cosine_by_epoch` (mmcv's CosineAnnealing stepped per epoch, with a per-iteration
  linear warmup from `warmup_ratio` x the epoch's lr);
- weight decay masked off 1-d leaves (biases, norm scales, layer-scale; unless
  `decay_vectors`) and named leaves (position embeddings, class tokens);
- parameter groups (`optim.groups`): ordered rules, the first whose regex matches a
  parameter's path decides its lr multiplier, weight-decay multiplier, freezing and
  layer-wise lr decay (see `ParamGroups`);
- global-norm clipping (over the trainable parameters), gradient accumulation
  (optax.MultiSteps).
EMA of params is kept per network in the TrainState and updated by `Network.apply_gradients`.
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


def decays(name: str, leaf, no_decay_names=(), decay_vectors: bool = False) -> bool:
    """timm's rule: no decay on leaves with ndim <= 1 (biases, norms, layer-scale) unless
    `decay_vectors`, nor on leaves whose path names one of `no_decay_names` (pos-embed)."""
    return bool((decay_vectors or np.ndim(leaf) > 1) and not any(n in name for n in no_decay_names))


def decay_mask(params, no_decay_names=(), decay_vectors: bool = False) -> object:
    """True where weight decay applies (see `decays`)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, leaf: decays(path_str(p), leaf, no_decay_names, decay_vectors), params)


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
        elif s.name == "cosine_by_epoch":
            return _cosine_by_epoch(s, peak_lr, t, float(total_epochs))
        else:
            raise ValueError(f"unknown schedule {s.name!r}: cosine | linear | step | constant | "
                             "cosine_by_epoch")
        if s.name in ("cosine", "linear"):
            main = jnp.where(t >= decay_end, s.min_lr, main)
        if warmup > 0:
            ramp = s.warmup_init_lr + (peak_lr - s.warmup_init_lr) * t / warmup
            main = jnp.where(t < warmup, ramp, main)
        return main

    return lr


def _cosine_by_epoch(s, peak_lr: float, t, total_epochs: float):
    """mmcv CosineAnnealingLrUpdater(by_epoch=True) to `min_lr`, with its linear warmup stepped
    per iteration from `warmup_ratio` x the current epoch's lr (mmcv LrUpdaterHook)."""
    regular = s.min_lr + (peak_lr - s.min_lr) * 0.5 * (
        1.0 + jnp.cos(jnp.pi * jnp.minimum(jnp.floor(t) / total_epochs, 1.0)))
    if s.warmup_epochs <= 0:
        return regular
    k = (1.0 - t / s.warmup_epochs) * (1.0 - s.warmup_ratio)
    return jnp.where(t < s.warmup_epochs, regular * (1.0 - k), regular)


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


class ParamGroups:
    """Declarative parameter groups: `rules` is an ordered sequence of dicts

      pattern      regex searched in the parameter's path ("backbone/layer2_0/conv1/kernel")
      lr_mult      multiplies the update (with AdamW's decoupled decay, as PyTorch's
                   per-group lr does); default 1
      wd_mult      multiplies the weight decay of the leaves that decay; default 1
      frozen       no update at all, no optimizer state, excluded from gradient clipping
      layer_decay  layer-wise lr decay: lr x decay^(L - layer_id) (BEiT / ConvNeXt fine-tuning)

    and the first rule that matches decides; a parameter no rule matches is in the default
    group (lr x1, wd x1)."""

    KEYS = ("pattern", "lr_mult", "wd_mult", "frozen", "layer_decay")

    def __init__(self, rules=(), params_like=None):
        self.rules = [self._check(dict(r), i) for i, r in enumerate(rules or ())]
        self._compiled = [re.compile(r["pattern"]) for r in self.rules]
        if self.needs_structure(self.rules):
            if params_like is None:
                raise ValueError("a layer_decay group needs the params' structure (params_like)")
            ids, top = layer_ids(params_like)
            self._layer_ids = {path_str(p): i for p, i in jax.tree_util.tree_leaves_with_path(ids)}
            self._top = top

    @staticmethod
    def needs_structure(rules) -> bool:
        """Whether the rules need the params' structure (`params_like`): layer decay numbers
        the blocks by it."""
        return any(dict(r).get("layer_decay", 0) > 0 for r in rules or ())

    def _check(self, rule: dict, i: int) -> dict:
        unknown = set(rule) - set(self.KEYS)
        if unknown or "pattern" not in rule:
            raise ValueError(f"optim.groups[{i}] = {rule}: needs 'pattern' and takes only {self.KEYS}")
        return rule

    def index(self, name: str) -> int:
        """The rule deciding parameter `name`, or -1 (default group)."""
        return next((i for i, rx in enumerate(self._compiled) if rx.search(name)), -1)

    def rule(self, name: str) -> dict:
        i = self.index(name)
        return self.rules[i] if i >= 0 else {}

    def frozen(self, name: str) -> bool:
        return bool(self.rule(name).get("frozen", False))

    def any_frozen(self) -> bool:
        return any(r.get("frozen", False) for r in self.rules)

    def lr_scale(self, name: str) -> float:
        r = self.rule(name)
        scale = float(r.get("lr_mult", 1.0))
        decay = float(r.get("layer_decay", 0.0))
        if decay > 0:
            scale *= decay ** (self._top - self._layer_ids[name])
        return scale

    def wd_mult(self, name: str) -> float:
        return float(self.rule(name).get("wd_mult", 1.0))

    def label(self, i: int) -> str:
        if i < 0:
            return "default"
        r = self.rules[i]
        extras = ", ".join(f"{k}={r[k]}" for k in self.KEYS[1:] if k in r)
        return f"{i}: {r['pattern']!r}" + (f" ({extras})" if extras else "")

    def summary(self, params) -> list[tuple[str, int, int]]:
        """(group label, leaves, parameters) of every group, in rule order, default last;
        every parameter is counted in exactly one group."""
        counts: dict[int, list[int]] = {i: [0, 0] for i in range(-1, len(self.rules))}
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            c = counts[self.index(path_str(path))]
            c[0] += 1
            c[1] += int(np.prod(np.shape(leaf)))
        order = list(range(len(self.rules))) + [-1]
        return [(self.label(i), *counts[i]) for i in order]

    def describe(self, params) -> str:
        return "; ".join(f"group {label}: {n:,} params in {k} leaves" for label, k, n in self.summary(params))


def _by_path(fn: Callable[[str, object], object]) -> Callable:
    """A tree map over (path string, leaf): works on optax's masked trees too."""
    return lambda tree: jax.tree_util.tree_map_with_path(lambda p, x: fn(path_str(p), x), tree)


def add_decayed_weights(coefficient: Callable[[str, object], float]) -> optax.GradientTransformation:
    """updates + c * params, with c per leaf from its path (0: no decay)."""
    def update(updates, state, params=None):
        coeffs = _by_path(coefficient)(params)
        return jax.tree_util.tree_map(lambda u, p, c: u + c * p if c else u, updates, params, coeffs), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def scale_by_path(scale: Callable[[str, object], float]) -> optax.GradientTransformation:
    """updates x s, with s per leaf from its path."""
    def update(updates, state, params=None):
        return _by_path(lambda name, u: u if scale(name, u) == 1.0 else u * scale(name, u))(updates), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: float, params_like=None,
                   optim: ml_collections.ConfigDict | None = None,
                   schedule: ml_collections.ConfigDict | None = None
                   ) -> tuple[optax.GradientTransformation, Callable]:
    """The optax transformation and its lr schedule, from `config.optim` / `config.schedule`
    (or the given sub-configs: each network of a multi-network task has its own).
    `params_like` (a tree with the params' structure, in creation order) is needed only
    for layer-wise lr decay."""
    o, s = optim or config.optim, schedule or config.schedule
    total_epochs = total_train_epochs(config, steps_per_epoch)
    lr = make_schedule(s, o.lr, total_epochs, steps_per_epoch)
    groups = ParamGroups(o.groups, params_like)
    no_decay = tuple(o.no_decay_names)

    def decay(name, leaf):
        if not decays(name, leaf, no_decay, o.decay_vectors):
            return 0.0
        return o.weight_decay * groups.wd_mult(name)

    if o.name == "adamw":
        tx = optax.chain(optax.scale_by_adam(o.b1, o.b2, o.eps), add_decayed_weights(decay),
                         optax.scale_by_learning_rate(lr))
    elif o.name == "lamb":
        tx = optax.chain(optax.scale_by_adam(o.b1, o.b2, o.eps), add_decayed_weights(decay),
                         optax.scale_by_trust_ratio(), optax.scale_by_learning_rate(lr))
    elif o.name == "sgd":
        tx = optax.chain(add_decayed_weights(decay),
                         optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov))
    else:
        raise ValueError(f"unknown optimizer {o.name!r}: adamw | lamb | sgd")
    tx = optax.chain(tx, scale_by_path(lambda name, _: groups.lr_scale(name)))
    parts = []
    if groups.any_frozen():
        label = _by_path(lambda name, _: "frozen" if groups.frozen(name) else "trained")
        # zero the frozen gradients first, so clipping measures the trained ones only
        parts.append(scale_by_path(lambda name, _: 0.0 if groups.frozen(name) else 1.0))
        tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, label)
    if o.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.clip_norm))
    tx = optax.chain(*parts, tx) if parts else tx
    if o.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=o.grad_accum_steps)
        # the schedule counts optimizer updates, the loop counts micro-steps
        inner = lr
        lr = lambda step: inner(step // o.grad_accum_steps)  # noqa: E731
    return tx, lr


def total_train_epochs(config, steps_per_epoch: float) -> float:
    if config.num_train_steps > 0:
        return config.num_train_steps / steps_per_epoch
    return float(config.num_epochs)


def total_train_steps(config, steps_per_epoch: float) -> int:
    if config.num_train_steps > 0:
        return int(config.num_train_steps)
    return int(np.ceil(config.num_epochs * steps_per_epoch))
