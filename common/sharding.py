"""Device mesh from config, logical-axis rules, and global batches from host-local data.

`config.mesh` maps axis names to sizes (`-1` = all remaining devices), e.g.
{'data': -1, 'fsdp': 1, 'model': 1} on one host, {'data': 4, 'model': 2} for tensor
parallelism. Params are sharded by their logical axis names through
`config.logical_axis_rules`; batches are sharded over ('data', 'fsdp') on the leading axis.
"""
from typing import Any, Mapping

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

BATCH_AXES = ("data", "fsdp")


def make_mesh(mesh_config: Mapping[str, int], devices=None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    names = list(mesh_config.keys())
    sizes = [int(mesh_config[n]) for n in names]
    if sizes.count(-1) > 1:
        raise ValueError(f"config.mesh {dict(mesh_config)}: at most one axis may be -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"config.mesh {dict(mesh_config)} does not divide {len(devices)} devices")
        sizes[sizes.index(-1)] = len(devices) // known
    if int(np.prod(sizes)) != len(devices):
        raise ValueError(f"config.mesh {dict(zip(names, sizes))} needs {int(np.prod(sizes))} devices, "
                         f"{len(devices)} are available; set one axis to -1 to absorb the rest")
    try:
        grid = jax.experimental.mesh_utils.create_device_mesh(sizes, devices)
    except Exception:  # non-TPU topologies: plain row-major order
        grid = np.asarray(devices).reshape(sizes)
    return Mesh(grid, tuple(names))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names)
    return NamedSharding(mesh, P(axes))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def logical_shardings(abstract_tree: Any, mesh: Mesh, rules) -> Any:
    """NamedShardings for a (boxed, abstract) tree from its logical axis names. Leaves
    without names are replicated. The result has the structure of the *unboxed* tree."""
    specs = jax.tree_util.tree_map(_logical_spec, abstract_tree,
                                   is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    rules = [(k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in rules]
    # Mesh axes absent from this mesh are dropped from the rules.
    rules = [(k, _present(v, mesh)) for k, v in rules]
    # Map PartitionSpec leaves only: flax's own helper also takes any tuple for a leaf,
    # which turns optax's empty MaskedNode placeholders into shardings.
    return jax.tree_util.tree_map(
        lambda spec: NamedSharding(mesh, nn.logical_to_mesh_axes(spec, rules)), specs,
        is_leaf=lambda x: isinstance(x, P))


def _logical_spec(x):
    """PartitionSpec of logical names of a boxed leaf. optax's masked transforms leave boxes
    around empty MaskedNode placeholders: those stay empty nodes, not leaves."""
    if isinstance(x, nn.meta.AxisMetadata):
        value = x.unbox()
        return x.get_partition_spec() if jax.tree_util.tree_leaves(value) else value
    return P()


def _present(axes, mesh):
    if axes is None:
        return None
    if isinstance(axes, str):
        return axes if axes in mesh.axis_names else None
    kept = tuple(a for a in axes if a in mesh.axis_names)
    return kept or None


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble per-process numpy batches into global jax.Arrays sharded over the batch axes."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()}


def check_batch_divisible(global_batch_size: int, mesh: Mesh) -> None:
    n = int(np.prod([mesh.shape[a] for a in BATCH_AXES if a in mesh.axis_names]))
    if global_batch_size % n or global_batch_size % jax.process_count():
        raise ValueError(f"batch size {global_batch_size} must be divisible by the {n} batch shards "
                         f"and the {jax.process_count()} processes")
