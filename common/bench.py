"""Throughput, FLOPs and MFU of a config's model, optionally beside a PyTorch reference.

  python -m common.bench --config=CONFIG.py --batch 16 --reference timm:MODEL_NAME
  python -m common.bench --config=CONFIG.py --batch 16 --reference PKG:NAME@/path/to/official/checkout

Train step = the task's real train_step (forward + backward + optimizer update of every
network, Mixup included) on the task's `synthetic_batch`; inference = the task's
`predict_step`. Figures are medians over timed steps after
compilation. FLOPs come from XLA's cost analysis of the compiled programs; MFU divides
achieved FLOP/s by this machine's matmul peak, measured in the same run. The last line
printed is one JSON object with every figure.
"""
import importlib
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import config_flags

from common import cli


def _median_time(fn, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(dtype=jnp.float32, n: int = 2048, steps: int = 10) -> float:
    """FLOP/s of a large square matmul: the practical peak this backend reaches."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t = _median_time(lambda: f(a).block_until_ready(), steps)
    return 2.0 * n ** 3 / t


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", 0.0)) if cost else 0.0


def _prepared(config, batch: int, token_chunk: int | None = None):
    """The config at this batch, with one update per step; `token_chunk` overrides the
    model's MLP chunking (for a model that takes one, see `_chunks`)."""
    config = config.copy_and_resolve_references()
    config.unlock()
    config.batch_size = batch
    if "grad_accum_steps" in config.get("optim", {}):
        config.optim.grad_accum_steps = 1
    data = config.get("data", {})
    if "num_train_examples" in data and data.num_train_examples <= 0:   # the schedule's length only
        data.num_train_examples = 1000 * batch
    if token_chunk is not None:
        config.model.kwargs.token_chunk = token_chunk
    config.lock()
    return config


def _compiled_steps(config, batch: int, token_chunk: int | None = None):
    """(state, global batch, compiled train step, compiled predict step) of a fresh run."""
    from common import sharding
    from common.runner import Run
    run = Run(_prepared(config, batch, token_chunk))
    state = run.init_state()
    gb = sharding.global_batch(run.task.synthetic_batch(batch), run.mesh)
    rng = jax.random.PRNGKey(0)
    train = run.jit_train_step().lower(state, gb, rng).compile()
    predict = jax.jit(run.task.predict_step).lower(state, gb).compile()
    return state, gb, train, predict


def bench_jax(config, batch: int, steps: int) -> dict:
    state, gb, train_c, predict_c = _compiled_steps(config, batch)
    rng = jax.random.PRNGKey(0)
    holder = {"state": state}

    def one_train():
        holder["state"], m = train_c(holder["state"], gb, rng)
        jax.block_until_ready(m)

    t_train = _median_time(one_train, steps)
    t_infer = _median_time(lambda: jax.block_until_ready(predict_c(holder["state"], gb)), steps)
    # XLA's cost analysis counts a loop body once: count FLOPs on programs without MLP chunking
    # (compiled again only for a model that chunks).
    train_flat, predict_flat = train_c, predict_c
    if _chunks(config):
        _, _, train_flat, predict_flat = _compiled_steps(config, batch, token_chunk=0)
    return {"input_shape": list(np.shape(gb["image"])) if "image" in gb else None,"train_step_s": t_train, "train_examples_per_s": batch / t_train,
            "infer_step_s": t_infer, "infer_examples_per_s": batch / t_infer,
            "train_flops_per_step": _flops(train_flat), "infer_flops_per_step": _flops(predict_flat),
            "devices": jax.device_count(), "platform": jax.devices()[0].platform,
            "dtype": config.model.dtype}


def _chunks(config) -> bool:
    """Whether the config's model takes an MLP chunking setting (`token_chunk`)."""
    from common import models
    return bool(config.model.name) and models.accepts(config.model.name, "token_chunk")


def build_reference(spec: str, num_classes: int):
    """`timm:NAME`, or `PKG:NAME@CHECKOUT` -> PKG.reference.build_official(NAME, CHECKOUT)."""
    kind, _, rest = spec.partition(":")
    if kind == "timm":
        import timm
        return timm.create_model(rest, pretrained=False, num_classes=num_classes)
    name, _, path = rest.partition("@")
    return importlib.import_module(f"{kind}.reference").build_official(name, path)


def bench_torch(model, input_shape_nhwc, num_classes: int, steps: int) -> dict:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    b = input_shape_nhwc[0]
    x = torch.randn(b, input_shape_nhwc[-1], *input_shape_nhwc[1:-1])
    y = torch.randint(0, num_classes, (b,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def one_train():
        opt.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        loss_fn(out, y).backward()
        opt.step()

    t_train = _median_time(one_train, steps)
    model.eval()

    def one_infer():
        with torch.inference_mode():
            model(x)

    t_infer = _median_time(one_infer, steps)
    return {"train_step_s": t_train, "train_examples_per_s": b / t_train,
            "infer_step_s": t_infer, "infer_examples_per_s": b / t_infer,
            "torch": torch.__version__, "threads": torch.get_num_threads()}




def run_benchmark(config, batch: int, steps: int, reference: str = "") -> dict:
    peak = matmul_peak(jnp.bfloat16 if config.model.dtype == "bfloat16" else jnp.float32)
    ours = bench_jax(config, batch, steps)
    result = {"model": config.model.name, "batch": batch, "matmul_peak_flops": peak, **ours,
              "train_mfu": ours["train_flops_per_step"] / ours["train_step_s"] / peak,
              "infer_mfu": ours["infer_flops_per_step"] / ours["infer_step_s"] / peak}
    if reference:
        shape = tuple(ours["input_shape"])
        ref = bench_torch(build_reference(reference, config.model.num_classes), shape,
                          config.model.num_classes, steps)
        result.update({f"reference_{k}": v for k, v in ref.items()})
        result["reference"] = reference
        result["train_speedup"] = ours["train_examples_per_s"] / ref["train_examples_per_s"]
        result["infer_speedup"] = ours["infer_examples_per_s"] / ref["infer_examples_per_s"]
    return result


def _report(r: dict) -> None:
    print(f"model {r['model']}  batch {r['batch']}  {r['devices']} {r['platform']} device(s), {r['dtype']}")
    print(f"matmul peak: {r['matmul_peak_flops'] / 1e9:.1f} GFLOP/s")
    for kind in ("train", "infer"):
        line = (f"{kind:5s}: {r[f'{kind}_examples_per_s']:8.1f} ex/s  step {1e3 * r[f'{kind}_step_s']:8.1f} ms  "
                f"{r[f'{kind}_flops_per_step'] / 1e9:8.2f} GFLOP/step  MFU {100 * r[f'{kind}_mfu']:5.1f}%")
        if "reference" in r:
            line += (f"  | reference {r[f'reference_{kind}_examples_per_s']:8.1f} ex/s  "
                     f"x{r[f'{kind}_speedup']:.2f}")
        print(line)
    print(json.dumps(r))


def main():
    # flags are defined here, not at import: run_benchmark is also called from other programs
    config = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).", lock_config=True)
    batch = flags.DEFINE_integer("batch", 16, "Global batch size.")
    steps = flags.DEFINE_integer("steps", 10, "Timed steps (the median is reported).")
    reference = flags.DEFINE_string("reference", "", "timm:NAME or PKG:NAME@CHECKOUT")
    flags.mark_flag_as_required("config")
    cli.run(lambda argv: _report(run_benchmark(config.value, batch.value, steps.value, reference.value)))


if __name__ == "__main__":
    main()
