"""Throughput, FLOPs and MFU of a config's model, optionally beside a PyTorch reference.

  python -m common.bench --config=CONFIG.py --batch 16 --reference timm:MODEL_NAME
  python -m common.bench --config=CONFIG.py --batch 16 --reference PKG:NAME@/path/to/official/checkout

Train step = the task's real train_step (forward + backward + optimizer update of every
network, Mixup included) on the task's `synthetic_batch`; inference = the task's
`predict_step`; the reference trains with AdamW and cross-entropy on hard labels (less work
than ours where the task adds Mixup: never in our favour). Ours and the reference run in
alternating rounds (A B, B A, ...) so a change of load hits both; medians and spreads over
every timed step after compilation. FLOPs come from XLA's cost analysis of the compiled
programs; MFU divides achieved FLOP/s by the matmul peak measured before and after in the
same run. Other processes on the CPUs and a peak that moved by more than 15 percent are warnings
in the output and the JSON; `--check_idle` refuses to start on a busy machine. The last line
printed is one JSON object with every figure, the CPU model, the library versions and the
command.
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


def median_time(fn, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(_times(fn, steps))


def median_ms(fn, *args, steps: int = 5) -> float:
    """Milliseconds, median over `steps` calls of fn(*args) blocked on its result, after the
    warm-up calls (the first compiles): the micro-benchmarks' timer."""
    return 1e3 * median_time(lambda: jax.block_until_ready(fn(*args)), steps)


def _times(fn, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def matmul_peak(dtype=jnp.float32, n: int = 2048, steps: int = 10) -> float:
    """FLOP/s of a large square matmul: the practical peak this backend reaches."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t = median_time(lambda: f(a).block_until_ready(), steps)
    return 2.0 * n ** 3 / t


# ---------------------------------------------------------------- interleaved timing
def interleaved(fns: dict, rounds: int, steps: int, warmup: int = 2) -> dict[str, dict]:
    """Time several step functions in alternating rounds (A B, then B A, ...), so a change in
    the machine's load during the run hits every side alike instead of favouring whichever
    ran in the quiet half. Returns {name: {median_s, min_s, max_s, spread}} over all steps
    (spread = (p90 - p10) / median)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name] += _times(fns[name], steps)
    return {name: _summary(t) for name, t in times.items()}


def _summary(t: list[float]) -> dict:
    q = np.percentile(t, [10, 50, 90])
    return {"median_s": float(q[1]), "min_s": float(min(t)), "max_s": float(max(t)),
            "spread": float((q[2] - q[0]) / q[1]), "samples": len(t)}


# ---------------------------------------------------------------- the machine
def machine() -> dict:
    """What the figures were measured on: CPU model and count, library versions, the command."""
    import platform
    import sys
    info = {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "numpy": np.__version__, "command": " ".join(sys.argv),
            "devices": [str(d.device_kind) for d in jax.devices()][:1] + [f"x{jax.device_count()}"]}
    for lib in ("jaxlib", "flax", "torch", "timm"):
        try:
            info[lib] = importlib.import_module(lib).__version__
        except ImportError:
            pass
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or "unknown"


def busy_processes(sample_s: float = 1.0, threshold: float = 0.2) -> list[tuple[int, str, float]]:
    """Other processes using more than `threshold` of a core over `sample_s` seconds (Linux)."""
    def cpu_times():
        out = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/comm") as f:
                    name = f.read().strip()
                out[int(pid)] = (int(fields[11]) + int(fields[12]), name)
            except (OSError, IndexError, ValueError):
                continue
        return out
    if not os.path.isdir("/proc"):
        return []
    before = cpu_times()
    time.sleep(sample_s)
    after = cpu_times()
    tick = os.sysconf("SC_CLK_TCK")
    mine = {os.getpid(), os.getppid()}
    busy = [(pid, name, (t - before[pid][0]) / tick / sample_s) for pid, (t, name) in after.items()
            if pid in before and pid not in mine]
    return sorted([b for b in busy if b[2] > threshold], key=lambda b: -b[2])


def idle_check() -> dict:
    """Load average and busy processes now; `idle` is False when other work shares the CPUs."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = busy_processes()
    used = sum(b[2] for b in busy)
    return {"load_avg_1m": load, "other_processes_cores": round(used, 2),
            "busy_processes": [f"{name}({pid}) {share:.0%}" for pid, name, share in busy[:5]],
            "idle": used < 0.25 * (os.cpu_count() or 1)}


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", 0.0)) if cost else 0.0


_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "pred": 1, "s8": 1, "u8": 1}


def collectives(compiled) -> dict[str, dict]:
    """The communication XLA inserted into a compiled program: per collective kind, how many
    ops and how many bytes their results hold (per device, from the optimised HLO's shapes)."""
    import re
    out = {}
    op = re.compile(r"=\s*(\(?[^=]*?\)?)\s+(" + "|".join(_COLLECTIVES) + r")(-start)?\(")
    shape = re.compile(r"\b(" + "|".join(_BYTES) + r")\[([0-9,]*)\]")
    for line in compiled.as_text().splitlines():
        m = op.search(re.sub(r"/\*.*?\*/", "", line))      # long tuples carry /*index=N*/ comments
        if not m:
            continue
        nbytes = sum(_BYTES[t] * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
                     for t, dims in shape.findall(m.group(1)))
        entry = out.setdefault(m.group(2), {"ops": 0, "bytes": 0})
        entry["ops"] += 1
        entry["bytes"] += nbytes
    return out


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
    run, state, gb, lowered = lowered_train_step(config, batch, token_chunk)
    predict = jax.jit(run.task.predict_step).lower(state, gb).compile()
    return state, gb, lowered.compile(), predict


def lowered_train_step(config, batch: int, token_chunk: int | None = None):
    """(run, fresh state, global synthetic batch, the train step lowered for them, not yet
    compiled: one lowering can be compiled with several XLA options)."""
    from common import sharding
    from common.runner import Run
    run = Run(_prepared(config, batch, token_chunk))
    state = run.init_state()
    gb = sharding.global_batch(run.task.synthetic_batch(batch), run.mesh)
    return run, state, gb, run.jit_train_step().lower(state, gb, jax.random.PRNGKey(0))


def jax_steps(config, batch: int):
    """(train step fn, inference fn, facts) of the config's task at `batch`, compiled."""
    state, gb, train_c, predict_c = _compiled_steps(config, batch)
    rng = jax.random.PRNGKey(0)
    holder = {"state": state}

    def one_train():
        holder["state"], m = train_c(holder["state"], gb, rng)
        jax.block_until_ready(m)

    def one_infer():
        jax.block_until_ready(predict_c(holder["state"], gb))
    # XLA's cost analysis counts a loop body once: count FLOPs on programs without MLP chunking
    # or banded conv gradients (compiled again only for a model that chunks; the one model with
    # banded convs does).
    train_flat, predict_flat = train_c, predict_c
    if _chunks(config):
        from common.layers.banded_conv import unrolled_for_cost_analysis
        with unrolled_for_cost_analysis():
            _, _, train_flat, predict_flat = _compiled_steps(config, batch, token_chunk=0)
    facts = {"input_shape": list(np.shape(gb["image"])) if "image" in gb else None,
             "train_flops_per_step": _flops(train_flat), "infer_flops_per_step": _flops(predict_flat),
             "devices": jax.device_count(), "platform": jax.devices()[0].platform,
             "mesh": dict(config.mesh), "train_collectives": collectives(train_c),
             "dtype": config.model.dtype,
             "loss": f"the task's own train_step ({config.task}: as in training, e.g. Mixup/CutMix "
                     "soft-target CE or token labels), AdamW-family optimizer of the config"}
    return one_train, one_infer, facts


def _chunks(config) -> bool:
    """Whether the config's model takes an MLP chunking setting (`token_chunk`)."""
    from common import models
    return bool(config.model.name) and models.accepts(config.model.name, "token_chunk")


def build_reference(spec: str, num_classes: int, input_shape=None, model_kwargs=None):
    """`timm:NAME`, or `PKG:NAME@CHECKOUT` -> PKG.reference.build_official(NAME, CHECKOUT), given
    `num_classes`, the input's NHWC / NTHWC `input_shape` and our `config.model.kwargs` where the
    builder takes them (a video model is built for its clip size and its window overrides)."""
    import inspect
    kind, _, rest = spec.partition(":")
    if kind == "timm":
        import timm
        return timm.create_model(rest, pretrained=False, num_classes=num_classes)
    name, _, path = rest.partition("@")
    build = importlib.import_module(f"{kind}.reference").build_official
    params = inspect.signature(build).parameters
    given = {k: v for k, v in (("num_classes", num_classes), ("input_shape", input_shape),
                               ("model_kwargs", model_kwargs)) if k in params}
    return build(name, path, **given)


def torch_steps(model, input_shape_nhwc, num_classes: int, bf16: bool = False):
    """(train step fn, inference fn, facts) of a PyTorch model: AdamW, cross-entropy on hard
    labels. On CUDA (when JAX runs on a GPU too): channels_last, autocast bf16 when ours runs
    in bfloat16, synchronised timing; on the CPU all threads."""
    import torch
    cuda = torch.cuda.is_available() and jax.devices()[0].platform == "gpu"
    dev = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(os.cpu_count() or 1)
    b = input_shape_nhwc[0]
    model = model.to(dev)
    x = torch.randn(b, input_shape_nhwc[-1], *input_shape_nhwc[1:-1], device=dev)
    if cuda and x.ndim == 4:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (b,), device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if bf16 else _no_context
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def one_train():
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        sync()

    def one_infer():
        model.eval()
        with torch.inference_mode(), autocast():
            model(x)
        sync()
    return one_train, one_infer, {"torch": torch.__version__, "device": str(dev),
                                  "threads": torch.get_num_threads(), "autocast_bf16": bf16,
                                  "loss": "cross-entropy on hard labels (no Mixup), AdamW"}


def _no_context():
    import contextlib
    return contextlib.nullcontext()


PEAK_DRIFT = 0.15     # matmul peaks before/after that differ more than this: the load changed


def run_benchmark(config, batch: int, steps: int, reference: str = "", rounds: int = 3,
                  check_idle: bool = False, matmul_size: int = 2048) -> dict:
    """Ours (and the reference) timed in `rounds` alternating rounds of `steps` steps each,
    between two measurements of the matmul peak and of the machine's load."""
    before = idle_check()
    if check_idle and not before["idle"]:
        from common.errors import UserError
        raise UserError(f"the machine is busy (load {before['load_avg_1m']:.2f}; "
                        f"{', '.join(before['busy_processes'])}): figures would be skewed; stop them or "
                        "drop --check_idle")
    dtype = jnp.bfloat16 if config.model.dtype == "bfloat16" else jnp.float32
    peak_before = matmul_peak(dtype, matmul_size)
    train, infer, facts = jax_steps(config, batch)
    trains, infers = {"ours": train}, {"ours": infer}
    ref_facts = {}
    if reference:
        r_train, r_infer, ref_facts = torch_steps(build_reference(reference, config.model.num_classes,
                                                                  facts["input_shape"],
                                                                  config.model.get("kwargs", {}).to_dict()),
                                                  tuple(facts["input_shape"]), config.model.num_classes,
                                                  bf16=config.model.dtype == "bfloat16")
        trains["reference"], infers["reference"] = r_train, r_infer
    t = interleaved(trains, rounds, steps)
    i = interleaved(infers, rounds, steps)
    peak_after = matmul_peak(dtype, matmul_size)
    after = idle_check()
    peak = max(peak_before, peak_after)
    result = {"model": config.model.name, "batch": batch, "rounds": rounds, "steps_per_round": steps,
              "matmul_peak_flops": peak, "matmul_peak_before": peak_before, "matmul_peak_after": peak_after,
              **facts,
              "train_step_s": t["ours"]["median_s"], "train_examples_per_s": batch / t["ours"]["median_s"],
              "train_spread": t["ours"]["spread"],
              "infer_step_s": i["ours"]["median_s"], "infer_examples_per_s": batch / i["ours"]["median_s"],
              "infer_spread": i["ours"]["spread"],
              "machine": machine(), "load_before": before, "load_after": after}
    result["train_mfu"] = facts["train_flops_per_step"] / result["train_step_s"] / peak
    result["infer_mfu"] = facts["infer_flops_per_step"] / result["infer_step_s"] / peak
    if reference:
        result.update({f"reference_{k}": v for k, v in ref_facts.items()})
        result["reference"] = reference
        for kind, timing in (("train", t), ("infer", i)):
            ref = timing["reference"]
            result[f"reference_{kind}_step_s"] = ref["median_s"]
            result[f"reference_{kind}_examples_per_s"] = batch / ref["median_s"]
            result[f"reference_{kind}_spread"] = ref["spread"]
            result[f"{kind}_speedup"] = ref["median_s"] / timing["ours"]["median_s"]
    result["warnings"] = _warnings(result)
    return result


def _warnings(r: dict) -> list[str]:
    out = []
    drift = abs(r["matmul_peak_before"] - r["matmul_peak_after"]) / max(r["matmul_peak_before"], 1.0)
    if drift > PEAK_DRIFT:
        out.append(f"the matmul peak changed by {drift:.0%} during the run "
                   f"({r['matmul_peak_before'] / 1e9:.0f} -> {r['matmul_peak_after'] / 1e9:.0f} GFLOP/s): "
                   "the machine's load changed")
    for when in ("load_before", "load_after"):
        if not r[when]["idle"]:
            out.append(f"busy machine ({when.split('_')[1]}): {', '.join(r[when]['busy_processes'])}")
    return out


def _report(r: dict, json_out: str = "") -> None:
    print(f"model {r['model']}  batch {r['batch']}  {r['devices']} {r['platform']} device(s), {r['dtype']}  "
          f"({r['machine']['cpu']}, {r['rounds']} interleaved rounds x {r['steps_per_round']} steps)")
    print(f"matmul peak: {r['matmul_peak_before'] / 1e9:.1f} GFLOP/s before, "
          f"{r['matmul_peak_after'] / 1e9:.1f} after")
    for kind in ("train", "infer"):
        line = (f"{kind:5s}: {r[f'{kind}_examples_per_s']:8.1f} ex/s  step {1e3 * r[f'{kind}_step_s']:8.1f} ms  "
                f"±{100 * r[f'{kind}_spread']:.0f}%  {r[f'{kind}_flops_per_step'] / 1e9:8.2f} GFLOP/step  "
                f"MFU {100 * r[f'{kind}_mfu']:5.1f}%")
        if "reference" in r:
            line += (f"  | reference {r[f'reference_{kind}_examples_per_s']:8.1f} ex/s  "
                     f"±{100 * r[f'reference_{kind}_spread']:.0f}%  x{r[f'{kind}_speedup']:.2f}")
        print(line)
    for w in r["warnings"]:
        print(f"WARNING: {w}")
    print(json.dumps(r))
    if json_out:
        os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
        with open(json_out, "w") as f:
            json.dump(r, f, indent=1)


def main():
    # flags are defined here, not at import: run_benchmark is also called from other programs
    config = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).", lock_config=True)
    batch = flags.DEFINE_integer("batch", 16, "Global batch size.")
    steps = flags.DEFINE_integer("steps", 5, "Timed steps per round and side (medians are reported).")
    rounds = flags.DEFINE_integer("rounds", 3, "Rounds alternating ours and the reference.")
    reference = flags.DEFINE_string("reference", "", "timm:NAME or PKG:NAME@CHECKOUT")
    check_idle = flags.DEFINE_bool("check_idle", False, "Refuse to run while other processes use the CPUs.")
    json_out = flags.DEFINE_string("json_out", "", "Also write the result's JSON to this file.")
    matmul_size = flags.DEFINE_integer("matmul_size", 2048, "Side of the square matmul of the peak.")
    flags.mark_flag_as_required("config")
    cli.run(lambda argv: _report(run_benchmark(config.value, batch.value, steps.value, reference.value,
                                               rounds.value, check_idle.value, matmul_size.value),
                                 json_out.value))


if __name__ == "__main__":
    main()
