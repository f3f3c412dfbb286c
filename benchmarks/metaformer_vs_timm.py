"""Max abs difference of our PoolFormer logits / stage features against timm with the same
random weights, every variant at 224x224 (float32, highest matmul precision).

  python benchmarks/metaformer_vs_timm.py
Logits are compared with the official head order recomputed on timm's trunk (timm's own
head is pool -> LayerNorm -> fc, a different function; its difference is printed too).
"""
import jax
import numpy as np
import torch

import metaformer
from metaformer.convert import convert_state_dict
from tests.metaformer.test_reference import _official_logits, _state_dict, _timm_model

for name in ["poolformer_s12", "poolformer_s24", "poolformer_s36", "poolformer_m36", "poolformer_m48"]:
    tm = _timm_model(name)
    variables = convert_state_dict(_state_dict(tm))
    x = np.random.default_rng(0).standard_normal((2, 224, 224, 3)).astype(np.float32)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with jax.default_matmul_precision("highest"):
        logits = np.asarray(jax.jit(metaformer.create_model(name).apply)(variables, x))
        feats = jax.jit(lambda v, x: metaformer.create_model(name).apply(v, x, features=(1, 2, 3, 4)))(
            {"params": {k: v for k, v in variables["params"].items() if k not in ("norm", "head")}}, x).values()
    ref, timm_logits = _official_logits(tm, xt)
    with torch.no_grad():
        ref_feats = tm.forward_intermediates(xt, intermediates_only=True)
    fdiff = max(float(np.abs(np.asarray(f) - r.numpy().transpose(0, 2, 3, 1)).max()) for f, r in zip(feats, ref_feats))
    print(f"{name}: logits max|d| {np.abs(logits - ref).max():.2e}  stage features max|d| {fdiff:.2e}  "
          f"(timm's own head differs by {np.abs(timm_logits - ref).max():.2e})", flush=True)
