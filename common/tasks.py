"""The Task protocol and the registry of tasks by name (`config.task`).

The training loop (common/train.py) knows nothing about any paper; it only calls:

  task = get_task(config.task)(config)
  task.input_pipeline(split, process_index, process_count) -> iterator of numpy batches
  task.init(rng) -> TrainState, params boxed with logical axis names (jit/eval_shape-able)
  task.train_step(state, batch, rng) -> (state, metrics)        (pure, jitted by the loop)
  task.eval_step(state, batch) -> {name: summed array}          (pure, jitted by the loop)
  task.finalize_eval(sums) -> {metric: float}
"""
import importlib
from typing import Any, Callable, Iterator, Mapping, Protocol

import jax


class Task(Protocol):
    config: Any

    def input_pipeline(self, split: str, process_index: int, process_count: int,
                       *, train: bool) -> Iterator[Mapping[str, Any]]: ...

    def init(self, rng: jax.Array) -> Any: ...

    def train_step(self, state: Any, batch: Mapping[str, jax.Array], rng: jax.Array): ...

    def eval_step(self, state: Any, batch: Mapping[str, jax.Array]) -> dict: ...

    def finalize_eval(self, sums: Mapping[str, Any]) -> dict: ...


_TASKS: dict[str, Callable[..., Task]] = {}

# Tasks that live in paper packages register themselves on import; this maps a task
# name to the module to import, so configs only need `config.task = "<name>"`.
_TASK_MODULES = {
    "classification": "common.classification",
    "volo_token_label": "volo.task",
    "video_classification": "dualformer.task",
    "longtail": "longtail.task",
}


def register_task(name: str):
    def wrap(cls):
        _TASKS[name] = cls
        return cls
    return wrap


def get_task(name: str) -> Callable[..., Task]:
    if name not in _TASKS and name in _TASK_MODULES:
        importlib.import_module(_TASK_MODULES[name])
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(set(_TASKS) | set(_TASK_MODULES))}")
    return _TASKS[name]
