"""The features API of every backbone.

`model.apply(variables, x, features=("layer2", 4, "pooled"))` returns {name: array} for the
requested taps instead of the model's usual output. A tap is given by name, or by an index
into the model's `stage_names`: 0 is the stem's output, i the output of stage i. Each
model's docstring lists its names; besides the stage maps, every model has

  "pooled": the vector its classifier reads, [B, D];
  "head":   its classifier's output (what the call returns without `features`).

The forward pass stops after the last tap it needs, so `init` with `features` creates only
the parameters of the layers they need (a detection backbone gets no classifier).
`features` is static: jit a closure over it, or `jax.jit(model.apply, static_argnames="features")`.
"""
from typing import Sequence, Union

Feature = Union[str, int]


class Taps:
    """The requested taps of one forward pass, recorded as the pass reaches them.

    A model calls `taps.add(name, x)` after each named layer and returns `taps.out` as soon
    as it says True (every requested tap is recorded), and ends with `return
    taps.finish(output)`; a model that passes `taps` to a submodule checks `taps.done` after
    the call. With `features=None` nothing is recorded and `add` is always False."""

    def __init__(self, features: Sequence[Feature] | None, stage_names: Sequence[str],
                 other_names: Sequence[str] = ("pooled", "head")):
        self.wanted = None if features is None else _resolve(features, tuple(stage_names), tuple(other_names))
        self.out: dict = {}

    @classmethod
    def of(cls, features, stage_names: Sequence[str], other_names: Sequence[str] = ("pooled", "head")) -> "Taps":
        """`features` as Taps: a module called by an outer model shares the outer model's Taps."""
        return features if isinstance(features, Taps) else cls(features, stage_names, other_names)

    @property
    def done(self) -> bool:
        return self.wanted is not None and len(self.out) == len(self.wanted)

    def wants(self, name: str) -> bool:
        return self.wanted is not None and name in self.wanted

    def add(self, name: str, x) -> bool:
        if self.wants(name):
            self.out[name] = x
        return self.done

    def finish(self, output, name: str = "head"):
        """A model's return value: its `output`, recorded as the tap `name`; the taps instead
        once every requested tap is recorded."""
        return self.out if self.add(name, output) else output


def _resolve(features, stage_names: tuple, other_names: tuple) -> tuple[str, ...]:
    if isinstance(features, (str, int)) or not len(features):
        raise ValueError(f"features must be a non-empty sequence of names or stage indices, got {features!r}")
    names = []
    for f in features:
        if isinstance(f, int):
            if not 0 <= f < len(stage_names):
                raise ValueError(f"stage index {f} out of range: stages are {stage_names}")
            f = stage_names[f]
        if f not in stage_names + other_names:
            raise ValueError(f"unknown feature {f!r}; this model has {stage_names + other_names}")
        if f not in names:
            names.append(f)
    return tuple(names)
