"""Places-LT (Liu et al., OLTR 2019): a tfds builder over the official split lists and the
Places365-Standard images, both read from `manual_dir`.

manual_dir must hold
  Places_LT_train.txt, Places_LT_val.txt, Places_LT_test.txt   the OLTR lists (also shipped by
      facebookresearch/classifier-balancing and SADE as data/Places_LT*/), lines
      "train/<class>/<id>.jpg <label>" and "val/<class>/Places365_val_<n>.jpg <label>"
  places365_standard/train/..., places365_standard/val/...     Places365-Standard "easy format"
      (places365standard_easyformat.tar from http://places2.csail.mit.edu, 256x256 images),
      extracted in manual_dir (or its train/ and val/ directly in manual_dir)

Splits: train 62,500 (365 classes, 4,980 ... 5 per class), validation 7,300 (20 per class,
from the Places365 train set), test 36,500 (100 per class, the Places365 val set).
Features: image (JPEG), label (the list's label), file_name (the list's path).

  python -c "from common.data.sources import prepare; prepare('places_lt', manual_dir='DIR', builder='longtail.places_lt')"
"""
import os

import numpy as np
import tensorflow_datasets as tfds

LISTS = {"train": "Places_LT_train.txt", "validation": "Places_LT_val.txt", "test": "Places_LT_test.txt"}
INSTRUCTIONS = (
    "Places-LT needs two downloads in manual_dir: (1) the OLTR split lists Places_LT_train.txt, "
    "Places_LT_val.txt and Places_LT_test.txt (from the OLTR release, or data/Places_LT in "
    "facebookresearch/classifier-balancing), placed directly in manual_dir; (2) the Places365-Standard "
    "256x256 'easy format' archive places365standard_easyformat.tar (http://places2.csail.mit.edu), "
    "extracted in manual_dir so that manual_dir/places365_standard/train/<class>/<id>.jpg and "
    "manual_dir/places365_standard/val/<class>/Places365_val_<n>.jpg exist.")


def read_list(path: str) -> list[tuple[str, int]]:
    """(relative image path, label) per non-empty line of an OLTR list."""
    with open(path) as f:
        rows = [line.split() for line in f if line.strip()]
    return [(rel, int(label)) for rel, label in rows]


def image_root(manual_dir: str) -> str:
    nested = os.path.join(manual_dir, "places365_standard")
    return nested if os.path.isdir(nested) else manual_dir


def check_manual_dir(manual_dir: str) -> None:
    missing = [name for name in LISTS.values() if not os.path.isfile(os.path.join(manual_dir, name))]
    root = image_root(manual_dir)
    missing += [f"{d}/ (images)" for d in ("train", "val") if not os.path.isdir(os.path.join(root, d))]
    if missing:
        raise FileNotFoundError(f"Places-LT: {', '.join(missing)} not found in manual_dir {manual_dir}. "
                                + INSTRUCTIONS)


class PlacesLt(tfds.core.GeneratorBasedBuilder):
    """Places-LT from the OLTR lists and Places365-Standard images (see the module docstring)."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(num_classes=365),
                "file_name": tfds.features.Text()}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        check_manual_dir(manual_dir)
        root = image_root(manual_dir)
        return {split: self._generate_examples(root, read_list(os.path.join(manual_dir, name)))
                for split, name in LISTS.items()}

    def _generate_examples(self, root, rows):
        for rel, label in rows:
            path = os.path.join(root, rel)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"Places-LT: image {rel} of the split list is missing under {root}. "
                                        + INSTRUCTIONS)
            yield rel, {"image": path, "label": label, "file_name": rel}


def class_counts(manual_dir: str, split: str = "train") -> np.ndarray:
    """Per-class image counts of a split list (train: many/medium/few = 131/163/71)."""
    labels = [label for _, label in read_list(os.path.join(manual_dir, LISTS[split]))]
    return np.bincount(labels, minlength=365)
