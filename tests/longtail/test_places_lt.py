"""The Places-LT builder on a tiny fake manual_dir (the OLTR list format + Places365-Standard
easy-format folders), and its error when the downloads are missing."""
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from common.data import sources
from longtail import places_lt

ROWS = {"train": [("train/airfield/00000001.jpg", 0), ("train/airfield/00000002.jpg", 0),
                  ("train/apartment_building-outdoor/00000007.jpg", 12)],
        "validation": [("train/airfield/00000003.jpg", 0)],
        "test": [("val/airfield/Places365_val_00000435.jpg", 0),
                 ("val/apartment_building-outdoor/Places365_val_00000010.jpg", 12)]}


def _fake_manual_dir(root):
    root.mkdir(parents=True, exist_ok=True)
    images = root / "places365_standard"
    for split, rows in ROWS.items():
        with open(root / places_lt.LISTS[split], "w") as f:
            for i, (rel, label) in enumerate(rows):
                f.write(f"{rel} {label}\n")
                (images / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((12, 16, 3), 10 * i + label, np.uint8)).save(images / rel, quality=100)
    return root


def test_builder_reads_the_lists_and_images(tmp_path):
    manual = _fake_manual_dir(tmp_path / "manual")
    data_dir = str(tmp_path / "data")
    sources.prepare("places_lt", data_dir, manual_dir=str(manual), builder="longtail.places_lt")
    for split, rows in ROWS.items():
        src = tfds.data_source("places_lt", split=split, data_dir=data_dir)
        assert len(src) == len(rows)
        got = sorted((ex["file_name"].decode(), int(ex["label"])) for ex in (src[i] for i in range(len(src))))
        assert got == sorted(rows)
    ex = tfds.data_source("places_lt", split="train", data_dir=data_dir)[0]
    assert ex["image"].shape == (12, 16, 3) and ex["image"].dtype == np.uint8
    np.testing.assert_array_equal(places_lt.class_counts(str(manual))[[0, 12]], [2, 1])


def test_missing_downloads_name_what_to_get(tmp_path):
    with pytest.raises(FileNotFoundError, match="Places_LT_train.txt.*places365standard_easyformat.tar"):
        sources.prepare("places_lt", str(tmp_path / "data"), manual_dir=str(tmp_path), builder="longtail.places_lt")
    manual = _fake_manual_dir(tmp_path / "manual")
    (manual / "places365_standard" / "val" / "airfield" / "Places365_val_00000435.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="Places365_val_00000435.jpg"):
        sources.prepare("places_lt", str(tmp_path / "data2"), manual_dir=str(manual), builder="longtail.places_lt")
