"""Data pipeline: determinism, per-process rows, resumable iterator, transforms, errors."""
import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.config import classification_config
from common.data import mixup, pipeline, sources, transforms


class _Source:
    """Records whose 'image' encodes the record index, to trace where each went."""

    def __init__(self, n=40):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": np.full((4, 4, 3), i, np.uint8), "label": i % 10}


def _tag(record, rng):
    return {"index": np.int32(record["image"][0, 0, 0]), "noise": np.float32(rng.random())}


def _take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def test_train_stream_is_deterministic_and_reshuffled_per_epoch():
    a = _take(pipeline.train_dataset(_Source(), _tag, 8, seed=3, process_index=0, process_count=1), 10)
    b = _take(pipeline.train_dataset(_Source(), _tag, 8, seed=3, process_index=0, process_count=1), 10)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["index"], y["index"])
        np.testing.assert_array_equal(x["noise"], y["noise"])
    epoch1 = np.concatenate([x["index"] for x in a[:5]])
    epoch2 = np.concatenate([x["index"] for x in a[5:]])
    assert sorted(epoch1) == list(range(40)) and sorted(epoch2) == list(range(40))
    assert not np.array_equal(epoch1, epoch2)


def test_processes_read_disjoint_rows_that_make_up_the_single_process_batch():
    one = _take(pipeline.train_dataset(_Source(), _tag, 8, 0, 0, 1), 6)
    parts = [_take(pipeline.train_dataset(_Source(), _tag, 8, 0, p, 2), 6) for p in range(2)]
    for step in range(6):
        a, b = parts[0][step]["index"], parts[1][step]["index"]
        assert not set(a) & set(b)
        np.testing.assert_array_equal(np.concatenate([a, b]), one[step]["index"])
        # augmentation randomness follows the record's global position, not the process
        np.testing.assert_array_equal(np.concatenate([parts[0][step]["noise"], parts[1][step]["noise"]]),
                                      one[step]["noise"])


def test_iterator_state_resumes_exactly():
    ds = pipeline.train_dataset(_Source(), _tag, 8, 0, 0, 1)
    it = iter(ds)
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [next(it)["index"] for _ in range(4)]
    it2 = iter(pipeline.train_dataset(_Source(), _tag, 8, 0, 0, 1))
    it2.set_state(state)
    for e in expected:
        np.testing.assert_array_equal(next(it2)["index"], e)


def test_eval_covers_every_example_once_with_masked_padding():
    ds = pipeline.eval_dataset(_Source(37), lambda r: {"index": np.int32(r["image"][0, 0, 0])}, 16, 0, 1)
    batches = list(ds)
    idx = np.concatenate([b["index"] for b in batches])
    mask = np.concatenate([b["mask"] for b in batches])
    assert len(idx) == 48 and mask.sum() == 37
    assert sorted(idx[mask == 1]) == list(range(37))


def test_mixup_cutmix_targets_sum_to_one_and_smoothing():
    images = jax.random.normal(jax.random.PRNGKey(0), (8, 16, 16, 3))
    labels = jnp.arange(8) % 10
    for seed in range(6):
        mixed, targets = mixup.mixup_cutmix(jax.random.PRNGKey(seed), images, labels, 1000, 0.8, 1.0,
                                            1.0, 0.5, 0.1)
        assert mixed.shape == images.shape
        np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-5)
        assert float(targets.min()) == pytest.approx(1e-4, rel=1e-4)   # smoothed off-value 0.1/1000


def test_cutmix_lambda_is_the_true_box_area():
    box, lam = mixup.cutmix_mask(jax.random.PRNGKey(1), 20, 20, 0.5)
    assert float(lam) == pytest.approx(1.0 - float(box.sum()) / 400.0)


def test_eval_resize_then_center_crop():
    d = classification_config().data
    for crop, size in ((0.9, 248), (0.95, 235)):
        d.crop_pct = crop
        t = transforms.EvalTransform(d)
        assert t.resize == size
        assert t(np.zeros((300, 400, 3), np.uint8)).shape == (224, 224, 3)


def test_train_transform_with_randaugment_and_erasing():
    d = classification_config().data
    d.image_size, d.random_erasing = 32, 1.0
    t = transforms.TrainTransform(d)
    rng = np.random.default_rng(0)
    outs = [t(np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8), rng) for i in range(20)]
    assert all(o.shape == (32, 32, 3) and o.dtype == np.float32 for o in outs)


def test_missing_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build imagenet2012"):
        sources.data_source("imagenet2012", "train", str(tmp_path))


def test_corrupt_record_names_dataset_split_and_index():
    class Broken:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            raise OSError("bad bytes")

    src = sources.CheckedSource(Broken(), "digits", "train")
    with pytest.raises(ValueError, match=r"dataset 'digits', split 'train', index 2"):
        src[2]


def test_digits_builder_prepares_itself():
    src = sources.data_source("digits", "validation", builder="common.data.digits")
    assert len(src) == 359
    ex = src[0]
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8 and 0 <= ex["label"] < 10
