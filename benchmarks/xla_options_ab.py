"""Interleaved A/B of XLA compiler options on a config's train step, in one process.

Each variant is the same lowered train step compiled with its own `compiler_options`, and
the variants alternate in rounds (A B, B A, ...), so a change in the host's load hits all of
them alike: separate processes one after another, as with XLA_FLAGS, drift by ±20% on a
shared host, more than most flags change.

  python benchmarks/xla_options_ab.py --config=configs/permutator/vip_s7.py --batch 16 \\
      --variants='{"default": {}, "ynn_off": {"xla_cpu_experimental_ynn_fusion_type": ""}}'
"""
import json

import jax
from absl import app, flags
from ml_collections import config_flags

from common import bench

_CONFIG = config_flags.DEFINE_config_file("config", None, "the run's config file")
_BATCH = flags.DEFINE_integer("batch", 16, "global batch")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "alternating rounds")
_STEPS = flags.DEFINE_integer("steps", 2, "steps per variant and round")
_VARIANTS = flags.DEFINE_string(
    "variants", '{"default": {}, "ynn_off": {"xla_cpu_experimental_ynn_fusion_type": ""}}',
    "JSON {name: compiler_options}; the first is the baseline")


def main(_):
    _, state, batch, lowered = bench.lowered_train_step(_CONFIG.value, _BATCH.value)
    rng = jax.random.PRNGKey(0)  # the key the step was lowered with
    steps = {}
    for name, options in json.loads(_VARIANTS.value).items():
        compiled = lowered.compile(compiler_options=options)
        holder = {"state": jax.tree.map(lambda x: x.copy(), state)}  # the step donates its state

        def step(compiled=compiled, holder=holder):
            holder["state"], metrics = compiled(holder["state"], batch, rng)
            jax.block_until_ready(metrics)
        steps[name] = step
    times = bench.interleaved(steps, rounds=_ROUNDS.value, steps=_STEPS.value, warmup=1)
    base = times[next(iter(steps))]["median_s"]
    for name, t in times.items():
        print(f"{name:24s} {t['median_s'] * 1e3:8.0f} ms/step ±{t['spread'] * 100:.0f}%  "
              f"x{base / t['median_s']:.2f} the speed of the first")


if __name__ == "__main__":
    app.run(main)
