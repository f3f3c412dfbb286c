"""The training state that the loop shards, checkpoints and passes to `train_step`."""
from typing import Any

import flax.struct
import jax
import optax


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any          # non-parameter collections, e.g. {'batch_stats': ...}; {} if none
    ema_params: Any           # EMA of params, or None when config.optim.ema_decay == 0

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, model_state=None, ema: bool = False):
        import jax.numpy as jnp
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   model_state=model_state or {}, ema_params=params if ema else None)
