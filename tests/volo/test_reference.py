"""Given the same random weights, our VOLO computes what timm's (= the official) VOLO
computes: every variant's widths at reduced depth, and the full D1 at 224."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import volo
from common import checkpoint
from volo.convert import convert_state_dict
from volo.model import VARIANTS
from tests.conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _randomize(tm):
    torch = require("torch")
    torch.manual_seed(0)
    with torch.no_grad():   # random norms and BN statistics: no layer is left at identity
        for name, p in tm.named_parameters():
            if "norm" in name or any(f"patch_embed.conv.{i}." in name for i in (1, 4, 7)):
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
        for i in (1, 4, 7):
            bn = tm.patch_embed.conv[i]
            bn.running_mean.copy_(torch.randn_like(bn.running_mean) * 0.1)
            bn.running_var.copy_(torch.rand_like(bn.running_var) + 0.5)
    return tm.eval()


def _timm_volo(name, **overrides):
    require("torch")
    timm = require("timm")
    if not overrides:
        return _randomize(timm.create_model(name, pretrained=False))
    from timm.models.volo import VOLO
    cfg = {k: v for k, v in VARIANTS[name].items() if k not in ("img_size", "mlp_ratio", "stem_hidden_dim")}
    cfg.update(overrides)
    return _randomize(VOLO(mlp_ratio=VARIANTS[name]["mlp_ratio"], stem_hidden_dim=VARIANTS[name]["stem_hidden_dim"],
                           **cfg))


def _compare(tm, ours, size):
    torch = require("torch")
    variables = convert_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, size, size, 3)).astype(np.float32)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    with jax.default_matmul_precision("highest"):
        out = np.asarray(jax.jit(ours.apply)(variables, x))
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=1e-4)
    return variables


@pytest.mark.parametrize("name", ["volo_d1_224", "volo_d2_224", "volo_d3_224", "volo_d4_224", "volo_d5_224"])
def test_every_variant_matches_timm_at_reduced_depth(name):
    tm = _timm_volo(name, layers=(1, 1, 1, 1), img_size=64, num_classes=10)
    _compare(tm, volo.create_model(name, num_classes=10, layers=(1, 1, 1, 1), img_size=64), 64)


def test_full_d1_matches_timm_and_converts_through_the_cli(tmp_path):
    tm = _timm_volo("volo_d1_224")
    variables = _compare(tm, volo.create_model("volo_d1_224"), 224)
    from safetensors.numpy import save_file
    src = str(tmp_path / "d1.safetensors")
    save_file({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}, src)
    out = str(tmp_path / "d1_384")
    subprocess.run([sys.executable, "-m", "volo.convert", src, out, "--img_size", "384"], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True)
    restored = checkpoint.load_variables(out)
    assert restored["params"]["pos_embed"].shape == (1, 24, 24, 384)
    np.testing.assert_array_equal(restored["batch_stats"]["patch_embed"]["conv_1"]["mean"],
                                  variables["batch_stats"]["patch_embed"]["conv_1"]["mean"])
