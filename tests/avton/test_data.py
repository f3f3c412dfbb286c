"""The readers of the VITON layout, the representation and the metrics: the synthetic
stand-in goes through the real reader; bad input names the file and loses nothing
already prepared; the agnostic equals cp-vton's CPDataset; SSIM equals scikit-image's."""
import json
import os
import shutil

import numpy as np
import pytest

from avton import data, metrics, synthetic
from avton import representation as R
from common.data import sources
from tests.avton import golden as G
from tests.conftest import require

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("viton"))
    for split, n in (("train", 3), ("test", 2)):
        synthetic.write_viton_folder(root, split, n)
    return root


def _prepare(root, data_dir):
    sources.prepare("viton", data_dir, manual_dir=root, builder="avton.data")
    return {s: sources.data_source("viton", s, data_dir, "avton.data") for s in ("train", "test", "test_paired")}


def test_viton_layout_reads_with_the_true_warp_and_paired_split(folder, tmp_path):
    srcs = _prepare(folder, str(tmp_path / "tfds"))
    assert [len(srcs[s]) for s in ("train", "test", "test_paired")] == [3, 2, 2]
    r = srcs["train"][0]
    assert np.asarray(r["keypoints"]).shape == (18, 3) and bool(r["has_warp"])
    paired = {data._text(srcs["test_paired"][i]["im_name"]): data._text(srcs["test_paired"][i]["c_name"]) for i in range(2)}
    assert paired == {"000000_0.jpg": "000000_1.jpg", "000001_0.jpg": "000001_1.jpg"}
    # the worn garment is the in-shop one through the stored warp: sampling it reproduces the person
    im, parse, kp, cloth, cmask, theta = synthetic.make_sample(0, "train", 64, 48, "top")
    grid = synthetic.true_grid(theta.astype(np.float64), 64, 48)
    gx, gy = (grid[..., 0] + 1) / 2 * 47, (grid[..., 1] + 1) / 2 * 63
    worn = synthetic._sample(cloth.astype(np.float64), gx, gy, "border")
    m = parse == 5
    assert np.abs(worn[m] - im[m]).max() <= 0.5 + 1e-9


def _expect_failure(root, data_dir, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        sources.prepare("viton", data_dir, manual_dir=root, builder="avton.data")
    # the failed build left nothing that reads as prepared (tfds writes to a temporary dir)
    assert not sources.tfds_builder("viton", data_dir, "avton.data").is_prepared()


def test_bad_input_names_the_file_and_loses_nothing(folder, tmp_path):
    data_dir = str(tmp_path / "tfds")
    good = _prepare(folder, data_dir)
    n_before = len(good["train"])
    # a pose json with no person
    bad = str(tmp_path / "no_person")
    shutil.copytree(folder, bad)
    path = os.path.join(bad, "train", "pose", "000001_0_keypoints.json")
    json.dump({"version": 1.0, "people": []}, open(path, "w"))
    v2 = str(tmp_path / "tfds_bad")
    _expect_failure(bad, v2, "000001_0_keypoints.json.*no person")
    # a parsing PNG with unknown labels
    bad = str(tmp_path / "bad_labels")
    shutil.copytree(folder, bad)
    from PIL import Image
    p = os.path.join(bad, "train", "image-parse", "000002_0.png")
    arr = np.asarray(Image.open(p)).copy()
    arr[0, 0] = 23
    Image.fromarray(arr).save(p)
    _expect_failure(bad, v2, "000002_0.png.*unknown parsing labels \\[23\\]")
    # a pairs list naming a missing file
    bad = str(tmp_path / "missing")
    shutil.copytree(folder, bad)
    with open(os.path.join(bad, "test_pairs.txt"), "a") as f:
        f.write("000009_0.jpg 000009_1.jpg\n")
    _expect_failure(bad, v2, "test_pairs.txt:3 names 000009_0.jpg.*does not exist")
    # what was prepared before is still there and readable
    again = sources.data_source("viton", "train", data_dir, "avton.data")
    assert len(again) == n_before and np.asarray(again[0]["keypoints"]).shape == (18, 3)


def test_body25_keypoints_map_to_coco18(tmp_path):
    k25 = np.arange(75, dtype=np.float32).reshape(25, 3)
    path = str(tmp_path / "x_keypoints.json")
    json.dump({"people": [{"pose_keypoints_2d": k25.reshape(-1).tolist()}]}, open(path, "w"))
    k = data.read_keypoints(path)
    assert k.shape == (18, 3) and k[8, 0] == k25[9, 0] and k[1, 0] == k25[1, 0] and k[17, 0] == k25[18, 0]


def test_agnostic_equals_cpvton_cpdataset():
    """Fixture made by make_golden.py: cp_dataset.py's CPDataset (stage GMM, radius 2) on the
    synthetic sample of tests/avton/golden.py written as lossless files."""
    fix = np.load(os.path.join(HERE, "golden_dataset.npz"))
    im, parse, kp, cloth, cmask, _ = synthetic.make_sample(*G.DATASET_SAMPLE)
    maps = R.person(im, parse, kp, radius=G.DATASET_RADIUS)
    np.testing.assert_allclose(maps["agnostic"], fix["agnostic"], atol=1e-6)
    np.testing.assert_allclose(maps["parse_cloth"], fix["parse_cloth"], atol=1e-6)
    assert maps["agnostic"].shape[-1] == 22 and set(np.unique(maps["pose"])) <= {-1.0, 1.0}


def test_all_type_label_sets():
    im, parse, kp, *_ = synthetic.make_sample(0, "train", 64, 48, "bottom")
    maps = R.person(im, parse, kp, label_set="bottom", preserve=True)
    assert maps["garment_mask"].sum() == np.isin(parse, (9, 12)).sum() > 0
    assert maps["limb_mask"].sum() == np.isin(parse, (16, 17)).sum()
    assert maps["agnostic"].shape[-1] == R.agnostic_channels(preserve=True) == 25
    assert np.all(maps["preserve"][parse == 5] > -1 + 1e-6) or not (parse == 5).any()   # the top is kept


def test_ssim_equals_scikit_image():
    skm = require("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (2, 40, 30, 3)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    ours = np.asarray(metrics.ssim(a, b))
    ref = [skm.structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1, channel_axis=-1) for i in range(2)]
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    assert float(metrics.ssim(a, a)[0]) == pytest.approx(1.0, abs=1e-6)


def test_perceptual_loss_uses_the_five_vgg19_taps():
    import jax
    import jax.numpy as jnp

    from avton import losses
    p = losses.init_vgg(jax.random.PRNGKey(0))
    assert sorted(p) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
                         "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1"]
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
    assert float(losses.perceptual(p, x, x)) == 0.0
    full, last = float(losses.perceptual(p, x, -x)), float(losses.perceptual(p, x, -x, "relu5_1"))
    assert full > last > 0
