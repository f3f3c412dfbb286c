"""ViP variants: exact parameter counts vs the official code, layout, drop-path, errors."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import common.models
from permutator import VARIANTS, create_model
from tests.permutator.util import TINY, TINY_IMAGE, random_variables

# Instantiating houqb/VisionPermutator:models/vip.py (sum of p.numel()).
OFFICIAL_PARAMS = {"vip_s14": 29_892_904, "vip_s7": 25_114_984, "vip_m7": 55_272_488,
                   "vip_l7": 87_784_936}


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def abstract_params(name, **kw):
    model = create_model(name, **kw)
    return nn.unbox(jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))))["params"]


@pytest.fixture(scope="module")
def full_params():
    return {name: abstract_params(name) for name in VARIANTS}


def test_every_official_variant_is_in_the_table():
    assert set(VARIANTS) == set(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_equals_official(full_params, name):
    assert count(full_params[name]) == OFFICIAL_PARAMS[name]


def test_per_module_counts(full_params):
    s7, m7, s14 = full_params["vip_s7"], full_params["vip_m7"], full_params["vip_s14"]
    assert count(s7["patch_embed"]) == 28_416
    assert count(m7["patch_embed"]) == 37_888
    assert count(s14["patch_embed"]) == 226_176
    assert count(s7["network_0_0"]) == 407_856          # C = 192
    assert count(m7["network_0_0"]) == 724_032          # C = 256
    assert count(s7["network_2_0"]) == 1_626_720        # C = 384
    assert count(m7["network_3_0"]) == 2_889_856        # C = 512
    assert count(s7["network_1"]) == 295_296            # Downsample 192 -> 384
    assert count(m7["network_2"]) == 524_800            # Downsample 256 -> 512
    assert count(s7["head"]) == 385_000 and count(m7["head"]) == 513_000


def test_network_indices_shift_with_transitions(full_params):
    """Blocks and Downsamples share the official `network` list (houqb/VisionPermutator
    models/vip.py, VisionPermutator.network)."""
    def entries(p):
        return sorted({k.split("_")[1] + ("" if k.count("_") == 2 else "*")
                       for k in p if k.startswith("network_")})
    assert entries(full_params["vip_s7"]) == ["0", "1*", "2", "3", "4"]
    assert entries(full_params["vip_m7"]) == ["0", "1", "2*", "3", "4"]
    assert entries(full_params["vip_s14"]) == ["0", "1", "2", "3"]
    s7 = full_params["vip_s7"]
    assert s7["network_1"]["proj"]["kernel"].shape == (2, 2, 192, 384)
    assert s7["network_0_0"]["attn"]["mlp_h"]["kernel"].shape == (192, 192)
    assert s7["network_0_0"]["attn"]["reweight"]["fc2"]["kernel"].shape == (48, 576)
    assert "bias" not in s7["network_0_0"]["attn"]["mlp_c"]


def test_registered_and_forward_shape():
    model = common.models.create_model("vip_s7", num_classes=10, **TINY)
    x = jnp.ones((2, TINY_IMAGE, TINY_IMAGE, 3))
    chex.assert_shape(model.apply(random_variables(model, TINY_IMAGE), x), (2, 10))


def test_kernels_carry_logical_axis_names():
    model = create_model("vip_s7", num_classes=10, **TINY)
    boxed = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3))))
    specs = nn.get_partition_spec(boxed)["params"]
    assert specs["network_0_0"]["attn"]["mlp_h"]["kernel"] == jax.sharding.PartitionSpec("embed", "mlp")
    assert specs["head"]["kernel"] == jax.sharding.PartitionSpec("embed", "classes")
    assert specs["patch_embed"]["proj"]["kernel"] == jax.sharding.PartitionSpec(None, None, "conv_in", "conv_out")


def test_wrong_input_size_is_a_clear_error():
    model = create_model("vip_s7", num_classes=10, **TINY)
    with pytest.raises(ValueError, match="token grid"):
        jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.ones((1, 40, 40, 3)))
    with pytest.raises(ValueError, match="token grid"):   # non-square input
        jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.ones((1, 32, 40, 3)))


def drop_path_rates_by_block(model, image_size):
    """{block name: DropPath rate} as the model builds them (abstract trace, no compute)."""
    found = {}

    def record(next_fun, args, kwargs, context):
        if context.module.name == "drop_path":
            found[context.module.parent.name] = context.module.rate
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, image_size, image_size, 3))))
    return found


def test_drop_path_schedule_is_global_and_linear():
    """Block n (global index over all stages) gets rate * n / (sum(layers) - 1), as basic_blocks."""
    found = drop_path_rates_by_block(create_model("vip_m7", drop_path_rate=0.3), 224)
    # vip_m7: network_0 (4 blocks), network_1 (3), network_2 Downsample, network_3 (14), network_4 (3)
    names = [f"network_{k}_{j}" for k, depth in ((0, 4), (1, 3), (3, 14), (4, 3)) for j in range(depth)]
    assert len(found) == len(names) == 24
    for n, name in enumerate(names):
        assert found[name] == pytest.approx(0.3 * n / 23)


def test_train_mode_uses_drop_path_rng_and_eval_is_deterministic():
    model = create_model("vip_s7", num_classes=10, drop_path_rate=0.5, **TINY)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, TINY_IMAGE, TINY_IMAGE, 3)), jnp.float32)
    variables = random_variables(model, TINY_IMAGE)
    apply = model.apply
    eval_out = apply(variables, x)
    a = apply(variables, x, train=True, rngs={"drop_path": jax.random.PRNGKey(2)})
    b = apply(variables, x, train=True, rngs={"drop_path": jax.random.PRNGKey(3)})
    assert not np.allclose(a, b)
    assert not np.allclose(a, eval_out)
    chex.assert_trees_all_close(apply(variables, x), eval_out)


def test_bfloat16_compute_stays_close_to_float32():
    model = create_model("vip_s7", num_classes=10, dtype="bfloat16", **TINY)
    x = jnp.ones((2, TINY_IMAGE, TINY_IMAGE, 3))
    variables = random_variables(model, TINY_IMAGE)
    out = model.apply(variables, x)
    ref = create_model("vip_s7", num_classes=10, **TINY).apply(variables, x)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref, atol=0.1 * float(np.abs(ref).max()))
