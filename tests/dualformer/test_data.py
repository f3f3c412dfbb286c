"""DualFormer video data: mmaction frame sampling, crops, the synthetic_motion builder decoding
real MPEG-4 files, train/test elements, multi-view averaging and mean class accuracy."""
import ml_collections
import numpy as np
import pytest

from tests.conftest import require

from dualformer import sampling
from dualformer.task import average_view_probs, mean_class_accuracy
from dualformer.video_transforms import rrc_box, short_side_size, three_crop_boxes


def test_dense_train_sampling_is_uniform_over_valid_offsets_and_loops_short_videos():
    rng = np.random.default_rng(0)
    # F >> L: offset uniform in [0, F - L]; 8 frames x interval 2 = span 16 of 40.
    offs = {int(sampling.dense_clips(40, 8, 2, rng=rng)[0, 0]) for _ in range(600)}
    assert offs == set(range(0, 25))
    np.testing.assert_array_equal(np.diff(sampling.dense_clips(40, 8, 2, rng=rng)[0]), 2)
    # F == L: the only offset is 0.
    np.testing.assert_array_equal(sampling.dense_clips(16, 8, 2, rng=rng), [np.arange(0, 16, 2)])
    # F < L: start at 0 and wrap modulo F.
    np.testing.assert_array_equal(sampling.dense_clips(5, 4, 2, rng=rng), [[0, 2, 4, 1]])


def test_dense_test_sampling_matches_mmaction():
    # avg = (F - L + 1) / n; offsets int(k * avg + avg / 2)
    np.testing.assert_array_equal(sampling.dense_clips(100, 8, 4, 4)[:, 0], [8, 25, 43, 60])
    np.testing.assert_array_equal(sampling.dense_clips(31, 8, 4, 2)[:, 0], [0, 0])  # F = L - 1
    np.testing.assert_array_equal(sampling.dense_clips(10, 4, 4, 2), [[0, 4, 8, 2]] * 2)  # F < L - 1


def test_uniform_sampling_takes_one_frame_per_segment():
    np.testing.assert_array_equal(sampling.uniform_clip(33, 4), [[4, 12, 20, 28]])
    rng = np.random.default_rng(0)
    for _ in range(20):
        inds = sampling.uniform_clip(33, 4, rng=rng)[0]
        assert all(8 * i <= v <= 8 * (i + 1) for i, v in enumerate(inds))


def test_crops_and_resize_follow_mmaction():
    assert short_side_size(340, 256, 224) == (298, 224)
    assert three_crop_boxes(298, 224, 224) == [(0, 0, 224, 224), (74, 0, 298, 224), (37, 0, 261, 224)]
    assert three_crop_boxes(224, 300, 224)[1] == (0, 76, 224, 300)
    x0, y0, x1, y1 = rrc_box(340, 256, (0.08, 1.0), (0.75, 4 / 3), np.random.default_rng(0))
    assert 0 <= x0 < x1 <= 340 and 0 <= y0 < y1 <= 256
    assert rrc_box(100, 10, (0.99, 1.0), (20.0, 21.0), np.random.default_rng(0)) == (45, 0, 55, 10)  # fallback


def test_view_probabilities_are_averaged_after_softmax():
    logits = np.array([[10.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    probs = np.asarray(average_view_probs(logits, 2))
    e = np.exp
    np.testing.assert_allclose(probs[0], [(1 / (1 + e(-10)) + 1 / (1 + e(1))) / 2,
                                          (e(-10) / (1 + e(-10)) + e(1) / (1 + e(1))) / 2], rtol=1e-6)
    np.testing.assert_allclose(probs[1], [0.5, 0.5])


def test_mean_class_accuracy_counts_predicted_only_classes_as_zero():
    # labels 0,0,1 predicted 0,2,1: class 0 recall 1/2, class 1 1, class 2 (predicted only) 0.
    correct, labels, preds = np.array([1, 1, 0, 0]), np.array([2, 1, 0, 0]), np.array([1, 1, 1, 0])
    assert mean_class_accuracy(correct, labels, preds) == pytest.approx((0.5 + 1 + 0) / 3)


def _data_config():
    return ml_collections.ConfigDict(dict(
        clip_len=4, frame_interval=2, frame_uniform=False, test_clips=2, test_crops=3, short_side=40,
        test_short_side=32, image_size=32, rrc_scale=(0.5, 1.0), rrc_ratio=(0.75, 4 / 3), hflip=0.0,
        mean=(110.0,) * 3, std=(60.0,) * 3))


def test_synthetic_motion_builder_decodes_real_videos_into_train_and_test_views(tmp_path, monkeypatch):
    require("cv2")
    from common.data.sources import data_source
    from dualformer import synthetic_motion
    from dualformer.task import VideoClassificationTask

    src = data_source("synthetic_motion/small", "train", str(tmp_path), "dualformer.video_builders")
    val = data_source("synthetic_motion/small", "validation", str(tmp_path), "dualformer.video_builders")
    assert len(src) == 32 and len(val) == 16
    rec = src[0]
    assert 24 <= rec["num_frames"] <= 48 and len(rec["frames"]) == rec["num_frames"]
    # The stored frames are the decoded MPEG-4 frames of the generated video (lossy codec).
    idx = int(rec["video_id"].decode().split("_")[-1].split(".")[0])
    frames = synthetic_motion.render(int(rec["label"]), np.random.default_rng([0, 0, idx]))
    from dualformer.video_transforms import decode_frames
    got = np.asarray(decode_frames(rec["frames"], [3])[0], np.float32)
    assert got.shape == (64, 80, 3) and np.abs(got - frames[3]).mean() < 12.0

    task = VideoClassificationTask.__new__(VideoClassificationTask)
    task.config = ml_collections.ConfigDict({"data": _data_config()})
    tr = task.train_element(rec, np.random.default_rng(0))
    assert tr["image"].shape == (4, 32, 32, 3) and tr["image"].dtype == np.float32
    ev = task.eval_element(rec)
    assert ev["image"].shape == (6, 4, 32, 32, 3)  # 2 clips x 3 crops
    np.testing.assert_array_equal(task.eval_element(rec)["image"], ev["image"])


def test_synthetic_motion_moves_the_shape_as_the_label_says():
    require("cv2")
    from dualformer import synthetic_motion
    expected = {0: (1, 0, 0), 1: (-1, 0, 0), 2: (0, 1, 0), 3: (0, -1, 0), 6: (0, 0, 1), 7: (0, 0, -1)}
    for label, (sx, sy, sa) in expected.items():
        for seed in range(3):
            v = synthetic_motion.render(label, np.random.default_rng([seed, label]))
            shape = v.min(-1) > 147  # the shape's colour channels are all >= 150, the background's lower
            stats = []
            for f in (shape[0], shape[-1]):
                ys, xs = np.nonzero(f)
                stats.append((xs.mean(), ys.mean(), len(xs)))
            (x0, y0, a0), (x1, y1, a1) = stats
            for d, want in ((x1 - x0, sx), (y1 - y0, sy)):
                assert (d * want > 5) if want else (abs(d) < 3), (label, seed, d)
            assert (a1 > 1.5 * a0) if sa > 0 else (a1 < a0 / 1.5) if sa < 0 else (abs(a1 - a0) < 0.3 * a0)
