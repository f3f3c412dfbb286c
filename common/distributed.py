"""Multi-process start-up: `jax.distributed.initialize` from flags or the cluster's env."""
import hashlib
import json
import os

import jax
import numpy as np

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


def assert_same_config(config) -> None:
    """Refuse to start when the processes were given different configs."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    mine = np.frombuffer(digest.digest()[:8], np.int64)
    everyone = multihost_utils.process_allgather(mine)
    if not np.all(everyone == everyone.reshape(-1)[0]):
        raise ValueError(f"process {jax.process_index()}: the {jax.process_count()} processes were "
                         "started with different configs; start them all with the same flags")
