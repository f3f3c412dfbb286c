"""The new methods through the longtail task on Digits-LT: decoupled stage 2 with LWS and
MiSLAS (which parameters move, shifted vs frozen BN), NCM centroids, and BBN / RIDE / SADE /
LADE training end to end."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import checkpoint, train
from common.runner import evaluate_checkpoint
from longtail import create_model, ncm, samplers
from longtail.task import LongTailTask
from tests.common.configs import load_config


def _config(method: str):
    return load_config("configs/longtail/digits_lt.py", f"{method},test")


def _stage1(tmp_path) -> str:
    """A stage-1 'checkpoint': the initial CE model's variables (no training needed here)."""
    import flax.linen as nn
    task = LongTailTask(_config("ce"))
    variables = nn.meta.unbox(task.init_variables(jax.random.PRNGKey(3)))
    return checkpoint.save_variables(str(tmp_path / "stage1"), variables)


def test_lws_trains_only_the_scales_and_mislas_shifts_bn(tmp_path):
    stage1 = _stage1(tmp_path)
    before = checkpoint.load_any(stage1)
    lws = _config("lws")
    lws.init_from, lws.longtail.freeze_bn = stage1, True
    train.train_and_evaluate(lws, str(tmp_path / "lws"), progress=False)
    after = checkpoint.load_any(str(tmp_path / "lws"))
    for k in ("kernel", "bias"):
        np.testing.assert_array_equal(after["params"]["linear"][k], before["params"]["linear"][k])
    np.testing.assert_array_equal(after["params"]["conv1"]["kernel"], before["params"]["conv1"]["kernel"])
    assert not np.allclose(after["params"]["linear"]["scale"], 1.0)
    jax.tree_util.tree_map(np.testing.assert_array_equal, after["batch_stats"], before["batch_stats"])   # frozen BN

    mislas = _config("mislas")
    mislas.init_from = stage1
    train.train_and_evaluate(mislas, str(tmp_path / "mislas"), progress=False)
    after = checkpoint.load_any(str(tmp_path / "mislas"))
    np.testing.assert_array_equal(after["params"]["layer2_0"]["conv1"]["kernel"],
                                  before["params"]["layer2_0"]["conv1"]["kernel"])
    np.testing.assert_array_equal(after["params"]["bn1"]["scale"], before["params"]["bn1"]["scale"])
    assert not np.allclose(after["params"]["linear"]["kernel"], before["params"]["linear"]["kernel"])
    assert not np.allclose(after["params"]["linear"]["scale"], 1.0)
    # shifted BN: the frozen backbone's running statistics are re-estimated on stage-2 batches
    assert not np.allclose(after["batch_stats"]["bn1"]["mean"], before["batch_stats"]["bn1"]["mean"])


def test_ncm_centroids_are_class_means_of_cl2n_train_features(tmp_path):
    stage1 = _stage1(tmp_path)
    config = _config("ncm")
    path = ncm.fit(config, stage1, str(tmp_path / "ncm"))
    saved = checkpoint.load_any(path)
    # independent: all training images at once through the feature extractor, numpy cl2n means
    task = LongTailTask(config)
    src = task.source("train")
    images = np.stack([task.eval_element(src[i])["image"] for i in range(len(src))])
    labels = np.array([int(src[i]["label"]) for i in range(len(src))])
    variables = {k: v for k, v in checkpoint.load_any(stage1).items()}
    model = create_model("resnet32", 10, blocks=1)
    feats = np.asarray(jax.jit(lambda v, x: model.apply(v, x, features=("pooled",))["pooled"])(
        variables, jnp.asarray(images)))
    f = feats - feats.mean(0)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    want = np.stack([f[labels == c].mean(0) for c in range(10)])
    np.testing.assert_allclose(saved["ncm"]["linear"]["centroids"], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(saved["ncm"]["linear"]["mean"], feats.mean(0), rtol=1e-4, atol=1e-5)
    m = evaluate_checkpoint(config, path, progress=False)["eval"]
    assert {"top1", "many", "medium", "few"} <= set(m) and m["top1"] > 10.0      # better than chance


def test_bbn_stream_pairs_uniform_and_reversed_samples():
    task = LongTailTask(_config("bbn"))
    it = iter(task.input_pipeline("train", 0, 1, train=True))
    batches = [next(it) for _ in range(10)]
    assert batches[0]["image_rb"].shape == batches[0]["image"].shape
    counts = task.train_counts
    rb = np.concatenate([b["label_rb"] for b in batches])
    ib = np.concatenate([b["label"] for b in batches])
    few = counts < 10
    assert samplers.reversed_probabilities(counts)[few].sum() > 0.8
    assert few[rb].mean() > 0.5 > few[ib].mean()       # reversed: p_c ~ 1/n_c puts most draws on the tail


@pytest.mark.parametrize("method", ["sade", "lade", "ib"])
def test_configured_objective_is_the_method_loss(method):
    """The config routes to the loss (its formula is tested in test_method_losses)."""
    from longtail import losses
    config = _config(method)
    if method == "ib":
        config.longtail.ib_start_epoch = 0.0          # past the CE warm-up
    task = LongTailTask(config)
    counts, y = task.train_counts, jnp.arange(8) % 10
    model = task.build_model()
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((8, 32, 32, 3)))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 32, 32, 3))
    state = {k: c for k, c in v.items() if k != "params"}
    out, _ = jax.jit(lambda p, s, x: task.apply_model(p, s, x, train=True))(v["params"], state, x)
    got = task.objective(out, y, jnp.asarray(0), jax.random.PRNGKey(2))
    if method == "sade":
        want = losses.sade(out["expert_logits"], y, counts, 2.0)
    elif method == "ib":
        assert out["features"].shape == (8, 64)
        want = losses.influence_balanced(out["logits"], y, out["features"], counts, 1000.0)
    else:
        want = losses.logit_adjusted_ce(out, y, counts) + 0.1 * losses.lade(out, y, counts, 0.1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("method", ["bbn", "ride"])
def test_methods_train_end_to_end(tmp_path, method):
    workdir = str(tmp_path / method)
    m = train.train_and_evaluate(_config(method), workdir, progress=False)["eval"]
    assert {"top1", "many", "medium", "few"} <= set(m) and np.isfinite(m["loss"])
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    if method == "bbn":
        alphas = [r["train/bbn_alpha"] for r in rows if "train/bbn_alpha" in r]
        assert alphas and all(0.0 <= a <= 1.0 for a in alphas)


def test_remix_keeps_each_pairs_own_label_weight():
    """Remix gives the minority side the whole label pair by pair; the loss must use each
    sample's weight (a batch-mean weight would undo the relabelling)."""
    config = _config("remix")
    task = LongTailTask(config)
    counts = task.train_counts                                   # [120, 77, ..., 2]
    labels = jnp.asarray([0, 9, 1, 2])                           # reversed partners: 2, 1, 9, 0
    images = jax.random.normal(jax.random.PRNGKey(0), (4, 32, 32, 3))
    lam_rng = next(jax.random.PRNGKey(s) for s in range(100)
                   if float(jax.random.beta(jax.random.PRNGKey(s), 1.0, 1.0)) < 0.5)
    lam = float(jax.random.beta(lam_rng, 1.0, 1.0))
    _, (y_a, y_b, lam_y), _ = task.mix(lam_rng, {"image": images, "label": labels})
    np.testing.assert_array_equal(y_b, labels[::-1])
    # pairs (label -> partner): 0 -> 2, n 120 vs 50, ratio 2.4 < kappa 3: plain mixup weight;
    # 9 -> 1, ratio 2/77 <= 1/3 but 1 - lam > 0.5 = tau: plain; 1 -> 9, ratio 77/2 >= 3 and
    # lam < tau: the label goes to the minority partner 9; 2 -> 0, ratio 50/120 > 1/3: plain
    assert list(counts[[0, 1, 2, 9]]) == [120, 77, 50, 2]
    want = [lam, lam, 0.0, lam]
    np.testing.assert_allclose(lam_y, want, rtol=1e-6)
    logits = jax.random.normal(jax.random.PRNGKey(1), (4, 10))
    logp = np.asarray(jax.nn.log_softmax(logits))
    per_sample = [-(w * logp[i, a] + (1 - w) * logp[i, b]) for i, (a, b, w) in enumerate(zip(y_a, y_b, want))]
    got = task.loss(logits, (y_a, y_b, lam_y), {}, jnp.asarray(0), jax.random.PRNGKey(0))[0]
    np.testing.assert_allclose(got, np.mean(per_sample), rtol=1e-5)
    with pytest.raises(ValueError, match="Remix"):
        bad = _config("remix")
        bad.longtail.loss = "focal"
        LongTailTask(bad)
