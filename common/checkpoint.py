"""Orbax checkpoints of the train state plus the data-iterator state.

Layout: DIR/checkpoints/<step>/{state, meta}. `meta` is JSON: the grain iterator state,
the open logging window (so a resumed run continues with exactly the batches and logged
values of an uninterrupted one) and a fingerprint of every array of the state.

What can go wrong, and what happens:
- a checkpoint that cannot be read (truncated or corrupt files, or data that does not
  match its fingerprint — orbax reads flipped bytes without complaint) is moved aside to
  DIR/checkpoints_corrupt/<step> (never nested: a second one is <step>.1) with a one-line
  warning, and the previous checkpoint is used; nothing is deleted;
- a checkpoint whose arrays have other shapes than the model's was written by another
  model: that is an error naming the first mismatching array, never treated as corruption;
- `save_variables` refuses to write into a folder that holds anything but a checkpoint it
  wrote, and replaces one only when asked to.
"""
import contextlib
import json
import logging
import os
import shutil
import uuid
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from common.errors import UserError, first_line
from common.train_state import SINGLE

log = logging.getLogger(__name__)


class CheckpointMismatch(UserError, ValueError):
    """A readable checkpoint that does not fit the model (another model or config wrote it)."""


class UnreadableCheckpoint(UserError, RuntimeError):
    """A checkpoint whose files cannot be read or whose data fails its fingerprint."""


class Checkpointer:
    def __init__(self, workdir: str, keep: int = 3):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.corrupt_dir = os.path.abspath(os.path.join(workdir, "checkpoints_corrupt"))
        self.keep = keep
        self.manager = self._manager()

    def _manager(self):
        opts = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True,
                                            enable_async_checkpointing=False)
        # handlers named up front: item_metadata (the shapes, read before restoring) needs them
        return ocp.CheckpointManager(self.directory, options=opts, item_handlers={
            "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})

    def save(self, step: int, state: Any, meta: dict) -> None:
        meta = {**meta, "fingerprint": fingerprint(state)}
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
        """(step, state, meta) of the newest readable checkpoint, or None if there is none.
        Raises CheckpointMismatch when a readable checkpoint does not fit `abstract_state`."""
        for step in reversed(self.steps()):
            try:
                return (step, *self._restore(step, abstract_state))
            except UnreadableCheckpoint as e:
                moved = _move_aside(os.path.join(self.directory, str(step)), self.corrupt_dir)
                log.warning("checkpoint %d cannot be restored (%s); moved it to %s, trying the previous one",
                            step, e, moved)
                self.manager.reload()
        return None

    def _restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        path = os.path.join(self.directory, str(step))
        with _one_line_errors(path):
            stored = self.manager.item_metadata(step)["state"]
        check_shapes(stored, abstract_state, path)
        with _one_line_errors(path):
            restored = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        state, meta = restored["state"], restored["meta"]
        verify(state, meta.get("fingerprint"), path)
        return state, meta

    def close(self):
        self.manager.close()


# ---------------------------------------------------------------- fingerprints
def fingerprint(tree: Any) -> dict[str, int]:
    """{array path: a 32-bit position-weighted sum of the array's bits}. Any single flipped
    bit changes it; computed where the arrays live (sharded arrays need no gather)."""
    paths, leaves = _paths_and_leaves(tree)
    if not leaves:
        return {}
    sums = jax.device_get(_fingerprints(leaves))
    return {p: int(s) for p, s in zip(paths, sums)}


def verify(tree: Any, expected: dict | None, where: str) -> None:
    """Raise UnreadableCheckpoint when a restored array differs from its saved fingerprint
    (checkpoints written before fingerprints existed are not checked)."""
    if not expected:
        return
    got = fingerprint(tree)
    bad = [p for p, v in got.items() if p in expected and expected[p] != v]
    if bad:
        raise UnreadableCheckpoint(f"{len(bad)} arrays of {where} differ from the fingerprint saved "
                                   f"with them, first {bad[0]}")


def _paths_and_leaves(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    flat = [(p, x) for p, x in flat if hasattr(x, "dtype") and hasattr(x, "shape")]
    return [_path_str(p) for p, _ in flat], [x for _, x in flat]


def _path_str(kpath) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in kpath)


@jax.jit
def _fingerprints(leaves):
    return jnp.stack([_bits_sum(x) for x in leaves])


def _bits_sum(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    x = jnp.ravel(x)
    if x.dtype == jnp.bool_:
        bits = x.astype(jnp.uint32)
    else:
        width = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
        bits = jax.lax.bitcast_convert_type(x, width).reshape(-1).astype(jnp.uint32)
    # odd weights that differ by position: a flip anywhere, or two swapped values, changes the sum
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) | jnp.uint32(1)
    return jnp.sum(bits * weights, dtype=jnp.uint32)


# ---------------------------------------------------------------- shapes
def check_shapes(stored: Any, wanted: Any, where: str) -> None:
    """Raise CheckpointMismatch naming the first array whose shape differs, or that one side
    lacks; `stored` is orbax metadata (or arrays), `wanted` the model's abstract tree."""
    have = dict(zip(*_paths_and_leaves(stored)))
    want = dict(zip(*_paths_and_leaves(wanted)))
    missing = [p for p in want if p not in have]
    wrong = [p for p in want if p in have and tuple(have[p].shape) != tuple(want[p].shape)]
    if wrong:
        p = wrong[0]
        raise CheckpointMismatch(f"{where} was written by another model or config: {p} is "
                                 f"{tuple(have[p].shape)} there, the model wants {tuple(want[p].shape)} "
                                 f"({len(wrong)} of {len(want)} arrays differ)")
    if missing:
        raise CheckpointMismatch(f"{where} was written by another model or config: it has no {missing[0]} "
                                 f"({len(missing)} of {len(want)} arrays missing)")


# ---------------------------------------------------------------- files
@contextlib.contextmanager
def _one_line_errors(path: str):
    """Orbax / TensorStore read failures as UnreadableCheckpoint with the first line of the cause."""
    try:
        yield
    except CheckpointMismatch:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to decode the files means unreadable
        raise UnreadableCheckpoint(first_line(e)) from e


def _move_aside(src: str, dst_dir: str) -> str:
    """Move `src` into `dst_dir` under its own name, or name.1, name.2, ... if taken."""
    if jax.process_index() != 0:
        return os.path.join(dst_dir, os.path.basename(src))
    os.makedirs(dst_dir, exist_ok=True)
    base = os.path.join(dst_dir, os.path.basename(src))
    dst, n = base, 0
    while os.path.exists(dst):
        n += 1
        dst = f"{base}.{n}"
    shutil.move(src, dst)
    return dst


def is_orbax_checkpoint(path: str) -> bool:
    """A folder orbax wrote (its metadata file is there)."""
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, f))
                                       for f in ("_CHECKPOINT_METADATA", "_METADATA"))


def save_variables(out_dir: str, variables: Any, overwrite: bool = False) -> str:
    """Write a variables tree ({'params': ..., 'batch_stats': ...}), or one per network
    ({'generator': {'params': ...}, ...}), as an orbax checkpoint that
    `common.evaluate --checkpoint` and `config.init_from` read.

    An existing non-empty `out_dir` is an error unless it is a checkpoint this function
    wrote and `overwrite` is set; then the new one is written beside it and swapped in, so
    an interrupted write leaves the old checkpoint in place."""
    path = os.path.abspath(out_dir)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        if not is_orbax_checkpoint(path):
            raise FileExistsError(f"{path} exists and holds files that are not a checkpoint "
                                  f"({', '.join(sorted(os.listdir(path))[:3]) if os.path.isdir(path) else 'a file'}); "
                                  "nothing was written: choose an empty or new output folder")
        if not overwrite:
            raise FileExistsError(f"{path} already holds a checkpoint; choose another output folder, or "
                                  "pass --overwrite (converters) to replace it")
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp, variables)
    if os.path.exists(path):
        old = f"{path}.old-{uuid.uuid4().hex[:8]}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old)          # the checkpoint this function wrote before
    else:
        os.rename(tmp, path)
    return path


def load_variables(path: str) -> Any:
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    with _one_line_errors(path), ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(path)


# ---------------------------------------------------------------- reading for inference
def load_nets(path: str) -> dict[str, dict]:
    """{network: variables {'params', ...}} from a `save_variables` directory (one network's
    variables, or {network: variables}), a training workdir (its newest readable checkpoint;
    EMA params where kept), or one step directory of a training run.

    Only what inference needs is read (not the optimizer state), and checked against the
    fingerprints saved with it. In a workdir an unreadable checkpoint is skipped with a
    one-line warning (left where it is) and the previous one is used."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    if os.path.isdir(os.path.join(path, "checkpoints")):
        path = os.path.join(path, "checkpoints")
    steps = sorted((d for d in os.listdir(path) if d.isdigit()), key=int) if os.path.isdir(path) else []
    if steps:
        failures = []
        for step in reversed(steps):
            try:
                return _load_step_nets(os.path.join(path, step))
            except UnreadableCheckpoint as e:
                log.warning("checkpoint %s in %s cannot be read (%s); trying the previous one", step, path, e)
                failures.append(f"{step}: {e}")
        raise UnreadableCheckpoint(f"no readable checkpoint in {path}: " + "; ".join(failures))
    if os.path.isdir(os.path.join(path, "state")):
        return _load_step_nets(path)
    if os.path.basename(path) == "checkpoints" or (os.path.isdir(path) and not os.listdir(path)):
        raise FileNotFoundError(f"{path} holds no checkpoint yet (training saves one every "
                                "checkpoint_every_steps steps)")
    if not is_orbax_checkpoint(path):
        raise FileNotFoundError(f"{path} is not a checkpoint: give a converted checkpoint "
                                "(python -m <paper>.convert), a training workdir or one of its step folders")
    variables = load_variables(path)
    return {SINGLE: variables} if "params" in variables else variables


_INFERENCE_PARTS = ("params", "ema_params", "model_state")


def _load_step_nets(step_dir: str) -> dict[str, dict]:
    """The inference parts of every network of one training checkpoint, fingerprint-checked."""
    state_dir = os.path.join(step_dir, "state")
    with _one_line_errors(step_dir):
        ckptr = ocp.PyTreeCheckpointer()
        tree = ckptr.metadata(state_dir)
        tree = getattr(tree, "item_metadata", tree) or tree
        tree = getattr(tree, "tree", tree)
        legacy = "nets" not in tree     # written before states held named networks: one network
        nets = {SINGLE: tree} if legacy else tree["nets"]
        wanted = {name: {k: v for k, v in net.items() if k in _INFERENCE_PARTS and v is not None}
                  for name, net in nets.items()}
        item = wanted[SINGLE] if legacy else {"nets": wanted}
        restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
        state = ckptr.restore(state_dir, args=ocp.args.PyTreeRestore(
            item=item, restore_args=restore_args, partial_restore=True))
    meta = _read_meta(step_dir)
    verify(state if legacy else {"nets": state["nets"]}, meta.get("fingerprint"), step_dir)
    state = {"nets": {SINGLE: state}} if legacy else state
    return {name: {"params": net["ema_params"] if net.get("ema_params") is not None else net["params"],
                   **(net.get("model_state") or {})}
            for name, net in state["nets"].items()}


def _read_meta(step_dir: str) -> dict:
    meta_dir = os.path.join(step_dir, "meta")
    files = [f for f in os.listdir(meta_dir) if f.endswith(".json") or f == "metadata"] \
        if os.path.isdir(meta_dir) else []
    for f in files:
        with contextlib.suppress(ValueError, OSError), open(os.path.join(meta_dir, f)) as fh:
            meta = json.load(fh)
            if isinstance(meta, dict):
                return meta
    return {}


def pick_net(nets: dict[str, dict], net: str, path: str) -> dict:
    """The variables of network `net` among a checkpoint's `nets`; a checkpoint of a single
    network serves any name."""
    if net in nets:
        return nets[net]
    if len(nets) == 1:
        return next(iter(nets.values()))
    raise KeyError(f"{path} holds the networks {sorted(nets)}, not {net!r}")


def load_any(path: str, net: str = SINGLE) -> dict:
    """The variables of one network (see `load_nets` and `pick_net`)."""
    return pick_net(load_nets(path), net, path)
