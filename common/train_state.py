"""The training state that the loop shards, checkpoints and passes to `train_step`.

A state holds one or more named networks (`{"model": ...}` for a classifier,
`{"generator": ..., "discriminator": ...}` for a GAN), each with its own params, model
state, optimizer state and optional EMA. The loop, checkpoints, `init_from`, evaluate and
bench treat every network alike; the single-network state is the one-entry case.
"""
from typing import Any, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import optax

SINGLE = "model"   # the network name of single-network tasks


@flax.struct.dataclass
class Network:
    params: Any
    opt_state: Any
    model_state: Any          # non-parameter collections, e.g. {'batch_stats': ...}; {} if none
    ema_params: Any           # EMA of params, or None when the network keeps no EMA

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, model_state=None, ema: bool = False):
        return cls(params=params, opt_state=tx.init(params), model_state=model_state or {},
                   ema_params=params if ema else None)

    def eval_params(self):
        """The EMA where one is kept (what the papers evaluate), else the params."""
        return self.ema_params if self.ema_params is not None else self.params

    def variables(self, ema: bool = True) -> dict:
        """{'params': ..., **model_state}, as `module.apply` takes them."""
        return {"params": self.eval_params() if ema else self.params, **self.model_state}

    def apply_gradients(self, grads, tx: optax.GradientTransformation, ema_decay: float = 0.0,
                        model_state=None) -> "Network":
        """One optimizer update, then the EMA (when kept) and the new model state."""
        updates, opt_state = tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        ema = self.ema_params
        if ema is not None:
            ema = jax.tree_util.tree_map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
        return self.replace(params=params, opt_state=opt_state, ema_params=ema,
                            model_state=self.model_state if model_state is None else model_state)


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    nets: Mapping[str, Network]

    @classmethod
    def create(cls, **nets: Network) -> "TrainState":
        return cls(step=jnp.zeros((), jnp.int32), nets=dict(nets))

    def __getitem__(self, name: str) -> Network:
        return self.nets[name]

    @property
    def model(self) -> Network:
        """The network of a single-network task."""
        return self.nets[SINGLE]

    def update(self, **nets: Network) -> "TrainState":
        """The next state: step + 1 and the given networks replaced."""
        return self.replace(step=self.step + 1, nets={**self.nets, **nets})
