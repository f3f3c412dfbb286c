"""PoolFormer / MetaFormer: exact parameter counts, mixers, norms, drop path, shapes."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaformer
from metaformer.model import MetaFormerBlock, Pooling, norm_layer

COUNTS = {  # official integers, counted on sail-sg/poolformer models/{poolformer,metaformer}.py and timm
    "poolformer_s12": 11_915_176, "poolformer_s24": 21_388_968, "poolformer_s36": 30_862_760,
    "poolformer_m36": 56_172_520, "poolformer_m48": 73_473_448,
    "metaformer_id_s12": 11_915_176, "metaformer_pppa_s12_224": 14_038_440,
    "metaformer_ppaa_s12_224": 16_535_592, "metaformer_pppf_s12_224": 11_919_978,
    "metaformer_ppff_s12_224": 12_150_474,
}
FEAT_COUNTS = {"poolformer_s12": 11_403_200, "poolformer_s24": 20_876_992, "poolformer_s36": 30_350_784,
               "poolformer_m36": 55_404_864, "poolformer_m48": 72_705_792}


STAGES = ("stage1", "stage2", "stage3", "stage4")


def count(model, size=224, collection="params", features=None):
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), features=features))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nn.meta.unbox(v.get(collection, {}))))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_equal_the_official_integers(name):
    assert count(metaformer.create_model(name)) == COUNTS[name]


@pytest.mark.parametrize("name", sorted(FEAT_COUNTS))
def test_dense_backbone_counts(name):
    assert count(metaformer.create_model(name, out_norm_levels=(0, 1, 2, 3)), features=STAGES) == FEAT_COUNTS[name]
    # RetinaNet mode: no out-norm on the first level
    assert count(metaformer.create_model(name, out_norm_levels=(1, 2, 3)), features=STAGES) == \
        FEAT_COUNTS[name] - 2 * metaformer.VARIANTS[name]["dims"][0]


def test_random_mixing_ablation_keeps_its_matrix_frozen():
    m = metaformer.create_model("metaformer_random_s12")
    assert count(m) == COUNTS["poolformer_s12"]
    assert count(m, collection="constants") == 12 * 0 + 2 * 3136 ** 2 + 2 * 784 ** 2 + 6 * 196 ** 2 + 2 * 49 ** 2


def test_stage_shapes_and_odd_sizes():
    m = metaformer.create_model("poolformer_s12")
    for size, sides in ((224, (56, 28, 14, 7)), (227, (57, 29, 15, 8)), (64, (16, 8, 4, 2))):
        feats = jax.eval_shape(lambda: m.init_with_output(jax.random.PRNGKey(0), jnp.zeros((2, size, size, 3)),
                                                           features=(1, 2, 3, 4))[0])
        for name, s, c in zip(STAGES, sides, (64, 128, 320, 512)):
            chex.assert_shape(feats[name], (2, s, s, c))


def test_pooling_mixer_subtracts_its_input_and_ignores_padding():
    pool = Pooling(3)
    x = jnp.full((1, 5, 6, 2), 3.7)
    np.testing.assert_allclose(pool.apply({}, x), 0.0, atol=1e-6)   # borders too
    ramp = jnp.arange(16.0).reshape(1, 4, 4, 1)
    out = pool.apply({}, ramp)
    # corner: mean of the 4 valid neighbours (0, 1, 4, 5) minus the input 0
    assert float(out[0, 0, 0, 0]) == pytest.approx((0 + 1 + 4 + 5) / 4)


def test_identity_mixer_block_is_x_plus_scaled_norm_when_the_mlp_is_zero():
    blk = MetaFormerBlock(mixer="identity", layer_scale_init=0.5)
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 4, 8))
    v = nn.meta.unbox(blk.init(jax.random.PRNGKey(1), x))
    v["params"]["mlp"]["fc2"]["kernel"] = jnp.zeros_like(v["params"]["mlp"]["fc2"]["kernel"])
    v["params"]["mlp"]["fc2"]["bias"] = jnp.zeros_like(v["params"]["mlp"]["fc2"]["bias"])
    mu, var = x.mean(), x.var()
    np.testing.assert_allclose(blk.apply(v, x), x + 0.5 * (x - mu) / jnp.sqrt(var + 1e-5), atol=1e-5)


def test_norms_match_numpy():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    p = {"params": {"scale": np.ones(5, np.float32), "bias": np.zeros(5, np.float32)}}
    gn = norm_layer("gn", "n", jnp.float32).apply(p, x)
    mu, var = x.mean(axis=(1, 2, 3), keepdims=True), x.var(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(gn, (x - mu) / np.sqrt(var + 1e-5), atol=1e-5)
    ln = norm_layer("ln", "n", jnp.float32).apply(p, x)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ln, (x - mu) / np.sqrt(var + 1e-5), atol=1e-5)


def test_drop_path_rates_and_train_mode():
    from common.layers import drop_path_rates
    rates = [r for stage in drop_path_rates(0.1, (2, 2, 6, 2)) for r in stage]
    np.testing.assert_allclose(rates, [0.1 * j / 11 for j in range(12)], atol=1e-7)
    m = metaformer.create_model("poolformer_s12", num_classes=10, depths=(1, 1, 1, 1), dims=(8, 8, 16, 16),
                                drop_path_rate=0.5, layer_scale_init=1.0)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 32, 32, 3))
    v = m.init(jax.random.PRNGKey(1), x)
    np.testing.assert_array_equal(m.apply(v, x), m.apply(v, x))              # eval: deterministic
    a = m.apply(v, x, train=True, rngs={"drop_path": jax.random.PRNGKey(2)})
    b = m.apply(v, x, train=True, rngs={"drop_path": jax.random.PRNGKey(3)})
    assert not np.allclose(a, b)


class ForwardTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_forward_jit_and_nojit_and_bf16(self):
        m = metaformer.create_model("poolformer_s12", num_classes=7, depths=(1, 1, 1, 1), dims=(8, 8, 16, 16))
        x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
        v = m.init(jax.random.PRNGKey(1), x)
        out = self.variant(lambda v, x: m.apply(v, x))(v, x)
        chex.assert_shape(out, (2, 7))
        mb = metaformer.create_model("poolformer_s12", num_classes=7, depths=(1, 1, 1, 1), dims=(8, 8, 16, 16),
                                     dtype=jnp.bfloat16)
        ob = mb.apply(v, x)
        assert ob.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(ob, np.float32), out, atol=0.1)


@pytest.mark.parametrize("name", ["metaformer_ppaa_s12_224", "metaformer_ppff_s12_224"])
def test_hybrid_models_run_at_224(name):
    m = metaformer.create_model(name, num_classes=3, depths=(1, 1, 1, 1))
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 224, 224, 3))
    v = m.init(jax.random.PRNGKey(1), x)
    out = jax.jit(m.apply)(v, x)
    chex.assert_shape(out, (1, 3))
    chex.assert_tree_all_finite(out)
