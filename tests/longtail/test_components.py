"""Long-tail components on hand-made inputs: losses, samplers, metrics, data."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from longtail import losses, metrics, samplers
from longtail.data import cifar_lt_indices, digits_lt_splits, lt_counts


def test_balanced_softmax_is_ce_on_prior_shifted_logits():
    z = jax.random.normal(jax.random.PRNGKey(0), (6, 4))
    y = jnp.array([0, 1, 2, 3, 0, 1])
    counts = np.array([100, 30, 10, 2])
    shifted = z + jnp.log(counts / counts.sum())
    want = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(shifted), y[:, None], 1))
    np.testing.assert_allclose(losses.logit_adjusted_ce(z, y, counts), want, rtol=1e-5)


def test_posthoc_adjustment_moves_the_argmax_to_the_tail():
    z = jnp.array([[2.0, 1.5]])
    assert int(jnp.argmax(z)) == 0
    assert int(jnp.argmax(losses.posthoc_adjust(z, np.array([1000, 10]), 1.0))) == 1


def test_ldam_margins_and_class_weights():
    counts = np.array([1280, 320, 80, 20, 5])
    np.testing.assert_allclose(losses.ldam_margins(counts), 0.5 * (5 / counts) ** 0.25)
    assert losses.ldam_margins(counts).max() == pytest.approx(0.5)
    w = losses.class_balanced_weights(counts, 0.9999)
    assert w.sum() == pytest.approx(5.0)
    assert w[0] / w[1] == pytest.approx((1 - 0.9999 ** 320) / (1 - 0.9999 ** 1280))
    ws = losses.survey_softmax_weights(np.array([1280, 5]))
    np.testing.assert_allclose(ws, [1.0, 1.0 + np.log(256)])


def test_weighted_ce_is_pytorch_weighted_mean():
    z = jnp.zeros((2, 2))
    y = jnp.array([0, 1])
    # equal logits: every nll is log 2, so any weighting gives log 2
    assert float(losses.weighted_ce(z, y, jnp.array([1.0, 9.0]))) == pytest.approx(np.log(2))


def test_focal_reduces_to_ce_at_gamma_zero_and_downweights_easy_samples():
    z = jnp.array([[4.0, 0.0], [0.0, 0.0]])
    y = jnp.array([0, 0])
    np.testing.assert_allclose(losses.focal(z, y, 0.0), losses.weighted_ce(z, y), rtol=1e-6)
    assert float(losses.focal(z, y, 3.0)) < float(losses.weighted_ce(z, y))


def test_esql_never_masks_ground_truth_or_head_classes():
    counts = np.array([1000, 1000, 1, 1])
    z = jnp.zeros((64, 4))
    y = jnp.full((64,), 2)
    # with gamma=1 every non-GT tail logit is masked: the loss is CE over {0, 1, 2} only
    loss = losses.equalization_softmax(jax.random.PRNGKey(0), z, y, counts, lambda_=0.01, gamma=1.0)
    assert float(loss) == pytest.approx(np.log(3), rel=1e-5)


@pytest.mark.parametrize("kind,q", [("instance", 1.0), ("class_balanced", 0.0), ("square_root", 0.5)])
def test_sampler_class_histograms(kind, q):
    labels = np.repeat(np.arange(4), [800, 150, 40, 10])
    draws = np.concatenate([samplers.epoch_order(kind, labels, 4, e, seed=0) for e in range(100)])
    hist = np.bincount(labels[draws], minlength=4) / len(draws)
    np.testing.assert_allclose(hist, samplers.class_probabilities([800, 150, 40, 10], q), atol=0.01)


def test_progressive_and_reversed_samplers():
    counts = np.array([90, 10])
    np.testing.assert_allclose(samplers.progressive_probabilities(counts, 0, 10), [0.9, 0.1])
    np.testing.assert_allclose(samplers.progressive_probabilities(counts, 5, 10), [0.7, 0.3])
    np.testing.assert_allclose(samplers.progressive_probabilities(counts, 10, 10), [0.5, 0.5])
    np.testing.assert_allclose(samplers.reversed_probabilities(counts), [0.1, 0.9])


def test_class_aware_sampler_emits_runs_of_four():
    labels = np.repeat(np.arange(5), [50, 20, 8, 4, 2])
    order = samplers.class_aware(labels, 5, 200, np.random.default_rng(0))
    runs = labels[order].reshape(-1, 4)
    assert (runs == runs[:, :1]).all()
    assert len(np.unique(labels[order])) == 5


def test_metrics_groups_relative_accuracy_and_empty_groups():
    assert metrics.relative_accuracy(45.5, 57.3) == pytest.approx(79.4, abs=0.05)
    assert metrics.upper_reference(57.3, 55.0) == 57.3
    counts = np.array([500, 150, 50, 30, 5])
    groups = metrics.shot_groups(counts, many=100, few=20)
    assert groups["many"].sum() == 2 and groups["medium"].sum() == 2 and groups["few"].sum() == 1
    rep = metrics.longtail_report(correct=np.array([10, 8, 6, 4, 0]), count=np.full(5, 10),
                                  train_counts=counts, many=100, few=20)
    assert rep["top1"] == pytest.approx(56.0) and rep["many"] == pytest.approx(90.0)
    assert rep["medium"] == pytest.approx(50.0) and rep["few"] == pytest.approx(0.0)
    empty = metrics.longtail_report(np.ones(3), np.ones(3), np.array([500, 300, 200]), 100, 20)
    assert np.isnan(empty["few"]) and np.isnan(empty["medium"])


def test_lt_counts_match_the_papers():
    assert lt_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    c100 = lt_counts(500, 100, 100)
    assert sum(c100) == 10_847 and c100[:3] == [500, 477, 455] and c100[-1] == 5
    groups = metrics.shot_groups(c100)
    assert (groups["many"].sum(), groups["medium"].sum(), groups["few"].sum()) == (35, 35, 30)


def test_cifar_lt_selection_keeps_the_counts():
    labels = np.repeat(np.arange(10), 500)
    rng = np.random.default_rng(1)
    labels = labels[rng.permutation(len(labels))]
    keep = cifar_lt_indices(labels, 10, 10)
    assert np.bincount(labels[keep]).tolist() == lt_counts(500, 10, 10)


def test_digits_lt_splits():
    s = digits_lt_splits()
    from sklearn.datasets import load_digits
    y = load_digits().target
    assert np.bincount(y[s["train"]]).tolist() == [120, 77, 50, 32, 21, 13, 8, 5, 3, 2]
    assert np.bincount(y[s["train_r100"]]).tolist() == [120, 71, 43, 25, 15, 9, 5, 3, 2, 1]
    assert np.bincount(y[s["test"]]).tolist() == [40] * 10 and len(s["validation"]) == 100
    assert np.bincount(y[s["train_balanced"]]).tolist() == [33] * 10
    assert not set(s["train"]) & set(s["test"]) and not set(s["validation"]) & set(s["test"])


def test_cifar_lt_builder_selects_from_the_original_order(tmp_path, monkeypatch):
    """The builder recovers CIFAR's order from `id` and applies the kaidic selection; the
    base dataset is faked (tfds cifar10 needs a download)."""
    import tensorflow_datasets as tfds

    from common.data import sources
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 500)[rng.permutation(5000)]          # "original" order
    shuffled = rng.permutation(5000)                                        # tfds storage order
    train = [{"id": f"train_{i:05d}", "label": int(labels[i]), "image": np.full((32, 32, 3), labels[i], np.uint8)}
             for i in shuffled]
    test = [{"id": f"test_{i}", "label": i % 10, "image": np.zeros((32, 32, 3), np.uint8)} for i in range(100)]
    real = tfds.data_source
    monkeypatch.setattr(tfds, "data_source", lambda name, split, **kw: train if split == "train" else test
                        if name == "cifar10" else real(name, split=split, **kw))
    sources.prepare("cifar_lt/cifar10_10", str(tmp_path), builder="longtail.data")
    src = real("cifar_lt/cifar10_10", split="train", data_dir=str(tmp_path))
    got = np.bincount([int(src[i]["label"]) for i in range(len(src))], minlength=10)
    assert got.tolist() == lt_counts(500, 10, 10)
    assert len(real("cifar_lt/cifar10_10", split="test", data_dir=str(tmp_path))) == 100
