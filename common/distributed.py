"""Multi-process start-up: `jax.distributed.initialize` from flags or the cluster's env."""
import hashlib
import json
import os

import jax

from common.errors import first_line

_CLUSTER_ENV = ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES",
                "OMPI_COMM_WORLD_SIZE")


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None) -> None:
    """Explicit flags win; on TPU pods / SLURM / Open MPI jax auto-detects the rest."""
    if coordinator_address:
        # Cross-process collectives on the CPU backend (only affects CPU devices).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id)
    elif any(v in os.environ for v in _CLUSTER_ENV):
        jax.distributed.initialize()


AGREE_TIMEOUT_S = float(os.environ.get("COMMON_AGREE_TIMEOUT_S", "300"))


def assert_same_run(config, workdir: str, timeout_s: float | None = None) -> None:
    """Refuse to start when the processes were given different configs or workdirs (they
    would each wait for the others at the first checkpoint, forever). Goes through the
    coordinator's key-value store with a timeout, so a process that never arrives is
    reported by name instead of hanging a collective."""
    if _state().client is None or _state().num_processes in (None, 1):
        return
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
    mine = {"config": digest, "workdir": os.path.normpath(workdir)}
    others = agree("run", json.dumps(mine), timeout_s)
    me = _state().process_id
    for pid, value in others.items():
        theirs = json.loads(value)
        if theirs["config"] != mine["config"]:
            raise ValueError(f"process {me}: process {pid} was started with a different config; "
                             "start every process with the same flags")
        if theirs["workdir"] != mine["workdir"]:
            raise ValueError(f"process {me}: process {pid} was started with --workdir={theirs['workdir']}, "
                             f"this one with {mine['workdir']}; every process must write the same workdir")


_rounds: dict[str, int] = {}


def agree(what: str, value: str, timeout_s: float | None = None) -> dict[int, str]:
    """Publish `value` under `what` and return every other process's {process index: value};
    a process that has not published within `timeout_s` is named in a TimeoutError."""
    # the coordinator's state, not jax.process_index(): that would start the backend, which
    # itself waits for every process
    client, me, count = _state().client, _state().process_id, _state().num_processes
    timeout_s = AGREE_TIMEOUT_S if timeout_s is None else timeout_s
    n = _rounds[what] = _rounds.get(what, 0) + 1     # the same question asked again is a new round
    key = f"common/agree/{what}/{n}"
    client.key_value_set(f"{key}/{me}", value)
    out = {}
    for pid in range(count):
        if pid == me:
            continue
        try:
            out[pid] = client.blocking_key_value_get(f"{key}/{pid}", int(timeout_s * 1000))
        except Exception as e:  # noqa: BLE001 - the runtime raises a generic error on deadline
            raise TimeoutError(f"process {me} waited {timeout_s:.0f} s for process {pid} to report its "
                               f"{what} settings; is it running, with the same --coordinator_address and "
                               f"--num_processes? ({first_line(e, 200)})") from e
    return out


def _state():
    from jax._src import distributed as jax_distributed
    return jax_distributed.global_state
