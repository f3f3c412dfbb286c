"""Host-side evaluators: a task's jitted `eval_step` returns per-batch outputs (sums, or
per-example predictions with their `mask`), an evaluator accumulates them on the host and
computes the metrics at the end of the pass.

  evaluator = task.make_evaluator(eval_pass)      # a fresh one per pass
  for batch in split: evaluator.add(numpy outputs of eval_step)
  metrics = evaluator.compute()                   # {name: float or array}

`run_pass` overlaps the two: the device runs batch i+1 while a host thread fetches and
adds batch i (as scenic's DETR trainer scores COCO while the device runs), so a slow
evaluator (COCO AP, a matcher, FID statistics) does not stall the device.
"""
import dataclasses
import queue
import threading
from typing import Any, Callable, Iterable, Mapping, Protocol

import jax
import numpy as np


class Evaluator(Protocol):
    def add(self, outputs: Mapping[str, np.ndarray]) -> None:
        """One batch of `eval_step` outputs, as numpy arrays on the host."""

    def compute(self) -> dict[str, Any]:
        """The metrics of everything added: floats, ints or arrays."""


@dataclasses.dataclass(frozen=True)
class EvalPass:
    """One evaluation of a run: a split, a name for its metrics (`<name>/<metric>`), and
    static keyword arguments of `eval_step` (one compiled program per pass; e.g. a
    sampling ratio)."""
    name: str
    split: str
    step_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.step_kwargs)


class SumEvaluator:
    """Adds every output across batches (counts, sums of losses, confusion rows), then
    `finalize(sums)` turns the totals into metrics: the classification metrics."""

    def __init__(self, finalize: Callable[[Mapping[str, np.ndarray]], dict]):
        self._finalize, self._sums = finalize, None

    def add(self, outputs):
        outputs = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), outputs)
        self._sums = outputs if self._sums is None else jax.tree_util.tree_map(np.add, self._sums, outputs)

    def compute(self):
        if self._sums is None:
            raise ValueError("the evaluation split produced no batch")
        return self._finalize(self._sums)


class ConcatEvaluator:
    """Keeps every example's outputs (rows with mask 0 dropped), then `compute_fn(arrays)`
    scores the whole split: for metrics that are not sums (medians, AP, matching)."""

    def __init__(self, compute_fn: Callable[[dict[str, np.ndarray]], dict], mask_key: str = "mask"):
        self._fn, self._mask_key, self._parts = compute_fn, mask_key, []

    def add(self, outputs):
        outputs = dict(outputs)
        mask = outputs.pop(self._mask_key, None)
        keep = slice(None) if mask is None else np.asarray(mask) > 0
        self._parts.append({k: np.asarray(v)[keep] for k, v in outputs.items()})

    def compute(self):
        if not self._parts:
            raise ValueError("the evaluation split produced no batch")
        return self._fn({k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]})


def run_pass(evaluator: Evaluator, outputs: Iterable[Any], max_pending: int = 2) -> dict:
    """Feed device outputs to the evaluator from a host thread; returns `compute()`.

    `outputs` yields eval_step results as they are dispatched; at most `max_pending`
    are waiting for the host, so device memory stays bounded."""
    pending: queue.Queue = queue.Queue(maxsize=max_pending)
    failure: list[BaseException] = []

    def consume():
        while True:
            item = pending.get()
            if item is None:
                return
            if not failure:
                try:
                    evaluator.add(jax.device_get(item))
                except BaseException as e:   # re-raised in the caller's thread
                    failure.append(e)

    worker = threading.Thread(target=consume, name="evaluator", daemon=True)
    worker.start()
    try:
        for out in outputs:
            if failure:
                break
            pending.put(out)
    finally:
        pending.put(None)
        worker.join()
    if failure:
        raise failure[0]
    return evaluator.compute()
