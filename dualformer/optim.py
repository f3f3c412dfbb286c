"""The official optimizer of the DualFormer video recipes (mmcv 1.x semantics; spec §5).

AdamW with mmcv `paramwise_cfg` custom_keys {pos_block: decay 0, norm: decay 0, backbone:
lr x0.1}, where mmcv applies only the first matching key after sorting the keys by length
(descending): `backbone.pos_block.*` -> lr x1, wd 0; every other backbone tensor (norms and
biases included) -> lr x0.1, wd x1; the head -> lr x1, wd x1. (AdamW's decoupled decay is
scaled by the group's lr, so scaling the whole update by the group factor is exact.)
Schedule: mmcv CosineAnnealing stepped per *epoch* to 0, with a linear warmup per iteration
from warmup_ratio x the current epoch's lr.
"""
import jax
import jax.numpy as jnp
import optax

from common.optim import path_str


def cosine_by_epoch(base_lr: float, epochs: float, steps_per_epoch: float, warmup_epochs: float,
                    warmup_ratio: float = 0.1):
    warmup_iters = warmup_epochs * steps_per_epoch

    def lr(step):
        step = jnp.asarray(step, jnp.float32)
        epoch = jnp.floor(step / steps_per_epoch)
        regular = base_lr * 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(epoch / epochs, 1.0)))
        if warmup_iters <= 0:
            return regular
        k = (1.0 - step / warmup_iters) * (1.0 - warmup_ratio)
        return jnp.where(step < warmup_iters, regular * (1.0 - k), regular)

    return lr


def group_of(path: str) -> str:
    if "pos_block" in path:
        return "pos_block"
    return "backbone" if path.startswith("backbone") else "head"


def param_groups(params):
    return jax.tree_util.tree_map_with_path(lambda p, _: group_of(path_str(p)), params)


def make_optimizer(config, steps_per_epoch: float):
    o, s = config.optim, config.schedule
    epochs = (config.num_train_steps / steps_per_epoch) if config.num_train_steps > 0 else float(config.num_epochs)
    schedule = cosine_by_epoch(o.lr, epochs, steps_per_epoch, s.warmup_epochs, s.warmup_ratio)
    mults = {"pos_block": 1.0, "backbone": float(o.backbone_lr_mult), "head": 1.0}

    def scale_groups():
        def update(updates, state, params=None):
            groups = param_groups(updates)
            return jax.tree_util.tree_map(lambda u, g: u * mults[g], updates, groups), state
        return optax.GradientTransformation(lambda p: optax.EmptyState(), update)

    decay = lambda params: jax.tree_util.tree_map(lambda g: g != "pos_block", param_groups(params))  # noqa: E731
    tx = optax.chain(optax.scale_by_adam(o.b1, o.b2, o.eps),
                     optax.add_decayed_weights(o.weight_decay, decay),
                     optax.scale_by_learning_rate(schedule), scale_groups())
    if o.clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(o.clip_norm), tx)
    if o.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=o.grad_accum_steps)
        inner = schedule
        schedule = lambda step: inner(step // o.grad_accum_steps)  # noqa: E731
    return tx, schedule
