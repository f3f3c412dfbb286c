"""grain pipelines over random-access sources, sharded per JAX process.

Determinism and resumability: the training stream is a function of (seed, global
position) alone. Records are shuffled per epoch over the whole dataset, each record's
augmentation RNG is derived from its global position, and process p of P reads rows
[p*b, (p+1)*b) of every global batch of B = P*b rows. So P processes together see
exactly the batches one process would, and the iterator state (one integer position)
makes a resumed run continue with exactly the batches an uninterrupted run sees.
"""
from typing import Any, Callable, Mapping, Sequence

import grain
import numpy as np


class ProcessRows(grain.MapDataset):
    """Element j of process p: global element (j // b) * B + p * b + j % b."""

    def __init__(self, parent: grain.MapDataset, global_batch: int, process_index: int,
                 process_count: int):
        super().__init__(parent)
        if global_batch % process_count:
            raise ValueError(f"global batch {global_batch} not divisible by {process_count} processes")
        self._B, self._b, self._p = global_batch, global_batch // process_count, process_index
        self._len = (len(parent) // global_batch) * self._b

    def __len__(self):
        return self._len

    def __str__(self):
        return f"ProcessRows(p={self._p}, b={self._b}, B={self._B})"

    def __getitem__(self, j):
        if isinstance(j, slice):
            return self.slice(j)
        return self._parent[(j // self._b) * self._B + self._p * self._b + j % self._b]


class PadToMultiple(grain.MapDataset):
    """Pads an eval set to a multiple of `multiple` with copies of element 0 marked
    `mask = 0`, so every example is evaluated once whatever the batch size."""

    def __init__(self, parent: grain.MapDataset, multiple: int):
        super().__init__(parent)
        self._n = len(parent)
        self._len = -(-self._n // multiple) * multiple

    def __len__(self):
        return self._len

    def __str__(self):
        return f"PadToMultiple({self._len})"

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.slice(i)
        ex = dict(self._parent[i if i < self._n else 0])
        ex["mask"] = np.float32(i < self._n)
        return ex


class EpochOrder(grain.MapDataset):
    """An infinite stream of source records whose order in epoch e is `order_fn(e)` (an
    array of source indices, any length): class-aware and re-balancing samplers plug in
    here. Deterministic: the order depends only on the epoch number."""

    def __init__(self, parent: grain.MapDataset, order_fn: Callable[[int], np.ndarray]):
        super().__init__(parent)
        self._order_fn = order_fn
        self._epoch_len = len(order_fn(0))
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self):
        return 1 << 62

    def __str__(self):
        return "EpochOrder"

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            self._cache = {epoch: np.asarray(self._order_fn(epoch))}
        return self._cache[epoch]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.slice(i)
        epoch, j = divmod(i, self._epoch_len)
        return self._parent[int(self._order(epoch)[j])]


def _read_options(num_threads: int, prefetch: int) -> grain.ReadOptions:
    return grain.ReadOptions(num_threads=max(1, num_threads), prefetch_buffer_size=max(1, prefetch))


def train_dataset(source, transform: Callable[[Mapping, np.random.Generator], Mapping],
                  global_batch: int, seed: int, process_index: int, process_count: int,
                  num_threads: int = 2, prefetch: int = 2,
                  order_fn: Callable[[int], np.ndarray] | None = None,
                  batch_fn: Callable[[Sequence[Mapping]], Mapping] | None = None) -> grain.IterDataset:
    """Infinite, per-epoch reshuffled (or `order_fn`-sampled), augmented, batched stream of
    this process's rows. `batch_fn` turns a list of elements into a batch (default: stack
    every leaf), e.g. to pad variable-size elements to a common shape."""
    if order_fn is None:
        ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
    else:
        ds = EpochOrder(grain.MapDataset.source(source), order_fn)
    ds = ds.random_map(transform, seed=seed + 1)
    ds = ProcessRows(ds, global_batch, process_index, process_count)
    ds = ds.batch(global_batch // process_count, drop_remainder=True, batch_fn=batch_fn)
    return ds.to_iter_dataset(_read_options(num_threads, prefetch))


def eval_dataset(source, transform: Callable[[Mapping], Mapping], global_batch: int,
                 process_index: int, process_count: int, num_threads: int = 2,
                 prefetch: int = 2,
                 batch_fn: Callable[[Sequence[Mapping]], Mapping] | None = None) -> grain.IterDataset:
    """One pass over the split in order, padded with masked copies to whole batches
    (`batch_fn` as in `train_dataset`)."""
    ds = grain.MapDataset.source(source).map(transform)
    ds = PadToMultiple(ds, global_batch)
    ds = ProcessRows(ds, global_batch, process_index, process_count)
    ds = ds.batch(global_batch // process_count, drop_remainder=True, batch_fn=batch_fn)
    return ds.to_iter_dataset(_read_options(num_threads, prefetch))


def iterator_state(it: Any) -> dict:
    return it.get_state()
