"""MT data in the PSGAN release layout: a tfds builder over the folder, the generated
synthetic stand-in in that same layout, and grain pipelines of (source, reference) pairs.

Folder (manual_dir; tools/data_reader.py `DataReader`):
  images/{makeup,non-makeup}/NAME.png     RGB faces (MT: 361x361)
  segs/{makeup,non-makeup}/NAME.png       uint8 label maps, MT scheme 0..13, the image's size
  landmarks/{makeup,non-makeup}/NAME.png  NOT images: a pickled (68, 2) float array, (y, x) pixels
  makeup.txt, non-makeup.txt              relative names, e.g. makeup/NAME.png (the train lists)
  makeup_test.txt, non-makeup_test.txt    (optional, not in the release) the `test` split's lists;
                                          without them the `test` split is the training lists

Every file is read and checked before tfds writes anything (it builds into a temporary
directory and renames it when done): a missing image, label map or landmarks file, a label
outside 0..13, a label map of another size than its image, a non-square image (the official
Resize(256) would keep its aspect) or landmarks that are not (68, 2) raise an error naming
the file, and a dataset prepared before stays as it was.

Records: image (PNG), seg (PNG), landmarks float32 [68, 2] in the original image's pixels,
name, makeup (bool). Pairs, as dataloder.py / MakeupDataloader: an epoch has max(#makeup,
#non-makeup) items, each a random non-makeup source and a random makeup reference drawn
independently (here from the item's position, so resuming is exact). Each image is resized
to config.data.image_size (bilinear; segs nearest), the landmarks scaled by size / image.size
(the official `lms / image.size * 256`, no rounding) and psgan.preprocess turns them into
masks [3, S, S] and diffs [3, S/4, S/4, 136]. Evaluation pairs are fixed: non-makeup i with
makeup i mod M.
Batch keys: x, mask_x, diff_x, pts_x (source) and y, mask_y, diff_y, pts_y (reference),
pts_valid (the makeup-detail correspondences, see `correspondences`); eval adds `mask`.
"""
import io
import os
import shutil
from typing import Mapping

import grain
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from common.data import pipeline, sources
from psgan import preprocess

KINDS = ("makeup", "non-makeup")
LISTS = {"train": ("makeup.txt", "non-makeup.txt"), "test": ("makeup_test.txt", "non-makeup_test.txt")}


# ====================================================================== reading the folder
def read_list(root: str, list_file: str) -> list[str]:
    path = os.path.join(root, list_file)
    if not os.path.isfile(path):
        raise preprocess.FaceFileMissing(f"{path}: missing list file (the MT layout has makeup.txt and non-makeup.txt)")
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def read_example(root: str, name: str) -> dict:
    """One face of the folder, checked; errors name the offending file."""
    files = {sub: os.path.join(root, sub, name) for sub in ("images", "segs", "landmarks")}
    for sub in ("images", "segs"):
        if not os.path.isfile(files[sub]):
            raise preprocess.FaceFileMissing(f"{files[sub]}: missing ({name} is listed but has no {sub[:-1]} file)")
    lms = preprocess.read_landmarks(files["landmarks"])
    try:
        with Image.open(files["images"]) as im:
            image = np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001
        raise preprocess.FaceError(f"{files['images']}: cannot decode the image ({e})") from e
    try:
        with Image.open(files["segs"]) as im:
            seg = np.asarray(im)
    except Exception as e:  # noqa: BLE001
        raise preprocess.FaceError(f"{files['segs']}: cannot decode the label map ({e})") from e
    h, w = image.shape[:2]
    if h != w:
        raise preprocess.FaceError(f"{files['images']}: image is {w}x{h}; MT faces are square crops")
    if seg.shape != (h, w):
        raise preprocess.FaceError(f"{files['segs']}: label map is {seg.shape[::-1]} but its image is {w}x{h}")
    try:
        preprocess.check_inputs(seg, lms)
    except ValueError as e:
        raise preprocess.FaceError(f"{files['segs']}: {e}") from e
    return {"image": image, "seg": seg.astype(np.uint8), "landmarks": lms.astype(np.float32), "name": name,
            "makeup": name.split("/")[0] == "makeup"}


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


# ====================================================================== tfds builders
class MtFolder(tfds.core.GeneratorBasedBuilder):
    """A makeup-transfer folder in the PSGAN release layout (see psgan/data.py)."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir is the PSGAN `data/` folder of the MT release: images/, segs/, landmarks/ "
        "(pickled (68, 2) arrays under .png names), makeup.txt and non-makeup.txt.")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "seg": tfds.features.Image(shape=(None, None, 1)),
                "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
                "name": tfds.features.Text(),
                "makeup": np.bool_,
            }))

    def _root(self, dl_manager) -> str:
        return sources.manual_root(dl_manager, self.MANUAL_DOWNLOAD_INSTRUCTIONS)

    def _split_generators(self, dl_manager):
        root = self._root(dl_manager)
        out = {}
        for split, lists in LISTS.items():
            if not all(os.path.isfile(os.path.join(root, f)) for f in lists):
                lists = LISTS["train"]
            names = [n for f in lists for n in read_list(root, f)]
            examples = [read_example(root, n) for n in names]     # every file checked before writing
            out[split] = self._generate_examples(examples)
        return out

    def _generate_examples(self, examples):
        for ex in examples:
            yield ex["name"], {"image": _png(ex["image"]), "seg": _png(ex["seg"]),
                               "landmarks": ex["landmarks"], "name": ex["name"], "makeup": ex["makeup"]}


class SyntheticMt(MtFolder):
    """Generated faces (psgan.synthetic) written in the MT layout and read like the real folder."""
    VERSION = tfds.core.Version("1.0.0")
    PREPARES_ITSELF = True
    MANUAL_DOWNLOAD_INSTRUCTIONS = None
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="default", description="96+96 train, 16+16 test faces at 96 px"),
        tfds.core.BuilderConfig(name="small", description="16+16 train, 4+4 test faces at 80 px (tests)"),
        tfds.core.BuilderConfig(name="closeup", description="96+96 train, 16+16 test close-up faces with "
                                "1.5x lips at 64 px (the demo: lips cover ~7 of the 16x16 AMM pixels)"),
    ]
    SIZES = {"default": (96, 16, 96), "small": (16, 4, 80), "closeup": (96, 16, 64)}
    SHAPES = {"closeup": dict(scale=(0.4, 0.44), lip_scale=1.5)}

    def _root(self, dl_manager):
        from psgan import synthetic
        n_train, n_test, size = self.SIZES[self.builder_config.name]
        shape = self.SHAPES.get(self.builder_config.name, {})
        root = os.path.join(os.fspath(dl_manager.download_dir), f"synthetic_mt_{self.builder_config.name}")
        synthetic.write_mt_folder(root, n_train, n_train, size, seed=0, **shape)
        test = os.path.join(root, "test_tmp")
        synthetic.write_mt_folder(test, n_test, n_test, size, seed=1, prefix="t", **shape)
        for kind in KINDS:                     # the test faces beside the train ones, in their own lists
            for sub in ("images", "segs", "landmarks"):
                src = os.path.join(test, sub, kind)
                for f in os.listdir(src):
                    os.replace(os.path.join(src, f), os.path.join(root, sub, kind, f))
            os.replace(os.path.join(test, f"{kind}.txt"), os.path.join(root, f"{kind}_test.txt"))
        shutil.rmtree(test)
        return root


# ====================================================================== elements
# fixed-topology correspondences for the makeup detail loss (the PRNet stand-in): points at
# fixed barycentric weights in landmark triangles over the nose and the cheeks
DETAIL_TRIANGLES = ((27, 31, 35), (28, 31, 35), (30, 31, 33), (30, 33, 35), (31, 33, 35),
                    (1, 2, 31), (2, 3, 31), (3, 4, 48), (3, 31, 48), (1, 31, 39), (40, 41, 31),
                    (15, 14, 35), (14, 13, 35), (13, 12, 54), (13, 35, 54), (15, 35, 42), (46, 47, 35))


def _barycentric(n: int = 4) -> np.ndarray:
    w = [(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)]
    return np.asarray(w, np.float64) / n


BARY = _barycentric()
NUM_POINTS = len(DETAIL_TRIANGLES) * len(BARY)


def correspondences(lms: np.ndarray) -> np.ndarray:
    """[K, 2] (y, x) points of one face; the same index is the same facial point on any face."""
    tri = np.asarray(lms, np.float64)[np.asarray(DETAIL_TRIANGLES)]          # [T, 3, 2]
    return np.einsum("bk,tkc->tbc", BARY, tri).reshape(-1, 2).astype(np.float32)


def load_face(record: Mapping, size: int, eye_margin: int) -> dict:
    """A decoded record at `size`: image [-1, 1], masks, diffs, detail points."""
    image = Image.fromarray(_decode(record["image"], 3))
    seg = Image.fromarray(_decode(record["seg"], 1)[..., 0])
    lms = np.asarray(record["landmarks"], np.float64)
    lms = lms / np.asarray(image.size, np.float64) * size        # official: lms / image.size * 256
    image = np.asarray(image.resize((size, size), Image.BILINEAR), np.float32) / 127.5 - 1.0
    seg = np.asarray(seg.resize((size, size), Image.NEAREST))
    name = record["name"].decode() if isinstance(record["name"], bytes) else str(record["name"])
    masks, diff = preprocess.process(seg, lms, (size // 4, size // 4), where=name, eye_margin=eye_margin)
    pts = correspondences(lms)
    valid = np.all((pts >= 0) & (pts <= size - 1), -1).astype(np.float32)
    return {"image": image, "mask": masks, "diff": diff, "pts": pts, "valid": valid}


def _decode(x, channels: int) -> np.ndarray:
    if isinstance(x, (bytes, np.bytes_)):
        with Image.open(io.BytesIO(x)) as im:
            a = np.asarray(im)
    else:
        a = np.asarray(x)
    if a.ndim == 2:
        a = a[..., None]
    return np.ascontiguousarray(a[..., :channels]) if channels == 3 else a


def pair(src: dict, ref: dict) -> dict:
    return {"x": src["image"], "mask_x": src["mask"], "diff_x": src["diff"], "pts_x": src["pts"],
            "y": ref["image"], "mask_y": ref["mask"], "diff_y": ref["diff"], "pts_y": ref["pts"],
            "pts_valid": src["valid"] * ref["valid"]}


class Domains:
    """The records of one split, indexed by domain."""

    def __init__(self, source):
        self.source = source
        flags = np.array([bool(source[i]["makeup"]) for i in range(len(source))])
        self.makeup, self.non_makeup = np.flatnonzero(flags), np.flatnonzero(~flags)
        if not len(self.makeup) or not len(self.non_makeup):
            raise preprocess.FaceError(f"split {source.split!r} of {source.name!r} needs makeup and non-makeup faces, "
                             f"has {len(self.makeup)} and {len(self.non_makeup)}")


class TrainPairs:
    """grain random_map transform: position -> (random non-makeup, random makeup) pair."""

    def __init__(self, domains: Domains, size: int, eye_margin: int):
        self.d, self.size, self.margin = domains, size, eye_margin

    def __call__(self, _, rng: np.random.Generator) -> dict:
        i = int(self.d.makeup[rng.integers(len(self.d.makeup))])
        j = int(self.d.non_makeup[rng.integers(len(self.d.non_makeup))])
        return pair(load_face(self.d.source[j], self.size, self.margin),
                    load_face(self.d.source[i], self.size, self.margin))


class EvalPairs:
    """Fixed pairs: non-makeup k with makeup k mod M."""

    def __init__(self, domains: Domains, size: int, eye_margin: int):
        self.d, self.size, self.margin = domains, size, eye_margin

    def __len__(self):
        return len(self.d.non_makeup)

    def __getitem__(self, k):
        j = int(self.d.non_makeup[k])
        i = int(self.d.makeup[k % len(self.d.makeup)])
        return pair(load_face(self.d.source[j], self.size, self.margin),
                    load_face(self.d.source[i], self.size, self.margin))


def eye_margin(config) -> int:
    d = config.data
    return int(d.eye_margin) if d.eye_margin > 0 else max(1, round(16 * d.image_size / 256))


def domains(config, split: str) -> Domains:
    d = config.data
    return Domains(sources.data_source(d.name, split, d.data_dir, d.builder))


def train_dataset(config, split: str, process_index: int, process_count: int):
    dom = domains(config, split)
    n = max(len(dom.makeup), len(dom.non_makeup))          # DataReader.__len__
    return pipeline.train_dataset(list(range(n)), TrainPairs(dom, int(config.data.image_size), eye_margin(config)),
                                  int(config.batch_size), int(config.seed), process_index, process_count,
                                  config.data.num_threads, config.data.prefetch)


def eval_dataset(config, split: str, process_index: int, process_count: int):
    pairs = EvalPairs(domains(config, split), int(config.data.image_size), eye_margin(config))
    return pipeline.eval_dataset(_Seq(pairs), lambda r: r, int(config.eval_batch_size), process_index,
                                 process_count, config.data.num_threads, config.data.prefetch)


class _Seq:
    """A random-access sequence for grain.MapDataset.source."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, k):
        return self.pairs[k]


__all__ = ["MtFolder", "SyntheticMt", "train_dataset", "eval_dataset", "read_example", "grain"]
