"""Pieces of a run shared by common.train, common.evaluate and common.bench: building the
mesh and task, initialising the state straight into its sharding, loading `init_from`
weights into its networks, jitting the steps with explicit shardings, and running the
task's evaluation passes with host-side evaluators."""
import dataclasses
import functools
import logging
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from common import checkpoint, evaluators, sharding, tasks
from common.checkpoint import CheckpointMismatch
from common.config import ConfigError, validate
from common.evaluators import EvalPass

log = logging.getLogger(__name__)


class Run:
    """A task on a mesh, with its abstract state, shardings and jitted steps."""

    def __init__(self, config, devices=None):
        validate(config)
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
        self._eval_steps: dict[EvalPass, Any] = {}
        self.fresh_leaves: list[str] = []    # leaves init_from left at their fresh init
        self.for_inference = False           # set by checkpoint_run: errors give evaluate's advice

    def init_state(self):
        """Initialise under jit with out_shardings: no host ever holds the full state."""
        init = jax.jit(lambda r: nn.meta.unbox(self.task.init(r)), out_shardings=self.state_sharding)
        state = init(self.init_rng)
        self.log_param_groups(state)
        if self.config.init_from:
            state = self.load_init(state, self.config.init_from)
        return state

    def log_param_groups(self, state) -> None:
        for name, groups in self.task.param_groups().items():
            if groups.rules:
                log.info("network %s: %s", name, groups.describe(state[name].params))

    def load_init(self, state, spec: str):
        """Start from converted/earlier weights. `spec` is `PATH` (every network the checkpoint
        holds; a single-network checkpoint fills a single-network task) or a comma list of
        `NETWORK=PATH` (e.g. `generator=/ckpt/g`). A head whose shape differs is
        re-initialised when config.init_reset_head is set (fine-tuning on a new label set),
        and leaves the checkpoint lacks keep their fresh init when config.init_keep_missing
        is set (parameters a later stage adds, such as LWS's per-class scales)."""
        nets = dict(state.nets)
        for item in spec.split(","):
            target, sep, path = item.partition("=")
            if not sep:
                target, path = "", item
            loaded = checkpoint.load_nets(path)
            if target:
                pairs = {target: checkpoint.pick_net(loaded, target, path)}
            elif len(loaded) == 1 and len(nets) == 1:
                pairs = {next(iter(nets)): next(iter(loaded.values()))}
            else:
                pairs = {n: v for n, v in loaded.items() if n in nets}
                if not pairs:
                    raise KeyError(f"init_from: {path} holds the networks {sorted(loaded)}, the task has "
                                   f"{sorted(nets)}; name one as NETWORK=PATH")
            for name, variables in pairs.items():
                if name not in nets:
                    raise KeyError(f"init_from: the task has no network {name!r} (it has {sorted(nets)})")
                nets[name] = self._load_network(nets[name], variables, path)
        return state.replace(nets=nets)

    def _load_network(self, net, loaded: dict, path: str):
        """Every leaf of `net` from `loaded`. All differences are collected first, so the error
        says whether the checkpoint is another model (most leaves differ) or a near fit that a
        flag can complete (a new head: init_reset_head; new leaves: init_keep_missing)."""
        fresh = {"params": net.params, **net.model_state}
        flat, treedef = jax.tree_util.tree_flatten_with_path(fresh)
        missing, wrong, leaves = [], [], []
        for kpath, new in flat:
            name = "/".join(str(getattr(k, "key", k)) for k in kpath)
            old = _lookup(loaded, kpath)
            if old is None:
                missing.append(name)
                leaves.append(new)
            elif tuple(np.shape(old)) != tuple(new.shape):
                wrong.append((name, tuple(np.shape(old)), tuple(new.shape)))
                leaves.append(new)
            else:
                leaves.append(jax.device_put(np.asarray(old, new.dtype), new.sharding))
        if wrong and not self.config.init_reset_head or missing and not self.config.init_keep_missing:
            raise CheckpointMismatch(_mismatch_message(path, len(flat), missing, wrong, self.config,
                                                       self.for_inference))
        for name, old_shape, new_shape in wrong:
            log.warning("init_from: %s is %s in %s, the model wants %s; keeping its fresh init",
                        name, old_shape, path, new_shape)
        for name in missing:
            log.info("init_from: %s has no value for %s; keeping its fresh init", path, name)
        self.fresh_leaves += missing + [name for name, _, _ in wrong]
        merged = jax.tree_util.tree_unflatten(treedef, leaves)
        params = merged.pop("params")
        return net.replace(params=params, model_state=merged,
                           ema_params=params if net.ema_params is not None else None)

    def jit_train_step(self):
        return jax.jit(self.task.train_step,
                       in_shardings=(self.state_sharding, self.batch_sharding, self.replicated),
                       out_shardings=(self.state_sharding, self.replicated),
                       donate_argnums=(0,))

    def jit_eval_step(self, eval_pass: EvalPass):
        """One compiled program per pass (its step_kwargs are static)."""
        if eval_pass not in self._eval_steps:
            step = functools.partial(self.task.eval_step, **eval_pass.kwargs)
            self._eval_steps[eval_pass] = jax.jit(step, in_shardings=(self.state_sharding, self.batch_sharding),
                                                  out_shardings=self.replicated)
        return self._eval_steps[eval_pass]

    def eval_passes(self, split: str | None = None) -> list[EvalPass]:
        """The task's passes; with `split`, the same passes over that split."""
        passes = self.task.eval_passes()
        return [dataclasses.replace(p, split=split) for p in passes] if split else passes

    def evaluate(self, state, passes: list[EvalPass] | None = None, progress: bool = False) -> dict:
        """{pass name: metrics} of every pass; the host scores batch i while the device runs i+1."""
        results = {}
        for p in passes or self.eval_passes():
            step = self.jit_eval_step(p)
            batches = self.task.input_pipeline(p.split, jax.process_index(), jax.process_count(), train=False)
            if progress and jax.process_index() == 0:
                from tqdm import tqdm
                batches = tqdm(batches, desc=f"{p.name} {p.split}", leave=False)
            outputs = (step(state, sharding.global_batch(local, self.mesh)) for local in batches)
            results[p.name] = evaluators.run_pass(self.task.make_evaluator(p), outputs)
        return results


def flat_metrics(results: dict) -> dict:
    """{pass: {metric: v}} -> {'pass/metric': v}."""
    return {f"{name}/{k}": v for name, metrics in results.items() for k, v in metrics.items()}


def checkpoint_run(config, checkpoint_path: str, allow_fresh_init: bool = False) -> Run:
    """A Run whose init_state() holds the weights of a checkpoint (converted official
    weights, a training workdir, or one step directory). Every leaf must come from the
    checkpoint: scoring random weights is an error unless `allow_fresh_init` (leaves the
    checkpoint lacks keep their init; the run's `fresh_leaves` lists them)."""
    config.unlock()
    config.init_from = checkpoint_path
    config.init_reset_head = False       # evaluating with a head that does not fit is an error
    config.init_keep_missing = bool(allow_fresh_init)
    config.lock()
    run = Run(config)
    run.for_inference = True
    return run


def evaluate_checkpoint(config, checkpoint_path: str, split: str | None = None, progress: bool = True) -> dict:
    """{pass name: metrics} of a checkpoint on the task's eval passes, or on `split`."""
    run = checkpoint_run(config, checkpoint_path)
    state = run.init_state()             # fresh init, then every leaf replaced from the checkpoint
    return run.evaluate(state, run.eval_passes(split), progress=progress)


def check_batch_splits(config, mesh, keys=("batch_size", "eval_batch_size")) -> None:
    """The global batches a program uses must split evenly over the mesh's batch axes (and
    the processes): a config error, before anything is compiled."""
    ways = int(np.prod([mesh.shape[a] for a in sharding.BATCH_AXES if a in mesh.axis_names]))
    for key in keys:
        value = int(config.get(key, 0) or 0)
        if value % ways or value % jax.process_count():
            raise ConfigError(f"config.{key}={value} does not split over the {ways} devices of the mesh's "
                              f"batch axes ({jax.process_count()} processes): use a multiple of {ways}")


def _mismatch_message(path: str, total: int, missing: list, wrong: list, config, inference: bool) -> str:
    first = (f"{wrong[0][0]} is {wrong[0][1]} there, the model wants {wrong[0][2]}" if wrong
             else f"it has no {missing[0]}")
    counts = f"{len(wrong)} of {total} leaves differ in shape, {len(missing)} are missing"
    if len(wrong) + len(missing) > total // 2:
        return (f"{path} is not a checkpoint of this model ({config.model.name}): {first} ({counts}); "
                "check --config / --checkpoint")
    if inference:      # evaluate / predict: the flags of fine-tuning do not apply
        hint = (" (--allow_fresh_init scores it with those leaves at their random init)" if missing and not wrong
                else "; check --config / --checkpoint")
        return f"{path} does not fit the model {config.model.name}: {first} ({counts}){hint}"
    hints = []
    if wrong:
        hints.append("init_reset_head=True re-initialises the leaves of another shape (a new label set)")
    if missing:
        hints.append("init_keep_missing=True keeps the fresh init of the leaves it lacks")
    return f"{path} does not fit the model {config.model.name}: {first} ({counts}); " + "; ".join(hints)


def _lookup(tree: Any, kpath) -> Any:
    node = tree
    for k in kpath:
        key = getattr(k, "key", getattr(k, "name", k))
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node
