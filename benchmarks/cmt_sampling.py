"""Sampling speed of CMT: our recurrent step (one linear-attention state update per token)
against the official loop's full recompute of the prefix for every token (model.py
inference_from_scratch calls forward_hidden on the whole sequence each step).

  python benchmarks/cmt_sampling.py --variant cmt --tokens 512          # ours, tokens/s
  OFFICIAL=/tmp/cmt_off/src FT=/tmp/cmt_ft/site python benchmarks/cmt_sampling.py --official

Prints tokens/s and the bytes of the per-step state. Not run on the shared CPU machines of
this repository (timings there mean nothing); see benchmarks/cmt.md for the memory figures.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def ours(variant: str, tokens: int):
    import jax
    import jax.numpy as jnp
    from cmt import encoding
    from cmt.generate import Sampler
    from cmt.model import create_model, init_variables
    from common.layers.linear_attention import state_bytes
    model = create_model(variant, dropout=0.0)
    variables = init_variables(model, jax.random.PRNGKey(0))
    s = Sampler(model, variables)
    cache = s.start(encoding.DEFAULT_PREFIX)
    row = jnp.asarray([[17, 1, 3, 0, 0, 0, 0, 1, 0]], jnp.int32)
    cache, prop = s.feed(cache, row, jax.random.PRNGKey(0))
    jax.block_until_ready(prop)
    t0 = time.perf_counter()
    for i in range(tokens):
        cache, prop = s.feed(cache, row, jax.random.PRNGKey(i))
    jax.block_until_ready(prop)
    dt = time.perf_counter() - t0
    print(f"ours ({variant}): {tokens / dt:.1f} tokens/s; recurrent state {state_bytes(cache) / 1e6:.2f} MB per song")


def official(tokens: int):
    import torch
    sys.path.insert(0, os.environ.get("OFFICIAL", "/tmp/cmt_off/src"))
    sys.path.insert(0, os.environ.get("FT", "/tmp/cmt_ft/site"))
    import model as official_model
    from cmt import encoding
    net = official_model.CMT(list(encoding.VOCAB), list(encoding.INIT_VOCAB)).eval()
    prefix = torch.from_numpy(encoding.DEFAULT_PREFIX[None].astype(np.int64))
    x = torch.zeros((1, 1, 9), dtype=torch.long)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(tokens):
            h, y_type = net.forward_hidden(x, is_training=False, init_token=prefix)
            net.forward_output_sampling(h, y_type)
            x = torch.cat([x, x[:, -1:]], 1)
    dt = time.perf_counter() - t0
    print(f"official (full recompute): {tokens / dt:.1f} tokens/s over {tokens} tokens")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--variant", default="cmt")
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--official", action="store_true")
    a = p.parse_args()
    official(a.tokens) if a.official else ours(a.variant, a.tokens)
