"""The Panoptic-format writer and loader (mvp/data.py) on the synthetic stand-in: what the
loader reads back equals what was generated; the input crop and the cameras put every joint
on its rendered disc; bad input gives errors naming the file; a failed build keeps nothing."""
import json
import os

import numpy as np
import pytest

from mvp import cameras, data, synthetic


def write(tmp_path, n=3, views=3, seq="seqA"):
    rng = np.random.default_rng(7)
    cams = synthetic.ring_cameras(rng, views, distortion=True)
    frames = [synthetic.frame(rng, cams, hide_joint=(i == 1)) for i in range(n)]
    root = str(tmp_path / "panoptic")
    data.write_panoptic_sequence(root, seq, cams, frames, data.HD_CAMERAS[:views])
    return root, cams, frames


def test_loader_reads_back_the_generated_cameras_and_people(tmp_path):
    root, cams, frames = write(tmp_path)
    records = list(data.panoptic_frames(root, ["seqA"], 1, data.HD_CAMERAS[:3]))
    assert [k for k, _ in records] == ["seqA_00000000", "seqA_00000001", "seqA_00000002"]
    for (_, r), (images, poses, vis) in zip(records, frames):
        for k in cameras.CAMERA_KEYS:
            np.testing.assert_allclose(r["cameras"][k], np.stack([c[k] for c in cams]), atol=1e-9)
        np.testing.assert_allclose(r["joints_3d"], poses, atol=1e-9)
        np.testing.assert_array_equal(r["joints_3d_vis"], vis)
        assert len(r["images"]) == 3 and r["images"][0][:2] == b"\xff\xd8"       # JPEG
    assert records[1][1]["joints_3d_vis"].min() == 0                             # the hidden joint
    # every 2nd frame, as the official interval
    assert [k for k, _ in data.panoptic_frames(root, ["seqA"], 2, data.HD_CAMERAS[:3])] == ["seqA_00000000",
                                                                                           "seqA_00000002"]


def test_input_crop_puts_each_joint_on_its_rendered_disc(tmp_path):
    root, cams, frames = write(tmp_path, n=2)
    _, record = next(iter(data.panoptic_frames(root, ["seqA"], 1, data.HD_CAMERAS[:3])))
    e = data.Element((192, 96))(record)
    assert e["images"].shape == (3, 96, 192, 3) and e["person_valid"].sum() == len(frames[0][1])
    shown = (e["images"] * data.STD + data.MEAN) * 255
    hits = total = 0
    for v in range(3):
        meta_v = {k: e[k][v].astype(np.float64) for k in cameras.CAMERA_KEYS}
        for pose in frames[0][1]:
            uv = cameras.project_numpy(pose, meta_v) @ e["affine"][v, :2, :2].T.astype(np.float64) + e["affine"][v, :2, 2]
            for j, (x, y) in enumerate(uv):
                if 2 <= x < 190 and 2 <= y < 94:
                    total += 1
                    colour = shown[v, int(round(y)), int(round(x))]
                    hits += np.abs(colour - synthetic.PALETTE[j]).max() < 60
    assert total > 20 and hits / total > 0.7        # occlusion by other persons and limbs aside


def test_bad_input_names_the_file(tmp_path):
    root, _, _ = write(tmp_path, n=2)
    calib = os.path.join(root, "seqA", "calibration_seqA.json")
    with pytest.raises(ValueError, match="calibration_seqA.json.*\\(0, 13\\)"):
        list(data.panoptic_frames(root, ["seqA"], 1, data.HD_CAMERAS[:4]))     # camera (0, 13) absent
    image = os.path.join(root, "seqA", "hdImgs", "00_06", "00_06_00000001.jpg")
    os.remove(image)
    with pytest.raises(FileNotFoundError, match="00_06_00000001.jpg"):
        list(data.panoptic_frames(root, ["seqA"], 1, data.HD_CAMERAS[:3]))
    # a body whose root (mid-hip) is invisible is skipped, as the official loader does
    body = os.path.join(root, "seqA", "hdPose3d_stage1_coco19", "body3DScene_00000000.json")
    doc = json.load(open(body))
    j19 = np.asarray(doc["bodies"][0]["joints19"]).reshape(19, 4)
    j19[2, 3] = 0.0
    doc["bodies"][0]["joints19"] = j19.reshape(-1).tolist()
    json.dump(doc, open(body, "w"))
    joints, _ = data.read_bodies(body, 10)
    assert len(joints) == len(doc["bodies"]) - 1
    with pytest.raises(ValueError, match="body3DScene_00000001.json.*max_people"):
        data.read_bodies(body.replace("00000000", "00000001"), 0)
    assert os.path.isfile(calib)


def test_a_failed_build_writes_nothing(tmp_path):
    from common.data import sources
    manual = tmp_path / "missing_sequences"
    (manual / "some_other_sequence").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="calibration_160422_ultimatum1.json"):
        sources.prepare("mvp_panoptic/cam3", str(tmp_path / "tfds"), manual_dir=str(manual), builder="mvp.data")
    assert not os.path.exists(tmp_path / "tfds" / "mvp_panoptic" / "cam3" / "1.0.0")
