"""The MT-layout reader: the generated stand-in goes through the same tfds builder and
element pipeline as the real folder would (pickled landmarks under .png names, the two lists),
the pairs are deterministic, and bad folders fail naming the file before anything is written;
the converter CLI on an official-layout state dict."""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from common.data import sources
from common.errors import UserError
from psgan import data, synthetic


def test_synthetic_folder_has_the_official_layout(tmp_path):
    root = str(tmp_path / "mt")
    synthetic.write_mt_folder(root, 2, 3, 64, seed=0)
    assert open(os.path.join(root, "makeup.txt")).read().split() == ["makeup/m0000.png", "makeup/m0001.png"]
    assert len(open(os.path.join(root, "non-makeup.txt")).read().split()) == 3
    with open(os.path.join(root, "landmarks/makeup/m0000.png"), "rb") as f:
        lms = pickle.load(f)
    assert lms.shape == (68, 2)                                       # (y, x), a pickle under a .png name
    ex = data.read_example(root, "makeup/m0000.png")
    assert ex["image"].shape == (64, 64, 3) and ex["seg"].shape == (64, 64) and ex["makeup"]
    assert set(np.unique(ex["seg"])) <= set(range(14)) and {1, 7, 9} <= set(np.unique(ex["seg"]))


def test_builder_reads_a_folder_and_pairs_are_deterministic(tmp_path):
    root = str(tmp_path / "mt")
    synthetic.write_mt_folder(root, 3, 2, 72, seed=1)
    data_dir = str(tmp_path / "tfds")
    sources.prepare("mt_folder", data_dir, manual_dir=root, builder="psgan.data")
    src = sources.data_source("mt_folder", "train", data_dir, "psgan.data")
    assert len(src) == 5
    dom = data.Domains(src)
    assert len(dom.makeup) == 3 and len(dom.non_makeup) == 2
    tp = data.TrainPairs(dom, 64, 4)
    a = tp(0, np.random.default_rng(7))
    b = tp(0, np.random.default_rng(7))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["x"].shape == (64, 64, 3) and a["mask_x"].shape == (3, 64, 64) and a["diff_y"].shape == (3, 16, 16, 136)
    assert a["pts_x"].shape == (data.NUM_POINTS, 2) and -1 <= a["x"].min() and a["x"].max() <= 1
    norms = np.linalg.norm(a["diff_x"], axis=-1)
    assert np.allclose(norms[norms > 0], 1, atol=1e-5)
    # a test split without its own lists is the training lists
    assert len(sources.data_source("mt_folder", "test", data_dir, "psgan.data")) == 5


@pytest.mark.parametrize("breakage,match", [
    ("no_landmarks", "landmarks/makeup/m0001.png: no landmarks file"),
    ("bad_label", r"segs/non-makeup/n0000.png: parsing map has labels \[20\]"),
    ("wrong_size", r"segs/makeup/m0000.png: label map is \(40, 40\)"),
])
def test_bad_folders_fail_naming_the_file_and_keep_what_was_prepared(tmp_path, breakage, match):
    root = str(tmp_path / "mt")
    synthetic.write_mt_folder(root, 2, 1, 64, seed=2)
    data_dir = str(tmp_path / "tfds")
    sources.prepare("mt_folder", data_dir, manual_dir=root, builder="psgan.data")
    prepared = sorted(os.listdir(os.path.join(data_dir, "mt_folder", "1.0.0")))
    if breakage == "no_landmarks":
        os.remove(os.path.join(root, "landmarks/makeup/m0001.png"))
    elif breakage == "bad_label":
        p = os.path.join(root, "segs/non-makeup/n0000.png")
        seg = np.asarray(Image.open(p)).copy()
        seg[5, 5] = 20
        Image.fromarray(seg).save(p)
    else:
        Image.new("L", (40, 40)).save(os.path.join(root, "segs/makeup/m0000.png"))
    import shutil
    shutil.rmtree(os.path.join(data_dir, "mt_folder"))        # a rebuild of the broken folder ...
    with pytest.raises((FileNotFoundError, ValueError), match=match) as err:
        sources.prepare("mt_folder", data_dir, manual_dir=root, builder="psgan.data")
    assert isinstance(err.value, UserError)                   # printed as one line by the CLIs
    assert not os.path.isdir(os.path.join(data_dir, "mt_folder", "1.0.0"))   # ... writes nothing
    assert prepared


def test_converter_cli_on_official_layout_state_dicts(tmp_path):
    from tests.conftest import require
    torch = require("torch")
    from common import checkpoint
    from psgan import convert
    from tests.psgan.test_reference import G, _official_state_dict
    g = str(tmp_path / "G.pth")
    torch.save({k: torch.from_numpy(v) for k, v in _official_state_dict().items()}, g)
    d = str(tmp_path / "D_A.pth")
    torch.save({str(k): torch.from_numpy(G["d/" + str(k)]) for k in G["d_names"]}, d)
    out = str(tmp_path / "conv")
    convert.main([g, out, "--d-a", d])
    nets = checkpoint.load_nets(out)
    assert set(nets) == {"generator", "disc_a"}
    np.testing.assert_array_equal(nets["generator"]["params"]["stnet"]["tnet_up_conv_1"]["kernel"],
                                  _official_state_dict()["tnet_up_conv_1.weight"].transpose(2, 3, 1, 0))
    with pytest.raises(ValueError, match="idnet-from-mdnet"):
        convert.main([g, str(tmp_path / "pp"), "--variant", "psganpp"])
    convert.main([g, str(tmp_path / "pp"), "--variant", "psganpp", "--idnet-from-mdnet"])
    pp = checkpoint.load_nets(str(tmp_path / "pp"))["generator"]["params"]
    np.testing.assert_array_equal(pp["id_net"]["pnet_in_0"]["kernel"], pp["mdnet"]["pnet_in_0"]["kernel"])
