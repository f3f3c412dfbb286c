"""Forward+backward time of the hot shapes of PoolFormer-S12 / VOLO-D1 (batch 16) under the
current XLA_FLAGS: one JSON line, to compare XLA:CPU options one process per setting.

  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/xla_flags_micro.py
"""
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp


def mlp(x, w1, w2):
    return jax.nn.gelu(x @ w1, approximate=False) @ w2


def attn(q, k, v):
    a = jax.nn.softmax(jnp.einsum("bhqd,bhkd->bhqk", q, k) * 0.17, -1)
    return jnp.einsum("bhqk,bhkd->bhqd", a, v)


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), [(3, 3), (3, 3)], dimension_numbers=("NHWC", "HWIO", "NHWC"))


def case(name, f, *shapes):
    args = [jax.random.normal(jax.random.PRNGKey(i), s) * 0.1 for i, s in enumerate(shapes)]
    g = jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) ** 2), argnums=tuple(range(len(args)))))
    for _ in range(2):
        jax.block_until_ready(g(*args))
    ts = []
    for _ in range(int(os.environ.get("REPS", 5))):
        t = time.perf_counter()
        jax.block_until_ready(g(*args))
        ts.append(time.perf_counter() - t)
    return name, statistics.median(ts)


out = dict([
    case("pool_mlp_s1", mlp, (16 * 56 * 56, 64), (64, 256), (256, 64)),
    case("pool_mlp_s3", mlp, (16 * 14 * 14, 320), (320, 1280), (1280, 320)),
    case("volo_mlp", mlp, (16 * 14 * 14, 384), (384, 1152), (1152, 384)),
    case("volo_attn", attn, (16, 12, 196, 32), (16, 12, 196, 32), (16, 12, 196, 32)),
    case("volo_stem_conv", conv, (16, 224, 224, 3), (7, 7, 3, 64)),
])
print(json.dumps({"flags": os.environ.get("XLA_FLAGS", ""), **out}))
