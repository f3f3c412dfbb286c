"""common.bench cannot flatter us: ours and the reference alternate in rounds, a moving
matmul peak or other busy processes are warnings, --check_idle refuses a busy machine, the
GPU script runs end to end (here on the CPU with a tiny batch), and the compiler-options A/B
times each variant of one step."""
import json
import os
import subprocess
import sys

import pytest

from common import bench
from common.errors import UserError
from tests.common.configs import ROOT, tiny_config
from tests.conftest import require


def test_rounds_alternate_so_load_changes_hit_both_sides():
    order = []
    fns = {"ours": lambda: order.append("A"), "reference": lambda: order.append("B")}
    out = bench.interleaved(fns, rounds=4, steps=2, warmup=1)
    assert "".join(order) == "AB" + "AABB" + "BBAA" + "AABB" + "BBAA"
    assert out["ours"]["samples"] == 8 and out["reference"]["samples"] == 8
    assert {"median_s", "min_s", "max_s", "spread"} <= set(out["ours"])


def _result(before, after, idle=True):
    load = {"idle": idle, "busy_processes": [] if idle else ["python(42) 95%"], "load_avg_1m": 1.0}
    return {"matmul_peak_before": before, "matmul_peak_after": after, "load_before": load, "load_after": load}


def test_a_moving_peak_or_a_busy_machine_is_a_warning():
    assert bench._warnings(_result(500e9, 480e9)) == []
    assert "changed by 50%" in bench._warnings(_result(500e9, 250e9))[0]
    assert any("python(42) 95%" in w for w in bench._warnings(_result(500e9, 500e9, idle=False)))


def test_check_idle_refuses_a_busy_machine(monkeypatch):
    monkeypatch.setattr(bench, "idle_check", lambda: {"idle": False, "load_avg_1m": 3.0,
                                                      "busy_processes": ["pytest(7) 100%"]})
    with pytest.raises(UserError, match=r"machine is busy .*pytest\(7\) 100%"):
        bench.run_benchmark(tiny_config(), batch=4, steps=1, check_idle=True)


def test_busy_processes_sees_a_spinning_child():
    spin = subprocess.Popen(["python3", "-c", "while True: pass"])
    try:
        busy = bench.busy_processes(sample_s=1.0, threshold=0.05)   # a share: other tests may run
    finally:
        spin.kill()
    assert any(pid == spin.pid and share > 0.05 for pid, _, share in busy), busy


def test_gpu_script_dry_run_on_the_cpu(tmp_path):
    require("timm")
    out = tmp_path / "gpu"
    env = {**os.environ, "MODELS": "poolformer_s12", "PRESET": ":test", "BATCH": "4", "STEPS": "1",
           "ROUNDS": "1", "DTYPE": "float32", "MATMUL_SIZE": "256"}
    env.pop("XLA_FLAGS", None)        # one CPU device, as on a user's machine
    proc = subprocess.run(["bash", "benchmarks/gpu.sh", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    r = json.load(open(out / "poolformer_s12.json"))
    assert r["batch"] == 4 and r["train_examples_per_s"] > 0 and r["reference"] == "timm:poolformer_s12"
    assert r["reference_train_examples_per_s"] > 0 and r["machine"]["cpu"] and r["machine"]["jax"]


def test_collectives_counts_what_a_data_and_model_mesh_inserts():
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    mesh = Mesh(np.array(jax.devices()[:4]).reshape(2, 2), ("data", "model"))
    x = jax.device_put(jnp.ones((8, 64)), NamedSharding(mesh, P("data", None)))
    w = jax.device_put(jnp.ones((64, 128)), NamedSharding(mesh, P(None, "model")))
    grad = jax.jit(jax.grad(lambda w, x: jnp.mean(jnp.tanh(x @ w) ** 2)),
                   out_shardings=NamedSharding(mesh, P(None, "model")))
    out = bench.collectives(grad.lower(w, x).compile())
    # the weight gradient is summed over the data axis: one all-reduce of the local [64, 64] shard
    assert out["all-reduce"] == {"ops": 1, "bytes": 64 * 64 * 4}, out
    assert bench.collectives(jax.jit(lambda a: a * 2).lower(jnp.ones(4)).compile()) == {}


def test_reference_builders_get_the_clip_shape_and_model_kwargs(monkeypatch):
    import types
    seen = {}
    fake = types.SimpleNamespace(build_official=lambda name, path, num_classes=1, input_shape=None,
                                 model_kwargs=None: seen.update(name=name, path=path, n=num_classes,
                                                                shape=input_shape, kw=model_kwargs))
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: fake)
    bench.build_reference("fakepkg:tiny@/ckpt", 7, [2, 16, 224, 224, 3], {"fine_pysizes": ((8, 7, 7),)})
    assert seen == {"name": "tiny", "path": "/ckpt", "n": 7, "shape": [2, 16, 224, 224, 3],
                    "kw": {"fine_pysizes": ((8, 7, 7),)}}
    only_classes = types.SimpleNamespace(build_official=lambda name, path, num_classes=1, **kw:
                                         seen.update(kw=kw, n=num_classes))
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: only_classes)
    bench.build_reference("fakepkg:tiny@/ckpt", 3, [2, 8, 8, 3], {"x": 1})
    assert seen["kw"] == {} and seen["n"] == 3     # a builder without those parameters is not given them


def test_collectives_reads_a_combined_tuple_all_reduce():
    class Compiled:       # the optimised HLO of a data-parallel step: gradients in one tuple
        def as_text(self):
            return ("  %all-reduce.3 = (f32[64,64]{1,0}, f32[64]{0}, f32[8]{0}, f32[8]{0}, f32[8]{0}, "
                    "/*index=5*/f32[2,3]{1,0}) all-reduce(%a, %b, %c, %d, %e, /*index=5*/%f), channel_id=4\n"
                    "  %all-gather-start = f32[16]{0} all-gather-start(f32[8]{0} %g), dimensions={0}\n"
                    "  %all-gather-done = f32[16]{0} all-gather-done(%all-gather-start)\n")
    out = bench.collectives(Compiled())
    assert out == {"all-reduce": {"ops": 1, "bytes": 4 * (64 * 64 + 64 + 8 * 3 + 6)},
                   "all-gather": {"ops": 1, "bytes": 64}}, out


def test_compiler_options_ab_times_every_variant_of_one_step():
    """benchmarks/xla_options_ab.py compiles one lowered step per option set and alternates them;
    an option XLA does not know is an error, not a silently equal variant."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, "benchmarks/xla_options_ab.py", "--config=configs/metaformer/poolformer_s12.py:test",
           "--batch", "2", "--rounds", "2", "--steps", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if "ms/step" in line]
    assert [r[0] for r in rows] == ["default", "ynn_off"] and "x1.00" in rows[0]
    bad = subprocess.run(cmd + ['--variants={"bad": {"xla_cpu_no_such_option": 1}}'], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "xla_cpu_no_such_option" in bad.stderr
