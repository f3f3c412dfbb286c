"""Pieces of a run shared by common.train, common.evaluate and common.bench: building the
mesh and task, initialising the state straight into its sharding, jitting the steps
with explicit shardings, and evaluating over a split."""
import logging
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from common import checkpoint, sharding, tasks

log = logging.getLogger(__name__)


class Run:
    """A task on a mesh, with its abstract state, shardings and jitted steps."""

    def __init__(self, config, devices=None):
        self.config = config
        self.mesh = sharding.make_mesh(config.mesh, devices)
        self.task = tasks.get_task(config.task)(config)
        self.rules = tuple(config.logical_axis_rules)
        rng = jax.random.PRNGKey(config.seed)
        self.init_rng, self.train_rng = jax.random.split(rng)
        boxed = jax.eval_shape(self.task.init, self.init_rng)
        self.state_sharding = sharding.logical_shardings(boxed, self.mesh, self.rules)
        self.abstract_state = jax.tree_util.tree_map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            nn.meta.unbox(boxed), self.state_sharding)
        self.batch_sharding = sharding.batch_sharding(self.mesh)
        self.replicated = sharding.replicated(self.mesh)

    def init_state(self):
        """Initialise under jit with out_shardings: no host ever holds the full state."""
        init = jax.jit(lambda r: nn.meta.unbox(self.task.init(r)), out_shardings=self.state_sharding)
        state = init(self.init_rng)
        if self.config.init_from:
            state = self.load_init(state, self.config.init_from)
        return state

    def load_init(self, state, path: str):
        """Start from converted/earlier weights; a head whose shape differs is re-initialised
        when config.init_reset_head is set (fine-tuning on a new label set), and leaves the
        checkpoint lacks keep their fresh init when config.init_keep_missing is set (parameters
        a later stage adds, such as LWS's per-class scales)."""
        loaded = checkpoint.load_any(path)
        fresh = {"params": state.params, **state.model_state}

        def pick(kpath, new, old=None):
            name = "/".join(str(getattr(k, "key", k)) for k in kpath)
            if old is None:
                if self.config.init_keep_missing:
                    log.info("init_from: %s has no value for %s; keeping the fresh init", path, name)
                    return new
                raise KeyError(f"{path} has no value for {name} (set init_keep_missing=True to keep its "
                               "fresh init)")
            if tuple(np.shape(old)) != tuple(new.shape):
                if self.config.init_reset_head:
                    log.warning("init_from: %s has shape %s in %s, model wants %s; keeping the fresh "
                                "init", name, np.shape(old), path, new.shape)
                    return new
                raise ValueError(f"init_from: {name} is {np.shape(old)} in {path}, the model wants "
                                 f"{new.shape} (set init_reset_head=True to re-initialise it)")
            return jax.device_put(np.asarray(old, new.dtype), new.sharding)

        merged = jax.tree_util.tree_map_with_path(
            lambda p, n: pick(p, n, _lookup(loaded, p)), fresh)
        params = merged.pop("params")
        return state.replace(params=params, model_state=merged,
                             ema_params=params if state.ema_params is not None else None)

    def jit_train_step(self):
        return jax.jit(self.task.train_step,
                       in_shardings=(self.state_sharding, self.batch_sharding, self.replicated),
                       out_shardings=(self.state_sharding, self.replicated),
                       donate_argnums=(0,))

    def jit_eval_step(self):
        return jax.jit(self.task.eval_step, in_shardings=(self.state_sharding, self.batch_sharding),
                       out_shardings=self.replicated)

    def evaluate(self, state, split: str | None = None, eval_step=None, progress: bool = False) -> dict:
        split = split or self.config.data.eval_split
        eval_step = eval_step or self.jit_eval_step()
        ds = self.task.input_pipeline(split, jax.process_index(), jax.process_count(), train=False)
        sums = None
        it = iter(ds)
        if progress and jax.process_index() == 0:
            from tqdm import tqdm
            it = tqdm(it, desc=f"eval {split}", leave=False)
        for local in it:
            out = eval_step(state, sharding.global_batch(local, self.mesh))
            sums = out if sums is None else jax.tree_util.tree_map(np.add, sums, out)
        sums = jax.tree_util.tree_map(np.asarray, jax.device_get(sums))
        return self.task.finalize_eval(sums)


def evaluate_checkpoint(config, checkpoint_path: str, split: str | None = None, progress: bool = True) -> dict:
    """The task's metrics of a checkpoint (converted official weights, a training workdir,
    or one step directory) on a split."""
    config.unlock()
    config.init_from = checkpoint_path
    config.init_reset_head = False       # evaluating with a head that does not fit is an error
    config.lock()
    run = Run(config)
    state = run.init_state()             # fresh init, then every leaf replaced from the checkpoint
    return run.evaluate(state, split, progress=progress)


def _lookup(tree: Any, kpath) -> Any:
    node = tree
    for k in kpath:
        key = getattr(k, "key", getattr(k, "name", k))
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node
