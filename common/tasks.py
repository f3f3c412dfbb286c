"""The Task protocol: everything the loop (common.train), common.evaluate, common.bench
and `init_from` read from a task, and the registry that finds a task from `config.task`.

A task is a class built from the config, `task = get_task(config.task)(config)`; it lives
where its paper lives and registers itself with `@register_task("name")`. The config names
it `"module:name"` (`"mypackage.task:my_task"`), `"module"` when the module registers
one task, or a bare name for the tasks `common/` defines (`"classification"`). Subclassing
`Task` gives the defaults of the optional members below.
"""
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


TASKS: Registry[type] = Registry("task")


def register_task(name: str):
    return TASKS.decorator(name)


def get_task(spec: str) -> type:
    importlib.import_module("common.classification")   # the tasks common/ defines itself
    return TASKS.get(spec)
