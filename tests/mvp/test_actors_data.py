"""The Shelf / Campus layout (mvp/data.py): the stand-in written as calibration_{shelf,campus}.json,
actorsGT.mat (the official actor3D cell layout, read back by scipy.io.loadmat), Camera{k}/ PNG
folders and the VoxelPose pseudo-GT pickle, read by the real loader; the tfds builder and PCP
of the ground truth; bad input names the file."""
import json
import os
import pickle

import numpy as np
import pytest
import scipy.io

from mvp import cameras, data, metrics, synthetic


def write(tmp_path, name, frames=6, drop=()):
    views = data.ACTOR_DATASETS[name][0]
    actors, origin = (4, (0.0, 0.0, 0.0)) if name == "shelf" else (3, (3000.0, 4500.0, 0.0))
    rng = np.random.default_rng(3)
    cams = synthetic.ring_cameras(rng, views, distortion=True)
    out, cams = data.actor_standin_frames(rng, cams, frames, actors, origin)
    root = str(tmp_path / name)
    data.write_actor_dataset(root, name, cams, out, f"voxelpose_pesudo_gt_{name}.pickle", drop)
    return root, cams, out


@pytest.mark.parametrize("name", ["shelf", "campus"])
def test_the_official_layout_reads_back(tmp_path, name):
    root, cams, frames = write(tmp_path, name)
    views = len(cams)
    # the official field layout: actor3D = 1 x A cell of F x 1 cells, 14 x 3 metres or 1 x 0
    cell = scipy.io.loadmat(os.path.join(root, "actorsGT.mat"))["actor3D"]
    assert cell.shape == (1, len(frames[0][1])) and cell[0][0].shape == (len(frames), 1)
    for a in range(cell.shape[1]):
        for i, (_, joints, present) in enumerate(frames):
            entry = cell[0][a][i][0]
            assert entry.shape == ((14, 3) if present[a] else (1, 0))
            if present[a]:
                np.testing.assert_allclose(entry * 1000.0, joints[a], atol=1e-9)
    calib = json.load(open(os.path.join(root, f"calibration_{name}.json")))
    assert sorted(calib) == [str(k) for k in range(views)] and set(calib["0"]) == {"R", "T", "fx", "fy", "cx", "cy", "k", "p"}
    image = data.ACTOR_DATASETS[name][1](views - 1, 2)
    assert os.path.isfile(os.path.join(root, f"Camera{views - 1}", image))
    # test split: the actors in actor order, absent ones with visibility 0
    records = list(data.actor_frames(root, name, "validation", ((1, 4),), views))
    assert [k for k, _ in records] == [f"{name}_{i:06d}_0" for i in (1, 2, 3)]
    for (_, r), (_, joints, present) in zip(records, frames[1:4]):
        np.testing.assert_allclose(r["joints_3d"][present], joints[present], atol=1e-9)
        np.testing.assert_array_equal(r["joints_3d_vis"].max(-1), present.astype(np.float32))
        for k in cameras.CAMERA_KEYS:
            np.testing.assert_allclose(r["cameras"][k], np.stack([c[k] for c in cams]), atol=1e-9)
        assert len(r["images"]) == views and r["images"][0][:4] == b"\x89PNG"
    # train split: the pseudo-GT (present actors + noise), repeated frames keep distinct keys
    train = list(data.actor_frames(root, name, "train", ((0, 2), (1, 2)), views,
                                   pseudo_gt=f"voxelpose_pesudo_gt_{name}.pickle"))
    assert [k for k, _ in train] == [f"{name}_000000_0", f"{name}_000001_0", f"{name}_000001_1"]
    _, joints, present = frames[1]
    assert len(train[1][1]["joints_3d"]) == present.sum() and train[1][1]["joints_3d_vis"].min() == 1
    err = np.abs(train[1][1]["joints_3d"] - joints[present])
    assert 0 < err.mean() < 30


def test_joints_land_on_their_discs_through_the_campus_crop(tmp_path):
    """Campus's world is shifted to its space centre (cameras too): the calibration, the crop
    and the reordering to 14 joints still put every joint on the disc of its colour."""
    from mvp.model import TO_14_JOINTS
    root, cams, frames = write(tmp_path, "campus", frames=2)
    _, record = next(data.actor_frames(root, "campus", "validation", ((0, 1),), 3))
    e = data.Element((192, 96))(record)
    assert e["joints_3d"].shape == (10, 14, 3)
    np.testing.assert_array_equal(e["person_valid"][:3], frames[0][2])
    shown = (e["images"] * data.STD + data.MEAN) * 255
    hits = total = 0
    for v in range(3):
        meta_v = {k: e[k][v].astype(np.float64) for k in cameras.CAMERA_KEYS}
        for pose in frames[0][1][frames[0][2]]:
            uv = cameras.project_numpy(pose, meta_v) @ e["affine"][v, :2, :2].T.astype(np.float64) + e["affine"][v, :2, 2]
            for j, (x, y) in enumerate(uv):
                if 2 <= x < 190 and 2 <= y < 94:
                    total += 1
                    hits += np.abs(shown[v, int(round(y)), int(round(x))] - synthetic.PALETTE[TO_14_JOINTS[j]]).max() < 60
    assert total > 15 and hits / total > 0.7


def test_campus_keeps_the_train_frames_with_pseudo_gt_and_bad_input_names_the_file(tmp_path):
    root, cams, frames = write(tmp_path, "campus", frames=4, drop=(2,))
    train = list(data.actor_frames(root, "campus", "train", ((0, 4),), 3, pseudo_gt="voxelpose_pesudo_gt_campus.pickle"))
    assert [k for k, _ in train] == ["campus_000000_0", "campus_000001_0", "campus_000003_0"]
    with pytest.raises(data.MissingFile, match="pesudo_gt.*other.pickle"):
        list(data.actor_frames(root, "campus", "train", ((0, 4),), 3, pseudo_gt="other.pickle"))
    with pytest.raises(data.BadFile, match="calibration_campus.json.*\\['3'\\]"):
        list(data.actor_frames(root, "campus", "validation", ((0, 4),), 4))
    with pytest.raises(data.BadFile, match="actorsGT.mat: frame 8 is asked for, the file has 4"):
        list(data.actor_frames(root, "campus", "validation", ((8, 10),), 3))
    os.remove(os.path.join(root, "Camera1", "campus4-c1-00003.png"))
    with pytest.raises(data.MissingFile, match="Camera1/campus4-c1-00003.png: view 1 of frame 3"):
        list(data.actor_frames(root, "campus", "validation", ((0, 4),), 3))


def test_the_tfds_builder_and_pcp_of_the_ground_truth(tmp_path):
    """mvp_actors_synthetic/shelf through tfds and the input pipeline's Element; the ground truth
    as predictions gives PCP 100 for every present actor."""
    from common.data import sources
    sources.prepare("mvp_actors_synthetic/shelf", str(tmp_path / "tfds"), builder="mvp.data")
    src = sources.data_source("mvp_actors_synthetic/shelf", "validation", str(tmp_path / "tfds"), "mvp.data")
    assert len(src) == 4 and len(sources.data_source("mvp_actors_synthetic/shelf", "train", str(tmp_path / "tfds"),
                                                     "mvp.data")) == 6
    element = data.Element((192, 96))
    e = metrics.PoseEvaluator("pcp", 0.0, actors=4)
    seen = np.zeros(4)
    for i in range(len(src)):
        x = element(src[i])
        seen += x["person_valid"][:4]
        order = np.argsort(~x["person_valid"], kind="stable")          # present actors first, as a model would
        e.add({"poses": x["joints_3d"][order][None], "scores": np.ones((1, 10)), "gt": x["joints_3d"][None],
               "gt_vis": x["joints_3d_vis"][None], "gt_valid": x["person_valid"][None], "mask": np.ones(1)})
    m = e.compute()
    for a in range(4):
        assert abs(m[f"PCP_actor{a + 1}"] - (100.0 if seen[a] else 0.0)) < 1e-4
    assert abs(m["recall500"] - 100.0) < 1e-4 and m["frames"] == 4


def test_campus_test_preset_is_scored_by_pcp_per_actor():
    """configs/mvp/campus.py:test: the tiny model with 14 output joints in Campus's space, on the
    Campus-layout stand-in through the tfds builder and the eval pipeline, scored by PCP per
    actor (its loss on 14 joints with actor gaps: tests/mvp/test_losses.py)."""
    import jax
    from common.runner import Run
    from mvp.task import Pose3DTask
    from tests.common.configs import load_config
    c = load_config("configs/mvp/campus.py", "test")
    r = Run(c, jax.devices()[:1])
    results = r.evaluate(r.init_state())
    m = results["eval"]
    assert m["frames"] == 4 and {"PCP_actor1", "PCP_actor2", "PCP_actor3", "PCP", "PCP_torso"} <= set(m)
    assert all(0.0 <= m[k] <= 100.0 for k in m if k.startswith("PCP"))
    assert Pose3DTask(c).summarize(results).splitlines()[0].split()[1] == "PCP_actor1"


def test_the_shelf_builder_reads_manual_dir_and_a_failed_build_writes_nothing(tmp_path):
    """mvp_shelf over a manual_dir: a folder with 10 frames cannot hold the official ranges (up to
    frame 3199); the error names actorsGT.mat and no dataset version is left behind."""
    from common.data import sources
    root = str(tmp_path / "Shelf")
    data.write_actor_standin(root, "shelf", "voxelpose_pesudo_gt_shelf.pickle")
    with pytest.raises(data.BadFile, match="actorsGT.mat: frame 10 is asked for, the file has 10 frames"):
        sources.prepare("mvp_shelf", str(tmp_path / "tfds"), manual_dir=root, builder="mvp.data")
    assert not os.path.exists(tmp_path / "tfds" / "mvp_shelf" / "default" / "1.0.0")
    with pytest.raises((AssertionError, FileNotFoundError), match="(?s)nowhere.*CampusSeq1.*actorsGT.mat"):
        sources.prepare("mvp_campus", str(tmp_path / "tfds"), manual_dir=str(tmp_path / "nowhere"), builder="mvp.data")
