"""Scaling figure: examples/s per device of one model's train step on 1, 2, 4 and 8 fake CPU
devices, over the data, fsdp and model axes, with the communication XLA inserts.

  python benchmarks/scaling.py --config=configs/metaformer/poolformer_s12.py --batch_per_device 4 \
      [--config.data.image_size=112 ...]     # other flags go to every common.bench run

Each point is its own `python -m common.bench` process (the device count is fixed when JAX
starts) with XLA_FLAGS=--xla_force_host_platform_device_count=N and the mesh on the command
line; the batch grows with the devices (weak scaling). Fake devices share the same CPU cores,
so the ideal on one machine is a constant total examples/s (per device: 1/N of it); what the
total loses below the 1-device figure is the cost of partitioning and communication. Writes
one JSON per point and a Markdown table (OUT_DIR/scaling.md, default benchmarks/scaling/).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The mesh for N devices: the pure layouts, and data x model for tensor parallelism.
LAYOUTS = (
    lambda n: {"data": n, "fsdp": 1, "model": 1},
    lambda n: {"data": 1, "fsdp": n, "model": 1},
    lambda n: {"data": n // 2, "fsdp": 1, "model": 2} if n >= 2 else None,
)


def point(config: str, devices: int, mesh: dict, batch: int, steps: int, out: str, extra=()) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    cmd = [sys.executable, "-m", "common.bench", f"--config={config}", "--batch", str(batch),
           "--steps", str(steps), "--rounds", "1", "--matmul_size", "1024", "--json_out", out]
    cmd += [f"--config.mesh.{axis}={size}" for axis, size in mesh.items()] + list(extra)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    with open(out) as f:
        return json.load(f)


def layout_of(mesh: dict) -> str:
    if mesh.get("model", 1) > 1:
        return f"data x model({mesh['model']})"
    return "fsdp" if mesh.get("fsdp", 1) > 1 else "data"


def table(rows: list[dict], base: float) -> str:
    lines = ["| devices | layout | mesh | global batch | ex/s (all devices) | ex/s per device | "
             "vs 1 device | collectives per train step (ops, MiB per device) | warnings |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        comm = ", ".join(f"{k} {v['ops']} ({v['bytes'] / 2 ** 20:.1f})"
                         for k, v in sorted(r["train_collectives"].items())) or "none"
        mesh = " ".join(f"{k}={v}" for k, v in r["mesh"].items())
        lines.append(f"| {r['devices']} | {layout_of(r['mesh'])} | {mesh} | {r['batch']} | "
                     f"{r['train_examples_per_s']:.2f} ±{100 * r['train_spread']:.0f}% | "
                     f"{r['train_examples_per_s'] / r['devices']:.2f} | "
                     f"{r['train_examples_per_s'] / base:.2f} | {comm} | {len(r['warnings'])} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/metaformer/poolformer_s12.py")
    p.add_argument("--batch_per_device", type=int, default=4)
    p.add_argument("--devices", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out_dir", default=os.path.join(ROOT, "benchmarks", "scaling"))
    p.add_argument("--table_only", action="store_true",
                   help="rewrite scaling.md from the JSONs already in --out_dir (no runs)")
    a, extra = p.parse_known_args()
    os.makedirs(a.out_dir, exist_ok=True)
    rows = []
    if a.table_only:
        rows = sorted((json.load(open(os.path.join(a.out_dir, f))) for f in os.listdir(a.out_dir)
                       if f.startswith("n") and f.endswith(".json")),
                      key=lambda r: (r["devices"], {"data": 0, "fsdp": 1}.get(layout_of(r["mesh"]), 2)))
    for n in ([] if a.table_only else [int(d) for d in a.devices.split(",")]):
        meshes = []
        for mesh in (layout(n) for layout in LAYOUTS):
            if mesh is not None and mesh not in meshes:     # one device: every layout is the same mesh
                meshes.append(mesh)
        for mesh in meshes:
            tag = "_".join(f"{k}{v}" for k, v in mesh.items())
            r = point(a.config, n, mesh, a.batch_per_device * n, a.steps,
                      os.path.join(a.out_dir, f"n{n}_{tag}.json"), extra)
            rows.append(r)
            print(f"{n} devices {layout_of(mesh):16s} {r['train_examples_per_s']:7.2f} ex/s  "
                  f"{r['train_collectives']}", flush=True)
    base = rows[0]["train_examples_per_s"]
    md = (f"# Scaling: {rows[0]['model']} train step on fake CPU devices\n\n"
          f"`python benchmarks/scaling.py --config={a.config} --batch_per_device {a.batch_per_device} "
          f"{' '.join(extra)}` on "
          f"{rows[0]['machine']['cpu']} ({rows[0]['machine']['cpu_count']} cores), jax "
          f"{rows[0]['machine']['jax']}. Every fake device shares the same cores, so the ideal is a "
          "constant total (\"vs 1 device\" = 1.00); the loss below it is what partitioning and the "
          "collectives cost. Collectives are counted in the optimised HLO of the train step.\n\n"
          + table(rows, base) + "\n")
    with open(os.path.join(a.out_dir, "scaling.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
