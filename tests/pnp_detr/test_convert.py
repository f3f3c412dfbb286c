"""pnp_detr.convert: an official-layout state_dict survives convert -> export unchanged
(every tensor, in_proj split into q / k / v included); a DETR checkpoint gets a fresh
sampler (and says so); mismatched checkpoints are refused; the command line."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from common import checkpoint
from common.convert import flatten
from pnp_detr.convert import convert_state_dict
from tests.conftest import require
from tests.pnp_detr import golden

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def official_state_dict(fixture="golden_tiny.npz"):
    f = np.load(os.path.join(HERE, fixture))
    return golden.random_state_dict(f["names"], json.loads(str(f["shapes"])), seed=5)


def torch_name(path: tuple) -> str:
    """Our variable path -> the official state_dict name (the converter's table, read backwards)."""
    collection, *parts = path
    name = "/".join(parts)
    name = re.sub(r"^backbone/", "backbone/0/body/", name).replace("body/stem/", "body/")
    name = re.sub(r"_(\d+)(?=/|$)", r"/\1", name)
    leaf = {"kernel": "weight", "scale": "weight", "mean": "running_mean", "var": "running_var"}
    parts = name.split("/")
    parts[-1] = leaf.get(parts[-1], parts[-1])
    if parts == ["query_embed"]:
        parts = ["query_embed", "weight"]
    return ".".join(parts)


def export(variables, reference: dict) -> dict:
    """Our variables in the official layout, shaped like `reference`'s tensors."""
    out, attention = {}, {}
    for path, value in flatten(variables).items():
        name, value = torch_name(path), np.asarray(value)
        m = re.fullmatch(r"(.*)\.(query|key|value)\.(weight|bias)", name)
        if m:                                     # DenseGeneral (d, heads, head_dim) -> in_proj rows
            w = value.reshape(value.shape[0], -1).T if m[3] == "weight" else value.reshape(-1)
            attention.setdefault((m[1], m[3]), {})[m[2]] = w
            continue
        shape = reference[name].shape
        if value.ndim == 4:                       # HWIO -> OIHW
            value = value.transpose(3, 2, 0, 1)
        elif value.ndim == 3:                     # out_proj (heads, head_dim, d) -> (d, d)
            value = value.reshape(-1, value.shape[-1]).T
        elif value.ndim == 2 and name != "query_embed.weight":
            value = value.T.reshape(shape)        # Dense kernel -> Linear / 1x1 conv weight
        out[name] = value
    for (prefix, kind), parts in attention.items():
        out[f"{prefix}.in_proj_{kind}"] = np.concatenate([parts[k] for k in ("query", "key", "value")])
    return out


@pytest.mark.parametrize("fixture,variant", [("golden_tiny.npz", "tiny"), ("golden_tiny_detr.npz", "tiny_detr")])
def test_state_dict_round_trips_through_the_converter(fixture, variant):
    sd = official_state_dict(fixture)
    variables, notes = convert_state_dict(sd, variant)
    assert not notes
    back = export(variables, sd)
    assert sorted(back) == sorted(sd)
    for name in sd:
        np.testing.assert_array_equal(back[name], sd[name], err_msg=name)
    assert "scale" in variables["batch_stats"]["backbone"]["layer1_0"]["bn1"]     # FrozenBN: all in batch_stats


def test_detr_checkpoint_into_a_pnp_variant_gets_a_fresh_sampler():
    sd = {k: v for k, v in official_state_dict().items() if not k.startswith("transformer.sampler.")}
    variables, notes = convert_state_dict(sd, "tiny", seed=3)
    assert len(notes) == 1 and "sampler" in notes[0]
    sampler = variables["params"]["transformer"]["sampler"]
    bound = 1 / np.sqrt(32)                                 # PyTorch default, fan_in = d = 32
    assert 0.8 * bound < np.abs(sampler["score_pred_net_0"]["kernel"]).max() <= bound
    assert np.abs(sampler["score_pred_net_0"]["bias"]).max() > 0


def test_mismatched_checkpoints_are_refused():
    with pytest.raises(ValueError, match="plain DETR"):
        convert_state_dict(official_state_dict(), "tiny_detr")
    with pytest.raises(ValueError, match="k_proj"):          # M = 4 in the checkpoint
        convert_state_dict(official_state_dict(), "tiny", num_pool_tokens=6)


def test_command_line_writes_a_checkpoint(tmp_path):
    torch = require("torch")
    sd = {k: v for k, v in official_state_dict().items() if not k.startswith("transformer.sampler.")}
    src = str(tmp_path / "detr.pth")
    torch.save({"model": {k: torch.from_numpy(v) for k, v in sd.items()}, "epoch": 1}, src)
    out = str(tmp_path / "converted")
    run = subprocess.run([sys.executable, "-m", "pnp_detr.convert", src, out, "--variant", "tiny"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True, check=True)
    assert "fresh" in run.stdout and "sampler" in run.stdout
    restored = checkpoint.load_variables(out)
    np.testing.assert_array_equal(restored["params"]["query_embed"], sd["query_embed.weight"])
    np.testing.assert_array_equal(restored["batch_stats"]["backbone"]["stem"]["bn1"]["var"],
                                  sd["backbone.0.body.bn1.running_var"])
    assert restored["params"]["transformer"]["sampler"]["k_proj"]["kernel"].shape == (32, 4)
