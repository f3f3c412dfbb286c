"""Classifier heads, the BBN and multi-expert models (Megvii-Nanjing/BBN, Ensemble-codebase
Expert_ResNeXt.py): outputs on hand-made inputs against numpy / torch re-computations,
parameter counts (counted analytically from the official layer definitions) and shapes."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from longtail import create_model, heads
from tests.conftest import require


def _count(model, size=32):
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nn.meta.unbox(v["params"])))


def test_normed_linear_matches_torch_normalize_and_has_unit_columns():
    torch = require("torch")
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    head = heads.NormedLinear(5, scale=30.0)
    v = head.init(jax.random.PRNGKey(0), jnp.asarray(x))
    w = np.asarray(nn.meta.unbox(v["params"]["kernel"]))
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 1.0, rtol=1e-6)       # renorm(2, 1, 1e-5) * 1e5
    assert np.abs(w).max() <= 1.0
    tf = torch.nn.functional
    want = 30.0 * tf.normalize(torch.tensor(x), dim=1).mm(tf.normalize(torch.tensor(w), dim=0)).numpy()
    np.testing.assert_allclose(head.apply(v, jnp.asarray(x)), want, rtol=1e-5, atol=1e-5)


def test_lws_scales_logits_and_bias():
    head = heads.LWSLinear(2)
    params = {"kernel": jnp.array([[1.0, 2.0], [3.0, -1.0]]), "bias": jnp.array([0.5, 1.0]),
              "scale": jnp.array([2.0, 0.5])}
    out = head.apply({"params": params}, jnp.array([[1.0, 1.0]]))
    np.testing.assert_allclose(out, [[(1 + 3 + 0.5) * 2.0, (2 - 1 + 1.0) * 0.5]])      # (W f + b) * s
    v = head.init(jax.random.PRNGKey(0), jnp.ones((1, 3)))
    np.testing.assert_array_equal(v["params"]["scale"], np.ones(2))


def test_ncm_centroids_and_logits_on_hand_made_features():
    feats = np.array([[4.0, 2.0], [2.0, 0.0], [0.0, 2.0], [2.0, 4.0]])
    labels = np.array([0, 0, 1, 1])
    mean = feats.mean(0)                                   # (2, 2); cl2n: (1, 0), (0, -1) | (-1, 0), (0, 1)
    cents = np.asarray(heads.class_centroids(feats, labels, 2, mean))
    np.testing.assert_allclose(cents, [[0.5, -0.5], [-0.5, 0.5]], atol=1e-6)
    query = jnp.array([[4.0, 0.0]])                        # cl2n -> (s, -s)
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(heads.ncm_logits(query, cents, mean, "l2"),
                               [[-2 * (s - 0.5) ** 2, -2 * (s + 0.5) ** 2]], atol=1e-5)
    np.testing.assert_allclose(heads.ncm_logits(query, cents, mean, "cos"), [[1.0, -1.0]], atol=1e-5)


def test_tau_normalise():
    head = {"kernel": jnp.array([[3.0, 0.0], [4.0, 2.0]]), "bias": jnp.array([1.0, 2.0])}
    out = heads.tau_normalise(head, 1.0)
    np.testing.assert_allclose(out["kernel"], [[0.6, 0.0], [0.8, 1.0]])
    np.testing.assert_array_equal(out["bias"], [0.0, 0.0])
    np.testing.assert_allclose(heads.tau_normalise(head, 0.0)["kernel"], head["kernel"])


def test_heads_plug_into_the_backbone_under_its_classifier_name():
    assert _count(create_model("resnet32", 10, head=heads.make_head("cosine"))) == 464_144      # LDAM-DRW, analytic
    assert _count(create_model("resnet32", 100, head=heads.make_head("cosine"))) == 469_904
    assert _count(create_model("resnet32", 10, head=heads.make_head("lws"))) == 464_154 + 10
    plain = create_model("resnet32", 10, head=heads.make_head("linear"))
    assert _count(plain) == 464_154
    out = jax.eval_shape(lambda: plain.init_with_output(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)),
                                                        features=("pooled", "head"))[0])
    assert out["head"].shape == (2, 10) and out["pooled"].shape == (2, 64)   # the IB loss reads both
    v = jax.eval_shape(lambda: create_model("resnet32", 10, head=heads.make_head("ncm")).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    assert "linear" not in v["params"] and v["ncm"]["linear"]["centroids"].shape == (10, 64)


def test_bbn_parameter_counts_and_train_logits_mix_linearly():
    assert _count(create_model("bbn_resnet32", 10)) == 538_778                     # Megvii-Nanjing/BBN, analytic
    assert _count(create_model("bbn_resnet32", 100)) == 550_388
    model = create_model("bbn_resnet32", 4, blocks=1)
    x, x_rb = jax.random.normal(jax.random.PRNGKey(1), (2, 2, 8, 8, 3))
    v = nn.meta.unbox(model.init(jax.random.PRNGKey(0), x))
    out, _ = jax.jit(lambda v: model.apply(v, x, train=True, rebalancing_images=x_rb, mutable=["batch_stats"]))(v)
    # independent: the branch features in train mode, then W [2a f_c ; 2(1-a) f_r] + b
    bb = {"params": v["params"]["backbone"], "batch_stats": v["batch_stats"]["backbone"]}
    features = jax.jit(lambda img, train, branch: model.backbone.apply(
        bb, img, train, branch, mutable=["batch_stats"])[0], static_argnums=(1, 2))
    (f_c,), (f_r,) = features(x, True, ("cb",)), features(x_rb, True, ("rb",))
    w, b = np.asarray(v["params"]["classifier"]["kernel"]), np.asarray(v["params"]["classifier"]["bias"])
    a = 0.3
    want = np.concatenate([2 * a * f_c, 2 * (1 - a) * f_r], -1) @ w + b
    np.testing.assert_allclose(a * out["conventional"] + (1 - a) * out["rebalancing"], want, rtol=1e-4, atol=1e-4)
    f_c0, f_r0 = features(x, False, ("cb", "rb"))
    np.testing.assert_allclose(jax.jit(model.apply)(v, x), np.concatenate([f_c0, f_r0], -1) @ w + b,
                               rtol=1e-4, atol=1e-4)


def test_multi_expert_parameter_counts_and_shapes():
    rx = create_model("multi_expert_resnext50_32x4d", 1000)
    assert _count(rx, 64) == 42_889_024                       # Expert_ResNeXt.py, analytic: 42.89 M
    assert _count(create_model("multi_expert_resnet50", 1000), 64) == 43_677_248     # 43.68 M
    out = jax.eval_shape(lambda: rx.init_with_output(jax.random.PRNGKey(0), jnp.zeros((2, 224, 224, 3)))[0])
    assert out["logits"].shape == (2, 1000) and out["expert_logits"].shape == (2, 3, 1000)
    assert out["features"].shape == (2, 3, 1536)
    # CIFAR ResNet-32, 3 experts: shared conv1 + layer1 (16), per expert layer2 (24) + layer3 (48) + cosine
    shared = 3 * 9 * 16 + 2 * 16 + 5 * (2 * 16 * 16 * 9 + 4 * 16)
    layer2 = (16 * 24 * 9 + 24 * 24 * 9 + 4 * 24) + 4 * (2 * 24 * 24 * 9 + 4 * 24)
    layer3 = (24 * 48 * 9 + 48 * 48 * 9 + 4 * 48) + 4 * (2 * 48 * 48 * 9 + 4 * 48)
    for c in (10, 100):
        assert _count(create_model("multi_expert_resnet32", c)) == shared + 3 * (layer2 + layer3 + 48 * c)


def test_multi_expert_output_is_the_mean_of_cosine_experts():
    model = create_model("multi_expert_resnet32", 5, blocks=1)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 3))
    v = model.init(jax.random.PRNGKey(1), x)
    out = jax.jit(model.apply)(v, x)
    np.testing.assert_allclose(out["logits"], np.mean(out["expert_logits"], 1), rtol=1e-6)
    for e in range(3):
        w = np.asarray(nn.meta.unbox(v["params"][f"linears_{e}"]["kernel"]))
        f = np.asarray(out["features"][:, e])
        want = 30 * (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
        np.testing.assert_allclose(out["expert_logits"][:, e], want, rtol=1e-4, atol=1e-4)
    assert np.abs(np.asarray(out["expert_logits"])).max() <= 30.0 + 1e-4
    # SADE's test-time aggregation weights, when set, weight the experts' logits
    w = np.array([0.6, 0.3, 0.1], np.float32)
    out = jax.jit(model.apply)({**v, "aggregation": {"weights": w}}, x)
    np.testing.assert_allclose(out["logits"], np.einsum("bec,e->bc", out["expert_logits"], w), rtol=1e-5, atol=1e-5)
