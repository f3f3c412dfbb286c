"""Orbax checkpoints of the train state plus the data-iterator state.

Layout: DIR/checkpoints/<step>/{state, meta}. `meta` is JSON: the grain iterator state
and the open logging window, so a resumed run continues with exactly the batches and
logged values of an uninterrupted one. Saves are atomic (orbax writes to a temporary
directory and renames); a latest checkpoint that fails to restore (truncated or
corrupt files) is moved aside to DIR/checkpoints_corrupt/ with a warning and the
previous one is used, so nothing is deleted.
"""
import logging
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from common.train_state import SINGLE

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, workdir: str, keep: int = 3):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.corrupt_dir = os.path.abspath(os.path.join(workdir, "checkpoints_corrupt"))
        self.keep = keep
        self.manager = self._manager()

    def _manager(self):
        opts = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True,
                                            enable_async_checkpointing=False)
        return ocp.CheckpointManager(self.directory, options=opts, item_names=("state", "meta"))

    def save(self, step: int, state: Any, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
        """(step, state, meta) of the newest readable checkpoint, or None if there is none."""
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
                return step, restored["state"], restored["meta"]
            except Exception as e:  # truncated/corrupt files: keep them, use the previous one
                log.warning("checkpoint %d in %s cannot be restored (%s: %s); moving it to %s and "
                            "trying the previous one", step, self.directory, type(e).__name__, e,
                            self.corrupt_dir)
                if jax.process_index() == 0:
                    os.makedirs(self.corrupt_dir, exist_ok=True)
                    shutil.move(os.path.join(self.directory, str(step)),
                                os.path.join(self.corrupt_dir, str(step)))
                self.manager.close()
                self.manager = self._manager()
        return None

    def close(self):
        self.manager.close()


def save_variables(out_dir: str, variables: Any) -> str:
    """Write a variables tree ({'params': ..., 'batch_stats': ...}), or one per network
    ({'generator': {'params': ...}, ...}), as an orbax checkpoint that
    `common.evaluate --checkpoint` and `config.init_from` read."""
    path = os.path.abspath(out_dir)
    if os.path.exists(path):
        shutil.rmtree(path)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, variables)
    return path


def load_variables(path: str) -> Any:
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(path)


def load_nets(path: str) -> dict[str, dict]:
    """{network: variables {'params', ...}} from a `save_variables` directory (one network's
    variables, or {network: variables}), a training workdir (its latest checkpoint; EMA
    params where kept), or one step directory of a training run."""
    path = os.path.abspath(path)
    if os.path.isdir(os.path.join(path, "checkpoints")):
        path = os.path.join(path, "checkpoints")
    steps = [d for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
    if steps:
        path = os.path.join(path, max(steps, key=int))
    if os.path.isdir(os.path.join(path, "state")):
        with ocp.StandardCheckpointer() as ckptr:
            state = ckptr.restore(os.path.join(path, "state"))
        if "nets" not in state:       # written before states held named networks: one network
            state = {"nets": {SINGLE: state}}
        return {name: {"params": net["ema_params"] if net.get("ema_params") is not None else net["params"],
                       **(net.get("model_state") or {})}
                for name, net in state["nets"].items()}
    variables = load_variables(path)
    return {SINGLE: variables} if "params" in variables else variables


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
