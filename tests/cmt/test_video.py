"""Video side: the official metadata2numpy rows of the spec's example, threshold binning,
a rendered clip with known motion -> hand-computed bars, beats and densities through real
decoding + Farneback flow, and errors naming the file."""
import numpy as np
import pytest

from cmt import video


def test_spec_example_rows():
    vbeats = [{"bar": 0, "tick": 2, "weight": .95}, {"bar": 0, "tick": 10, "weight": .1},
              {"bar": 1, "tick": 3, "weight": .5}]
    rows = video.control_array(10.0, 96.0, vbeats, [.01, .6, 3.0, .05])
    np.testing.assert_array_equal(rows, [[17, 2, 0, 0, 64, 1], [3, 0, 5, 2, 64, 4], [11, 0, 1, 10, 64, 17],
                                         [17, 10, 0, 16, 64, 26], [4, 0, 3, 19, 64, 31], [17, 17, 0, 32, 64, 51],
                                         [17, 5, 0, 48, 64, 76]])


def test_binning_is_strict_at_the_thresholds():
    p = video.FMPB_PERCENTILE
    assert video.density_class(p[3]) == 4 and video.density_class(np.nextafter(p[3], 0)) == 3
    assert video.density_class(10.0) == 16 and video.strength_class(0.0) == 1 and video.strength_class(1.0) == 10


def test_rendered_clip_gives_the_hand_computed_control_array(tmp_path):
    # 4 segments of 2 s at 24 fps (= 4 bars at 120 bpm): still, 1 px/frame, 2 px/frame, still;
    # the pan stops dead at frames 60 and 110 and for good at 144
    path = video.render_clip(str(tmp_path / "clip.avi"), [0.0, 1.0, 2.0, 0.0], impacts=(60, 110))
    r = video.video_controls(path, tempo=120.0)
    assert r["fps"] == 24 and r["duration"] == pytest.approx(8.0) and len(r["speeds"]) == 191
    assert [t for t, _ in r["beats"]] == pytest.approx([60 / 24, 110 / 24, 144 / 24])
    w = [w for _, w in r["beats"]]
    assert min(w) > 0.4 and max(w) == 1.0
    # per-bar mean |flow| over 48 frame pairs (mean |component| = speed / 2): bar 0 still but
    # its last pair starts the 1 px pan; bar 1: 44 pairs at 0.5 (3 stopped) + 1 at 1.0; bar 2:
    # 44 at 1.0 (3 stopped + the final stop); bar 3 still
    np.testing.assert_allclose(r["fmpb"], [0.5 / 48, (44 * 0.5 + 1.0) / 48, 44 / 48, 0.0], atol=0.01)
    n_beat = 64                                           # ceil(8 s / 60 * 120 * 4)
    s = [video.strength_class(x) for x in w]
    want = [[17, 2, 0, 0, n_beat, 1],                     # bar 0: 0.0104 >= 0.00817 -> class 1
            [17, 9, 0, 16, n_beat, 26],                   # bar 1: 0.47 < 0.5155 -> class 8
            [5, 0, s[0], 20, n_beat, 32],                 # t = 2.5 s -> tick 20 = bar 1, tick 4
            [17, 11, 0, 32, n_beat, 51],                  # bar 2: 0.92 < 0.9989 -> class 10
            [6, 0, s[1], 37, n_beat, 59],                 # t = 4.583 s -> tick 37 = bar 2, tick 5
            [17, 1, 0, 48, n_beat, 76],                   # bar 3: still again
            [1, 0, s[2], 48, n_beat, 76]]                 # t = 6 s -> tick 48 = bar 3, tick 0
    np.testing.assert_array_equal(r["input"], want)
    # visbeat3's envelope (smoothed directogram flux, 1.25 Hz high-pass, 99th-percentile cut) and
    # peak picking: the three strong beats sit at the stops (its smoothing moves them <= 2
    # frames: 58, 108, 145 measured), the rest is high-pass ringing (weights <= 0.26 measured)
    vb = video.video_controls(path, tempo=120.0, beats="visbeat")["beats"]
    strong = sorted(t * 24 for t, w in vb if w > 0.5)
    assert len(strong) == 3 and np.abs(np.array(strong) - [60, 110, 144]).max() <= 2.5
    assert max(w for _, w in vb if w <= 0.5) < 0.3
    assert max(w for _, w in vb) <= 1.0 + 1e-9


def test_bad_video_and_control_arrays_name_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(video.VideoError, match="broken.mp4.*cannot be decoded"):
        video.video_controls(str(bad))
    np.savez(tmp_path / "wrong.npz", input=np.zeros((5, 4)))
    with pytest.raises(video.VideoError, match="wrong.npz.*shape"):
        video.load_controls(str(tmp_path / "wrong.npz"))
    np.savez(tmp_path / "nokey.npz", x=np.zeros((5, 6)))
    with pytest.raises(video.VideoError, match="nokey.npz.*'input'"):
        video.load_controls(str(tmp_path / "nokey.npz"))
    ok = video.synthetic_controls(4)
    assert ok[0, 0] == 17 and (ok[ok[:, 0] == 17, 1] == [1, 6, 11, 16]).all()
    assert set(ok[ok[:, 0] < 17, 2]) <= set(range(2, 11))
