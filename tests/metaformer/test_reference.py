"""Given the same random weights, our PoolFormer computes what timm / the official code
computes, for every variant; conversion from official, timm and safetensors files."""
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaformer
from common import checkpoint, convert
from metaformer.convert import convert_state_dict, to_official_names
from tests.conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _timm_model(name, depths=None, dims=None, **kw):
    torch, timm = require("torch"), require("timm")
    torch.manual_seed(0)
    if depths is None:
        m = timm.create_model(name, pretrained=False, **kw).eval()
    else:   # a reduced PoolFormer v1, built the way timm's poolformer_s12 builds its model
        from timm.models import metaformer as tm
        m = tm.MetaFormer(depths=depths, dims=dims, downsample_norm=None, mlp_act=torch.nn.GELU,
                          mlp_bias=True, norm_layers=tm.GroupNorm1, layer_scale_init_values=1e-5,
                          res_scale_init_values=None, use_mlp_head=False, **kw).eval()
    with torch.no_grad():   # random norms and layer scales, so no branch is ~identity
        for pname, p in m.named_parameters():
            if "norm" in pname or "layer_scale" in pname:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if pname.endswith("weight") else 0.0))
    return m


def _state_dict(m):
    return {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}


def _official_logits(torch_model, x_nchw):
    """Official head order on timm's trunk: GN(1) on the map -> mean -> fc."""
    import torch
    import torch.nn.functional as F
    with torch.no_grad():
        f = torch_model.forward_features(x_nchw)
        g = F.group_norm(f, 1, torch_model.head.norm.weight, torch_model.head.norm.bias, eps=1e-5)
        return torch_model.head.fc(g.mean((2, 3))).numpy(), torch_model(x_nchw).numpy()


@pytest.mark.parametrize("name", ["poolformer_s12", "poolformer_s24", "poolformer_s36",
                                  "poolformer_m36", "poolformer_m48"])
def test_logits_and_stage_features_equal_timm(name):
    torch = require("torch")
    tm = _timm_model(name)
    variables = convert_state_dict(_state_dict(tm))
    ours = metaformer.create_model(name)
    convert.check_against(variables, nn.meta.unbox(jax.eval_shape(
        lambda: ours.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))))
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with jax.default_matmul_precision("highest"):
        logits = np.asarray(jax.jit(ours.apply)(variables, x))
        feats = jax.jit(lambda v, x: ours.apply(v, x, features=(1, 2, 3, 4)))(
            {"params": {k: v for k, v in variables["params"].items() if k not in ("norm", "head")}}, x).values()
    ref_logits, timm_logits = _official_logits(tm, xt)
    with torch.no_grad():
        ref_feats = tm.forward_intermediates(xt, intermediates_only=True)
    for f, r in zip(feats, ref_feats):
        np.testing.assert_allclose(np.asarray(f), r.numpy().transpose(0, 2, 3, 1), atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-4)
    # timm's pool -> LayerNorm head is a different function: we must not match it
    assert np.abs(timm_logits - ref_logits).max() > 1e-2


def test_official_timm_and_transformers_names_convert_identically():
    tm = _timm_model("poolformer_s12", depths=(1, 1, 1, 1), dims=(8, 16, 16, 32), num_classes=5)
    timm_sd = _state_dict(tm)
    official = to_official_names(timm_sd)
    assert "network.6.0.mlp.fc1.weight" in official and "network.5.proj.weight" in official
    assert "norm.weight" in official and "head.weight" in official
    hf = {}
    for k, v in official.items():
        k2 = k.replace("patch_embed.proj.", "poolformer.encoder.patch_embeddings.0.projection.")
        for i in (1, 3, 5):
            k2 = k2.replace(f"network.{i}.proj.", f"poolformer.encoder.patch_embeddings.{(i + 1) // 2}.projection.")
        for i in (0, 2, 4, 6):
            k2 = k2.replace(f"network.{i}.", f"poolformer.encoder.block.{i // 2}.")
        k2 = k2.replace(".norm1.", ".before_norm.").replace(".norm2.", ".after_norm.")
        k2 = k2.replace(".mlp.fc1.", ".output.conv1.").replace(".mlp.fc2.", ".output.conv2.")
        hf[k2.replace("head.", "classifier.")] = v
    a, b, c = (convert.flatten(convert_state_dict(sd)) for sd in (timm_sd, official, hf))
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], c[k])


def test_hybrid_position_embedding_index_shift():
    ours = metaformer.create_model("metaformer_ppaa_s12_224")
    shapes = nn.meta.unbox(jax.eval_shape(lambda: ours.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))))
    assert shapes["params"]["network_4"].shape == (1, 14, 14, 320)        # official network.4
    assert "token_mixer" in shapes["params"]["network_5_0"]                  # stage 3 shifted to 5
    sd = {"network.4": np.zeros((1, 320, 14, 14), np.float32),
          "network.5.0.token_mixer.qkv.weight": np.zeros((960, 320), np.float32)}
    out = convert_state_dict(sd)["params"]
    assert out["network_4"].shape == (1, 14, 14, 320)
    assert out["network_5_0"]["token_mixer"]["qkv"]["kernel"].shape == (320, 960)


def test_unknown_checkpoint_tensor_is_an_error():
    from common.convert import NotAModelCheckpoint
    with pytest.raises(NotAModelCheckpoint, match="no tensor of this model's checkpoint found; the file holds "
                                                  "1 tensors such as network.0.0.surprise.weight"):
        convert_state_dict({"network.0.0.surprise.weight": np.zeros(3)})
    with pytest.raises(NotAModelCheckpoint, match=r"1 of 2 tensors match none of this model's names"):
        convert_state_dict({"network.0.0.surprise.weight": np.zeros(3), "head.weight": np.zeros((3, 4))})


def test_safetensors_convert_evaluate_and_finetune(tmp_path):
    """timm hub format (no torch needed to read) -> CLI convert -> common.evaluate -> train
    from it with a new head."""
    from safetensors.numpy import save_file
    tm = _timm_model("poolformer_s12", depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), num_classes=10)
    src = str(tmp_path / "model.safetensors")
    save_file(_state_dict(tm), src)
    out = str(tmp_path / "converted")
    env = {**os.environ, "PYTHONPATH": ROOT}
    subprocess.run([sys.executable, "-m", "metaformer.convert", src, out], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    restored = checkpoint.load_variables(out)
    np.testing.assert_array_equal(restored["params"]["head"]["kernel"], tm.head.fc.weight.detach().numpy().T)
    res = subprocess.run([sys.executable, "-m", "common.evaluate", "--config=configs/demo.py:test",
                          f"--checkpoint={out}"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads(res.stdout.strip().splitlines()[-1])["eval"]
    assert metrics["count"] == 359 and 0 <= metrics["top1"] <= 100

    # fine-tune on a 5-class head: the trunk comes from the checkpoint, the head is new
    from common import train
    from tests.common.configs import load_config
    c = load_config("configs/demo.py", "test")
    c.model.num_classes, c.num_train_steps = 5, 1
    c.init_from, c.init_reset_head = out, True
    from common.runner import Run
    state = Run(c).init_state()
    np.testing.assert_array_equal(np.asarray(state.model.params["patch_embed"]["proj"]["kernel"]),
                                  restored["params"]["patch_embed"]["proj"]["kernel"])
    assert state.model.params["head"]["kernel"].shape == (128, 5)
    c2 = load_config("configs/demo.py", "test")
    c2.model.num_classes, c2.init_from = 5, out
    with pytest.raises(ValueError, match="init_reset_head"):
        Run(c2).init_state()
    assert train is not None
