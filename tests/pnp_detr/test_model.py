"""PnP-DETR / DETR model: parameter counts of the full-size variants (jax.eval_shape), the
interface the detection task relies on, the frozen backbone stages, and the traced alpha."""
import json
import os
import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pnp_detr
from common import models
from common.optim import path_str
from pnp_detr.convert import convert_state_dict
from pnp_detr.model import FROZEN_PARAMS, VARIANTS
from pnp_detr.transformer import Transformer
from tests.pnp_detr import golden

# total = every parameter (FrozenBatchNorm arrays are batch_stats, not parameters);
# trainable = total - the 222,400 conv weights of the frozen stem + layer1.
COUNTS = {
    "detr_r50": (41_524_768, 41_302_368, 0), "detr_r50_dc5": (41_524_768, 41_302_368, 0),
    "detr_r101": (60_464_672, 60_242_272, 0),
    "pnp_detr_r50": (41_664_319, 41_441_919, 139_551), "pnp_detr_r50_dc5": (41_682_309, 41_459_909, 157_541),
    "pnp_detr_r101": (60_604_223, 60_381_823, 139_551),
}
FROZEN = 222_400


def size(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def abstract_variables(model):
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                                             jnp.ones((1, 32, 32), bool), 0.5))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_equal_the_paper_arithmetic(name):
    variables = nn.meta.unbox(abstract_variables(pnp_detr.create_model(name)))
    params = variables["params"]
    total, trainable, sampler = COUNTS[name]
    assert size(params) == total
    leaves = jax.tree_util.tree_leaves_with_path(params)
    frozen = sum(int(np.prod(x.shape)) for p, x in leaves if re.search(FROZEN_PARAMS, path_str(p)))
    assert frozen == FROZEN and total - frozen == trainable
    assert size(params["transformer"].get("sampler", {})) == sampler
    # FrozenBatchNorm: the four arrays of every norm live in batch_stats only
    assert not any(re.search(r"/(bn\d|downsample_1)/", path_str(p)) for p, _ in leaves)
    assert set(variables) == {"params", "batch_stats"}


def test_variants_are_registered_and_every_parameter_has_logical_axes():
    for name in VARIANTS:
        assert models.model_factory(f"pnp_detr:{name}") is not None
    abstract = abstract_variables(pnp_detr.create_model("tiny", dtype=jnp.bfloat16))["params"]
    boxed = jax.tree_util.tree_leaves(abstract, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert all(isinstance(x, nn.Partitioned) and len(x.names) == x.value.ndim for x in boxed)
    assert all(x.value.dtype == jnp.float32 for x in boxed)


@pytest.fixture(scope="module")
def tiny():
    return pnp_detr.create_model("tiny")


def golden_variables(variant: str, fixture: str):
    """Random weights through the converter (model.init's RNG program takes XLA seconds to compile)."""
    f = np.load(os.path.join(os.path.dirname(__file__), fixture))
    return convert_state_dict(golden.random_state_dict(f["names"], json.loads(str(f["shapes"])), 0), variant)[0]


@pytest.fixture(scope="module")
def tiny_variables():
    return golden_variables("tiny", "golden_tiny.npz")


@pytest.fixture(scope="module")
def batch():
    """Two images on a 128 x 96 canvas (an 8 x 6 grid at stride 16); the second is 80 x 64 (5 x 4 cells)."""
    rng = np.random.default_rng(0)
    valid = np.zeros((2, 128, 96), bool)
    valid[0], valid[1, :80, :64] = True, True
    return jnp.asarray(rng.standard_normal((2, 128, 96, 3)).astype(np.float32) * valid[..., None]), jnp.asarray(valid)


@pytest.fixture(scope="module")
def static_apply(tiny):
    """One program per (Python float) alpha."""
    return jax.jit(lambda v, x, mask, alpha: tiny.apply(v, x, mask, alpha), static_argnums=3)


@pytest.fixture(scope="module")
def traced_apply(tiny):
    return jax.jit(lambda v, x, mask, alpha: tiny.apply(v, x, mask, alpha))


def test_outputs_follow_the_interface(tiny_variables, batch, static_apply):
    images, valid = batch
    out = static_apply(tiny_variables, images, valid, 0.5)
    h, w = 8, 6                                    # DC5: stride 16
    n_cap = int(np.float32(h * w) * np.float32(0.5))
    chex.assert_shape(out["pred_logits"], (2, 2, 10, 92))
    chex.assert_shape(out["pred_boxes"], (2, 2, 10, 4))
    chex.assert_shape([out["poll_index"], out["poll_valid"]], (2, n_cap))
    chex.assert_shape(out["sample_reg_loss"], ())
    assert out["poll_index"].dtype == jnp.int32 and out["poll_valid"].dtype == jnp.bool_
    assert tuple(int(s) for s in out["feature_shape"]) == (h, w)
    boxes = np.asarray(out["pred_boxes"])
    assert ((boxes > 0) & (boxes < 1)).all()
    # image 1 has 5 x 4 valid cells: n = trunc(20 * 0.5) = 10 fine slots, all on valid cells
    np.testing.assert_array_equal(np.asarray(out["poll_valid"]).sum(1), [24, 10])
    rows, cols = np.divmod(np.asarray(out["poll_index"][1])[np.asarray(out["poll_valid"][1])], w)
    assert (rows < 5).all() and (cols < 4).all()


def test_traced_alpha_equals_static_alpha_in_one_program(tiny_variables, batch, static_apply, traced_apply):
    images, valid = batch
    static = static_apply(tiny_variables, images, valid, 0.5)
    traced = traced_apply(tiny_variables, images, valid, jnp.float32(0.5))
    for key in ("pred_logits", "pred_boxes", "sample_reg_loss"):
        np.testing.assert_allclose(np.asarray(traced[key]), np.asarray(static[key]), atol=1e-5)
    n = static["poll_index"].shape[1]             # the static capacity is this alpha's; traced: max_alpha's
    assert traced["poll_index"].shape[1] == int(np.float32(48) * np.float32(0.8)) > n
    np.testing.assert_array_equal(np.asarray(traced["poll_valid"][:, n:]), False)
    slots = np.asarray(static["poll_valid"])
    np.testing.assert_array_equal(np.asarray(traced["poll_valid"][:, :n]), slots)
    np.testing.assert_array_equal(np.asarray(traced["poll_index"][:, :n])[slots], np.asarray(static["poll_index"])[slots])
    for alpha in (0.35, 0.8):                     # any other alpha: the same program
        out = traced_apply(tiny_variables, images, valid, jnp.float32(alpha))
        np.testing.assert_array_equal(np.asarray(out["poll_valid"]).sum(1),
                                      (np.float32([48, 20]) * np.float32(alpha)).astype(int))
    assert traced_apply._cache_size() == 1


def test_plain_detr_keeps_every_cell():
    model = pnp_detr.create_model("tiny_detr")
    images, valid = jnp.zeros((1, 64, 48, 3)), jnp.ones((1, 64, 48), bool)
    variables = golden_variables("tiny_detr", "golden_tiny_detr.npz")
    out = jax.jit(model.apply)(variables, images, valid)
    assert "sampler" not in variables["params"]["transformer"]
    assert float(out["sample_reg_loss"]) == 0.0
    np.testing.assert_array_equal(np.asarray(out["poll_index"][0]), np.arange(12))
    assert np.asarray(out["poll_valid"]).all()


def test_frozen_stages_get_no_gradient_and_training_draws_dropout(tiny, tiny_variables, batch):
    images, valid = batch

    def loss(params, key):
        out = tiny.apply({**tiny_variables, "params": params}, images, valid, jnp.float32(0.5), train=True,
                         rngs={"dropout": key})
        return out["pred_logits"].sum() + out["pred_boxes"].sum() + out["sample_reg_loss"], out["pred_logits"]

    grad = jax.jit(jax.grad(loss, has_aux=True))
    (grads, logits), (_, other) = grad(tiny_variables["params"], jax.random.PRNGKey(0)), grad(
        tiny_variables["params"], jax.random.PRNGKey(1))
    for path, g in jax.tree_util.tree_leaves_with_path(grads["backbone"]):
        frozen = re.search(FROZEN_PARAMS, "backbone/" + path_str(path)) is not None
        assert (np.abs(np.asarray(g)).max() == 0) == frozen, path_str(path)
    assert np.abs(np.asarray(logits - other)).max() > 1e-4


def test_bfloat16_compute_is_close_to_float32(tiny_variables, batch, static_apply):
    model = pnp_detr.create_model("tiny", dtype=jnp.bfloat16)
    images, valid = batch
    out = jax.jit(lambda v, x, m: model.apply(v, x, m, 0.5))(tiny_variables, images, valid)
    ref = static_apply(tiny_variables, images, valid, 0.5)
    assert out["pred_logits"].dtype == jnp.float32 and np.isfinite(np.asarray(out["pred_logits"])).all()
    np.testing.assert_allclose(np.asarray(out["pred_boxes"]), np.asarray(ref["pred_boxes"]), atol=0.1)


def test_params_shard_by_the_default_logical_axis_rules(tiny_variables, batch, static_apply):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from common.config import base_config
    from common.sharding import logical_shardings
    assert jax.device_count() >= 8
    mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 2, 2), ("data", "fsdp", "model"))
    rules = base_config().logical_axis_rules
    shardings = logical_shardings(abstract_variables(pnp_detr.create_model("tiny")), mesh, rules)
    spread = [s for s in jax.tree_util.tree_leaves(shardings["params"]) if any(a is not None for a in s.spec)]
    assert len(spread) > 50
    images, valid = batch
    sharded = jax.device_put(tiny_variables, shardings)
    replicated = NamedSharding(mesh, PartitionSpec())
    out = static_apply(sharded, jax.device_put(images, replicated), jax.device_put(valid, replicated), 0.5)
    ref = static_apply(tiny_variables, images, valid, 0.5)
    np.testing.assert_allclose(np.asarray(out["pred_logits"]), np.asarray(ref["pred_logits"]), atol=1e-5)


def test_transformer_and_sampler_initialisation_is_the_official_one():
    """Xavier-uniform on the transformer's matrices (the fused (3d, d) in_proj's bound for q, k,
    v), zero attention biases, PyTorch's default U(+-1/sqrt(fan_in)) for FFN biases and the
    sampler."""
    d, ffn = 64, 128
    transformer = Transformer(num_heads=4, ffn_dim=ffn, num_encoder_layers=1, num_decoder_layers=1, num_pool_tokens=5)
    x = jnp.zeros((1, 20, d))
    params = nn.meta.unbox(jax.jit(transformer.init, static_argnums=5)(
        jax.random.PRNGKey(0), x, jnp.ones((1, 20), bool), x, jnp.zeros((7, d)), 0.5))["params"]

    def bound_is(w, bound):
        w = np.abs(np.asarray(w))
        assert (0.9 if w.size >= 64 else 0.0) * bound < w.max() <= bound, (w.max(), bound)

    layer = params["decoder"]["layers_0"]
    for attn in ("self_attn", "multihead_attn"):
        for part in ("query", "key", "value"):
            bound_is(layer[attn][part]["kernel"], np.sqrt(6 / (d + 3 * d)))
            assert not np.asarray(layer[attn][part]["bias"]).any()
        bound_is(layer[attn]["out_proj"]["kernel"], np.sqrt(6 / (2 * d)))
        assert not np.asarray(layer[attn]["out_proj"]["bias"]).any()
    bound_is(layer["linear1"]["kernel"], np.sqrt(6 / (d + ffn)))
    bound_is(layer["linear1"]["bias"], 1 / np.sqrt(d))
    bound_is(layer["linear2"]["bias"], 1 / np.sqrt(ffn))
    np.testing.assert_array_equal(np.asarray(layer["norm1"]["scale"]), 1.0)
    for name in ("score_pred_net_0", "k_proj", "v_proj"):
        bound_is(params["sampler"][name]["kernel"], 1 / np.sqrt(d))
        bound_is(params["sampler"][name]["bias"], 1 / np.sqrt(d))
    bound_is(params["sampler"]["score_pred_net_2"]["kernel"], 1 / np.sqrt(d))
