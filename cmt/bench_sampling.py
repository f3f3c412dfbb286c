"""Sampling speed and memory of CMT: the recurrent form against the full-recompute loop.

  python -m cmt.bench_sampling --variant tiny --tokens 1024        # both JAX loops
  python -m cmt.bench_sampling --variant cmt --tokens 512 --official  # + the official torch loop

The official loop (src/model.py `inference_from_scratch`) calls `forward_hidden` on the whole
sequence [7 init rows | t music rows] for every new token: O(t) work at step t, O(L^2) for
a song. Ours (`cmt.generate.Sampler`) feeds one row to the recurrent form and keeps the
linear-attention state (S, z) per layer and head: O(1) work and memory per step.

Timed here, each with the same sampling (type, then the six attributes, official settings):
- `recurrent`: the jitted `Sampler.feed` step, `--tokens` steps;
- `recompute`: the official algorithm in JAX, our parallel (chunked) forward over the full
  prefix at every step; the prefix is zero-padded to the next multiple of `--bucket` rows
  (causal: padding after position t does not change it), one compilation per bucket, all
  compiled before timing;
- `--official`: the official torch code itself on fast-transformers' CPU kernel
  (OFFICIAL=<src dir>, FT=<site dir>; see tests/cmt/make_golden.py), the same width.

Memory per step: the recurrent state (bytes, independent of t) plus XLA's temporary buffers
of the compiled step; for the recompute step XLA's temporaries of the forward at t rows.
Numbers are host timings: on a shared machine they are indicative only.
"""
import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from cmt import encoding
from cmt.generate import SETTINGS, TYPE_SETTING, Sampler
from cmt.model import N_PREFIX, create_model, init_variables
from common.layers.linear_attention import state_bytes
from common.sampling import sample_categorical, sample_fields

ROW = np.array([17, 1, 3, 0, 0, 0, 0, 1, 0], np.int32)     # the fed row (the timing does not depend on it)


def _temp_bytes(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
        return int(m.temp_size_in_bytes)
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None


def bench_recurrent(model, variables, tokens: int) -> dict:
    s = Sampler(model, variables)
    cache = s.start(encoding.DEFAULT_PREFIX)
    row = jnp.asarray(ROW[None])
    compiled = jax.jit(s.feed).lower(cache, row, jax.random.PRNGKey(0)).compile()
    cache, prop = s.feed(cache, row, jax.random.PRNGKey(0))
    jax.block_until_ready(prop)
    t0 = time.perf_counter()
    for i in range(tokens):
        cache, prop = s.feed(cache, row, jax.random.fold_in(jax.random.PRNGKey(1), i))
        np.asarray(prop)                                  # the host loop reads every proposal
    dt = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": dt, "tokens_per_s": tokens / dt, "state_bytes": state_bytes(cache),
            "step_temp_bytes": _temp_bytes(compiled)}


def bench_recompute(model, variables, tokens: int, bucket: int) -> dict:
    """The official loop: the full forward over [prefix | rows[:t]] for each new token."""
    prefix = jnp.asarray(encoding.DEFAULT_PREFIX[None])

    def step(rows, t, rng):
        h = model.apply(variables, prefix, rows, method=model.hidden)[0, t - 1][None]
        k_type, k_rest = jax.random.split(rng)
        ty = sample_categorical(k_type, model.apply(variables, h, method=model.type_logits), *TYPE_SETTING)
        s = sample_fields(k_rest, model.apply(variables, h, ty, method=model.attribute_logits), SETTINGS)
        return jnp.stack([s["barbeat"], ty, s["beat_density"], s["pitch"], s["duration"], s["instr"],
                          s["onset_density"]], -1)

    fn = jax.jit(step)
    sizes = sorted({bucket * (-(-t // bucket)) for t in range(1, tokens + 1)})
    temp, compile_s = {}, time.perf_counter()
    for n in sizes:                                       # compile every bucket before timing
        rows = jnp.asarray(np.tile(ROW, (1, n, 1)))
        c = fn.lower(rows, jnp.int32(1), jax.random.PRNGKey(0)).compile()
        temp[n] = _temp_bytes(c)
        jax.block_until_ready(fn(rows, jnp.int32(1), jax.random.PRNGKey(0)))
    compile_s = time.perf_counter() - compile_s
    buffers = {n: jnp.asarray(np.tile(ROW, (1, n, 1))) for n in sizes}
    t0 = time.perf_counter()
    for t in range(1, tokens + 1):
        n = bucket * (-(-t // bucket))
        np.asarray(fn(buffers[n], jnp.int32(t), jax.random.fold_in(jax.random.PRNGKey(1), t)))
    dt = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": dt, "tokens_per_s": tokens / dt, "bucket": bucket,
            "forward_temp_bytes": {str(n + N_PREFIX): b for n, b in temp.items()}, "compile_seconds": compile_s}


def bench_official(variant: str, tokens: int) -> dict:
    """The official inference loop's cost: forward_hidden over the growing prefix + sampling."""
    import torch
    sys.path.insert(0, os.environ.get("OFFICIAL", "/tmp/cmt_off/src"))
    sys.path.insert(0, os.environ.get("FT", "/tmp/cmt_ft/site"))
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    if variant == "tiny":
        from tests.cmt.make_golden import tiny_official
        net, _ = tiny_official()
    elif variant == "cmt":
        import model as official_model
        net = official_model.CMT(list(encoding.VOCAB), list(encoding.INIT_VOCAB)).eval()
    else:
        raise SystemExit(f"--official supports the variants tiny and cmt, not {variant!r}")
    prefix = torch.from_numpy(encoding.DEFAULT_PREFIX[None].astype(np.int64))
    x = torch.from_numpy(ROW[None, None].astype(np.int64))
    np.random.seed(0)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(tokens):
            h, y_type = net.forward_hidden(x, is_training=False, init_token=prefix)
            net.forward_output_sampling(h, y_type)
            x = torch.cat([x, x[:, -1:]], 1)
    dt = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": dt, "tokens_per_s": tokens / dt}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m cmt.bench_sampling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="tiny", help="cmt (official size), small or tiny")
    p.add_argument("--tokens", type=int, default=1024, help="tokens generated after the first Bar row")
    p.add_argument("--bucket", type=int, default=128, help="padding granularity of the recompute loop")
    p.add_argument("--official", action="store_true", help="also time the official torch loop")
    p.add_argument("--skip_recompute", action="store_true")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    model = create_model(a.variant, dropout=0.0)
    variables = init_variables(model, jax.random.PRNGKey(0))
    out = {"variant": a.variant, "backend": jax.default_backend(), "cpus": len(os.sched_getaffinity(0))}
    out["recurrent"] = bench_recurrent(model, variables, a.tokens)
    print("recurrent:", json.dumps(out["recurrent"]), flush=True)
    if not a.skip_recompute:
        out["recompute"] = bench_recompute(model, variables, a.tokens, a.bucket)
        print("recompute:", json.dumps(out["recompute"]), flush=True)
    if a.official:
        out["official"] = bench_official(a.variant, a.tokens)
        print("official:", json.dumps(out["official"]), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
