"""The features API (common/layers/features.py) of every backbone family: the documented
taps and their shapes (tiny widths, jax.eval_shape: no compute), stage indices, the early
stop of `init`, and "pooled" / "head" against the model's own output."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dualformer
import metaformer
import permutator
import volo
from common.layers import resnet
from longtail import models as longtail_models
from tests.permutator.util import TINY as TINY_VIP

B = 2
TINY_RESNET = dict(layers=(1, 1, 1, 1), planes=(8, 8, 16, 16), num_classes=3, block="basic")
TINY_DUALFORMER = dict(embed_dims=(8, 16, 32, 64), num_heads=(1, 2, 2, 4), depths=(2, 2, 2, 2),
                       local_sizes=((2, 7, 7),) * 4, fine_pysizes=((2, 7, 7),) * 4, coarse_pysizes=((2, 4, 4),) * 4)

# family: (model, input shape, {tap: shape}); the stage maps are asked for by index.
FAMILIES = {
    "resnet": (resnet.ResNet(**TINY_RESNET), (B, 32, 32, 3),
               {"stem": (B, 8, 8, 64), "layer1": (B, 8, 8, 8), "layer2": (B, 4, 4, 8), "layer3": (B, 2, 2, 16),
                "layer4": (B, 1, 1, 16), "pooled": (B, 16), "head": (B, 3)}),
    "resnet50_dc5": (resnet.resnet50(5, replace_stride_with_dilation=(False, False, True)), (B, 64, 64, 3),
                     {"stem": (B, 16, 16, 64), "layer1": (B, 16, 16, 256), "layer2": (B, 8, 8, 512),
                      "layer3": (B, 4, 4, 1024), "layer4": (B, 4, 4, 2048), "pooled": (B, 2048), "head": (B, 5)}),
    "cifar_resnet": (resnet.resnet32(5, blocks=1), (B, 16, 16, 3),
                     {"stem": (B, 16, 16, 16), "layer1": (B, 16, 16, 16), "layer2": (B, 8, 8, 32),
                      "layer3": (B, 4, 4, 64), "pooled": (B, 64), "head": (B, 5)}),
    "metaformer": (metaformer.create_model("poolformer_s12", 5, depths=(1, 1, 1, 1), dims=(8, 16, 16, 32)),
                   (B, 32, 32, 3),
                   {"stem": (B, 8, 8, 8), "stage1": (B, 8, 8, 8), "stage2": (B, 4, 4, 16), "stage3": (B, 2, 2, 16),
                    "stage4": (B, 1, 1, 32), "norm": (B, 1, 1, 32), "pooled": (B, 32), "head": (B, 5)}),
    "volo": (volo.create_model("volo_d1_224", 5, layers=(1, 1, 1, 1), embed_dims=(16, 32, 32, 32),
                               num_heads=(1, 2, 2, 2), stem_hidden_dim=8, img_size=32), (B, 32, 32, 3),
             {"stem": (B, 4, 4, 16), "stage1": (B, 4, 4, 16), "stage2": (B, 2, 2, 32), "stage3": (B, 2, 2, 32),
              "stage4": (B, 2, 2, 32), "pooled": (B, 32), "head": (B, 5)}),
    "permutator": (permutator.create_model("vip_s7", 5, **TINY_VIP), (B, 32, 32, 3),
                   {"stem": (B, 8, 8, 32), "stage1": (B, 8, 8, 32), "stage2": (B, 4, 4, 64), "stage3": (B, 4, 4, 64),
                    "stage4": (B, 4, 4, 64), "norm": (B, 4, 4, 64), "pooled": (B, 64), "head": (B, 5)}),
    "dualformer": (dualformer.model.DualFormer(num_classes=5, **TINY_DUALFORMER), (1, 4, 224, 224, 3),
                   {"stem": (1, 2, 56, 56, 8), "stage1": (1, 2, 56, 56, 8), "stage2": (1, 2, 28, 28, 16),
                    "stage3": (1, 2, 14, 14, 32), "stage4": (1, 2, 7, 7, 64), "norm": (1, 2, 7, 7, 64),
                    "pooled": (1, 64), "head": (1, 5)}),
    "multi_expert": (longtail_models.multi_expert_resnet32(5, blocks=1), (B, 16, 16, 3),
                     {"stem": (B, 16, 16, 16), "layer1": (B, 16, 16, 16), "layer2s_0": (B, 8, 8, 24),
                      "layer3s_0": (B, 4, 4, 48), "layer2s_2": (B, 8, 8, 24), "layer3s_2": (B, 4, 4, 48),
                      "pooled": (B, 3, 48), "head": {"logits": (B, 5), "expert_logits": (B, 3, 5),
                                                     "features": (B, 3, 48)}}),
    "bbn": (longtail_models.bbn_resnet32(5, blocks=1), (B, 16, 16, 3),
            {"stem": (B, 16, 16, 16), "layer1": (B, 16, 16, 16), "layer2": (B, 8, 8, 32), "layer3": (B, 8, 8, 32),
             "cb_block": (B, 4, 4, 64), "rb_block": (B, 4, 4, 64), "pooled": (B, 128), "head": (B, 5)}),
}


def _request(model, taps):
    """The stage maps by index, everything else by name."""
    stages = model.stage_names
    return tuple(stages.index(t) if t in stages else t for t in taps)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_returns_its_documented_taps(family):
    model, shape, want = FAMILIES[family]
    x = jnp.zeros(shape)
    request = _request(model, want)
    assert any(isinstance(r, int) for r in request)
    out, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.PRNGKey(0), x, features=request))
    assert _shapes(out) == want
    # asking for every tap uses exactly the parameters of the plain call
    plain = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    chex.assert_trees_all_equal_shapes_and_dtypes(nn.meta.unbox(variables), nn.meta.unbox(plain))


def test_init_stops_after_the_last_tap():
    v = jax.eval_shape(lambda: resnet.resnet50().init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                                                      features=("layer2",)))
    assert not any(k.startswith(("layer3", "layer4", "fc")) for k in v["params"])
    model, shape, _ = FAMILIES["metaformer"]
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape), features=("stage4",)))
    assert "network_6_0" in v["params"] and not {"norm", "head"} & set(v["params"])


def test_stage_indices_and_errors():
    model = resnet.ResNet(**TINY_RESNET)
    assert model.stage_names == ("stem", "layer1", "layer2", "layer3", "layer4")
    x = jnp.zeros((1, 32, 32, 3))
    run = jax.jit(model.init_with_output, static_argnames="features")
    out, _ = jax.eval_shape(lambda: run(jax.random.PRNGKey(0), x, features=(4, "stem", "layer4")))
    assert set(out) == {"layer4", "stem"}
    for bad, match in (((5,), "out of range"), (("layer5",), "unknown feature"), (("fc",), "unknown feature"),
                       ((), "non-empty"), ("layer4", "non-empty")):
        with pytest.raises(ValueError, match=match):
            model.init(jax.random.PRNGKey(0), x, features=bad)


def random_variables(model, x, seed=0):
    """Variables of `model` drawn with numpy (XLA's compile of `init` dominates CPU test time):
    N(0, 0.1^2); norm scales and BatchNorm variances around 1."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        value = rng.normal(0.0, 0.1, leaf.shape)
        return jnp.asarray(1.0 + np.abs(value) if getattr(path[-1], "key", None) in ("scale", "var") else value)

    return jax.tree_util.tree_map_with_path(fill, nn.meta.unbox(jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), x))))


@pytest.mark.parametrize("family", ["resnet", "metaformer"])
def test_head_is_the_plain_output_and_reads_pooled(family):
    model, shape, _ = FAMILIES[family]
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    v = random_variables(model, x)
    plain, taps = jax.jit(lambda v, x: (model.apply(v, x), model.apply(v, x, features=("pooled", "head"))))(v, x)
    np.testing.assert_array_equal(taps["head"], plain)
    head = v["params"]["fc" if family == "resnet" else "head"]
    np.testing.assert_allclose(taps["pooled"] @ head["kernel"] + head["bias"], plain, rtol=1e-5, atol=1e-5)
