"""The Task protocol: everything the loop (common.train), common.evaluate, common.bench
and `init_from` read from a task, and the registry that finds a task from `config.task`.

A task is a class built from the config, `task = get_task(config.task)(config)`; it lives
where its paper lives and registers itself with `@register_task("name")`. The config names
it `"module:name"` (`"mypackage.task:my_task"`), `"module"` when the module registers
one task, or a bare name for the tasks `common/` defines (`"classification"`). Subclassing
`Task` gives the defaults of the optional members below.
"""
import functools
import importlib
from typing import Any, Iterator, Mapping

import jax

from common.evaluators import EvalPass, Evaluator
from common.registry import Registry


class Task:
    """The interface of a task, with defaults for the optional members; a member without
    a default raises NotImplementedError."""

    def __init__(self, config):
        self.config = config

    # ------------------------------------------------------------------ data
    def input_pipeline(self, split: str, process_index: int, process_count: int,
                       *, train: bool) -> Iterator[Mapping[str, Any]]:
        """Host-local numpy batches of this process. Training: an endless grain iterator
        whose `get_state()` / `set_state()` make resuming exact. Evaluation: one pass over
        the split, padded to whole batches with rows marked `mask = 0`."""
        raise NotImplementedError

    def synthetic_batch(self, batch_size: int) -> Mapping[str, Any]:
        """A training batch of random data with the real shapes (for common.bench)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ schedule
    def total_steps(self) -> int:
        """Loop steps of the whole run (one step = one train_step call)."""
        return int(self.config.num_train_steps)

    def examples_per_step(self) -> int:
        """Examples one train_step consumes over all processes (for examples/s)."""
        return int(self.config.batch_size)

    # ------------------------------------------------------------------ state
    def init(self, rng: jax.Array) -> Any:
        """A `common.train_state.TrainState` of one or more named networks; leaves may be
        boxed with logical axis names. Traced under jax.eval_shape and jax.jit."""
        raise NotImplementedError

    def param_groups(self) -> Mapping[str, Any]:
        """{network: common.optim.ParamGroups} for the log of what each group holds."""
        return {}

    # ------------------------------------------------------------------ steps
    def train_step(self, state: Any, batch: Mapping[str, jax.Array], rng: jax.Array):
        """(new state, metrics). Pure; jitted once by the loop; `rng` is fresh each step
        (fold it for every random need). Metrics: scalars named `train/...` are averaged
        over the log window and must be finite (the loop stops on NaN/Inf); `lr` and other
        scalars are logged as they are at the logged step; arrays of shape [H, W, C] or
        [N, H, W, C] are images (TensorBoard only); other arrays go to TensorBoard as
        histograms."""
        raise NotImplementedError

    def eval_step(self, state: Any, batch: Mapping[str, jax.Array], **kwargs) -> Any:
        """Per-batch outputs (a tree of arrays) for the pass's evaluator; `kwargs` are the
        pass's static `step_kwargs`. Pure; jitted once per pass."""
        raise NotImplementedError

    def predict_step(self, state: Any, batch: Mapping[str, jax.Array]) -> Any:
        """The model's outputs in inference mode (common.bench times it)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ evaluation
    def eval_passes(self) -> list[EvalPass]:
        """The evaluations of a run; default: one pass `eval` over config.data.eval_split."""
        return [EvalPass("eval", self.config.data.eval_split)]

    def make_evaluator(self, eval_pass: EvalPass) -> Evaluator:
        """A fresh evaluator for one pass (see common.evaluators)."""
        raise NotImplementedError

    def summarize(self, results: Mapping[str, Mapping[str, Any]]) -> str | None:
        """A human-readable table of {pass: metrics} that common.evaluate prints, or None."""
        return None


class DatasetTask(Task):
    """A task over one dataset module and an epoch-based schedule: the module provides
    `source(config, split)` (a random-access source, for the training set's length),
    `train_dataset` and `eval_dataset(config, split, process_index, process_count)`; the run
    lasts config.num_epochs over the training split (or config.num_train_steps)."""

    def data_module(self):
        raise NotImplementedError

    @functools.cached_property
    def num_train_examples(self) -> int:
        n = int(self.config.data.num_train_examples)
        return n if n > 0 else len(self.data_module().source(self.config, self.config.data.train_split))

    def steps_per_epoch(self) -> float:
        return self.num_train_examples / self.config.batch_size

    def total_steps(self) -> int:
        from common import optim
        return optim.total_train_steps(self.config, self.steps_per_epoch())

    def input_pipeline(self, split, process_index, process_count, *, train):
        module = self.data_module()
        make = module.train_dataset if train else module.eval_dataset
        return make(self.config, split, process_index, process_count)


class SingleNetworkTask(DatasetTask):
    """A DatasetTask that trains one network, "model", with config.optim: subclasses give
    `init_variables(rng)` ({'params', ...other collections}, kept as the model state)."""

    def init_variables(self, rng):
        raise NotImplementedError

    @functools.cached_property
    def tx_and_schedule(self):
        from common import optim
        return optim.make_optimizer(self.config, self.steps_per_epoch())

    def param_groups(self):
        from common import optim
        return {"model": optim.ParamGroups(self.config.optim.groups)}

    def init(self, rng):
        from common.train_state import Network, TrainState
        variables = self.init_variables(rng)
        model_state = {k: v for k, v in variables.items() if k != "params"}
        return TrainState.create(model=Network.create(variables["params"], self.tx_and_schedule[0], model_state))


TASKS: Registry[type] = Registry("task")


def register_task(name: str):
    return TASKS.decorator(name)


def get_task(spec: str) -> type:
    importlib.import_module("common.classification")   # the tasks common/ defines itself
    return TASKS.get(spec)
