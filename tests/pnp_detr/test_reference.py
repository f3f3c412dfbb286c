"""Given the same weights and inputs, our modules compute what the official code computes
(fixtures written by make_golden.py from twangnh/pnp-detr and facebookresearch/detr):
the SortSampler in two settings, DETR's mask downsampling and sine position embedding,
and the whole tiny PnP-DETR and DETR models through the converter."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pnp_detr
from common.convert import convert_with_rules
from pnp_detr.convert import convert_state_dict, rules
from pnp_detr.position import downsample_mask, sine_position_embedding
from pnp_detr.sampler import SortSampler
from tests.pnp_detr import golden

HERE = os.path.dirname(os.path.abspath(__file__))
ATOL = 1e-5


def load(name):
    return np.load(os.path.join(HERE, name))


@pytest.fixture(scope="module")
def sampler_golden():
    return load("golden_sampler.npz")


def test_mask_downsampling_is_torch_nearest_interpolation(sampler_golden):
    g = sampler_golden
    cells = downsample_mask(jnp.asarray(~g["pixel_pad"]), g["cell_pad"].shape[1:])
    np.testing.assert_array_equal(np.asarray(cells), ~g["cell_pad"])


def test_sine_position_embedding_equals_detr(sampler_golden):
    g = sampler_golden
    pos = sine_position_embedding(jnp.asarray(~g["cell_pad"]), g["cell_pos"].shape[-1] // 2)
    np.testing.assert_allclose(np.asarray(pos), g["cell_pos"], atol=ATOL)


@pytest.mark.parametrize("case", sorted(golden.SAMPLER_CASES))
def test_sampler_matches_the_official_sort_sampler(sampler_golden, case):
    g, kw = sampler_golden, golden.SAMPLER_CASES[case]
    names, shapes = g[f"{case}/names"], json.loads(str(g[f"{case}/shapes"]))
    state_dict = {f"transformer.sampler.{k}": v for k, v in golden.random_state_dict(names, shapes, 2).items()}
    params = convert_with_rules(state_dict, rules(num_heads=1))["params"]["transformer"]["sampler"]
    sampler = SortSampler(kw["unsample_abstract_number"], kw["score_pred_net"], kw["kproj_net"], kw["pos_embed_kproj"])
    b, d = g["x"].shape[:2]
    x = g["x"].reshape(b, d, -1).transpose(0, 2, 1)
    out = sampler.apply({"params": params}, x, ~g["pad"].reshape(b, -1), g["pos"], golden.SAMPLER_ALPHA)

    m, n_max = kw["unsample_abstract_number"], g[f"{case}/topk"].shape[1]
    fine_valid = ~g[f"{case}/token_pad"][:, :n_max]
    np.testing.assert_array_equal(np.asarray(out.valid[:, :n_max]), fine_valid)
    assert not np.asarray(out.valid[:, n_max:-m]).any()                      # capacity beyond N_max: masked
    np.testing.assert_array_equal(np.asarray(out.poll_index[:, :n_max]), g[f"{case}/topk"])
    for ours, ref in ((out.tokens, g[f"{case}/tokens"]), (out.pos, g[f"{case}/token_pos"])):
        ours = np.asarray(ours)
        np.testing.assert_allclose(ours[:, :n_max][fine_valid], ref[:, :n_max][fine_valid], atol=ATOL)
        np.testing.assert_allclose(ours[:, -m:], ref[:, n_max:], atol=ATOL)
    np.testing.assert_allclose(float(out.sample_reg_loss), float(g[f"{case}/sample_reg_loss"]), atol=ATOL)


@pytest.mark.parametrize("fixture,variant", [("golden_tiny.npz", "tiny"), ("golden_tiny_detr.npz", "tiny_detr")])
def test_tiny_model_matches_the_official_model_through_the_converter(fixture, variant):
    f = load(fixture)
    state_dict = golden.random_state_dict(f["names"], json.loads(str(f["shapes"])), golden.MODEL_SEED)
    variables, notes = convert_state_dict(state_dict, variant)
    assert not notes
    model = pnp_detr.create_model(variant)
    images = golden.random_images(golden.MODEL_VALID, golden.MODEL_CANVAS, golden.MODEL_SEED)
    valid = golden.valid_pixels(golden.MODEL_VALID, golden.MODEL_CANVAS)
    out, state = jax.jit(lambda v, x, mask: model.apply(v, x, mask, golden.MODEL_ALPHA, mutable=["intermediates"]))(
        variables, images, valid)
    np.testing.assert_allclose(np.asarray(out["pred_logits"]), f["pred_logits"], atol=ATOL)
    np.testing.assert_allclose(np.asarray(out["pred_boxes"]), f["pred_boxes"], atol=ATOL)

    memory, ref_pad = np.asarray(state["intermediates"]["transformer"]["memory"][0]), f["memory_pad"]
    if model.use_sampler:   # ours: N_cap fine slots + M coarse; official: N_max + M
        m = model.num_pool_tokens
        n_max = ref_pad.shape[1] - m
        memory = np.concatenate([memory[:, :n_max], memory[:, -m:]], axis=1)
        np.testing.assert_allclose(float(out["sample_reg_loss"]), float(f["sample_reg_loss"]), atol=ATOL)
    np.testing.assert_allclose(memory[~ref_pad], f["memory"][~ref_pad], atol=ATOL)
