"""Try-on data: tfds builders over the VITON and VITON-HD folder layouts, the synthetic
stand-in (written in the VITON layout and read by the same reader), and grain pipelines.

Layouts (manual_dir):
- `viton` (Han et al.; the CP-VTON package): <root>/<split>/{image/*.jpg, image-parse/*.png
  (LIP labels), cloth/*.jpg, cloth-mask/*.jpg, pose/*_keypoints.json (COCO-18
  `people[0].pose_keypoints`, or `pose_keypoints_2d`)} and <root>/<split>_pairs.txt
  ("im_name c_name", optionally a third column: top | bottom | whole).
- `viton_hd` (shadow2496/VITON-HD): <root>/<split>/{image, image-parse (or image-parse-v3),
  cloth, cloth-mask, openpose_json (or openpose-json): BODY_25 `pose_keypoints_2d`, mapped to
  COCO-18}, <root>/<split>_pairs.txt.
- `synthetic_tryon` (PREPARES_ITSELF): avton/synthetic.py writes a VITON folder (plus
  warp-gt/*.json, the true warp) and the `viton` reader reads it.
tfds splits: train, test (the pairs list: unpaired garments), test_paired (each test
person with their own garment: cloth/<im_name>, or <id>_1.jpg for <id>_0.jpg). Bad input raises before anything is written (tfds builds into
a temporary directory and renames it at the end, so a failed build loses nothing): a
pairs list naming a missing file, a pose json with no person, a parsing PNG with labels
outside LIP's 0..19, a parse whose size differs from its image - each names the file.

Elements (config.data.height x width; other sizes are resized: bilinear images, nearest
parses, scaled keypoints) hold the representation of avton/representation.py:
agnostic, image, cloth, cloth_mask, parse_cloth, garment_mask, limb_mask, limb_image,
skin, warp_theta / has_warp (the synthetic set's true warp), category (0 top, 1 bottom,
2 whole), record (index in the split). Later stages read what earlier ones wrote:
`config.data.warp_dir` -> warp_cloth / warp_mask (<dir>/<split>/warp-cloth/<c_name>, as
cp-vton's test.py writes them), `config.data.limb_dir` -> pred_limb_image / pred_limb_mask
(<dir>/<split>/limb-image|limb-mask/<im_name>.png).
"""
import io
import json
import os
from typing import Mapping

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from avton import representation as R
from common.data import pipeline, sources

SPLITS = ("train", "test", "test_paired")
CATEGORY_IDS = {c: i for i, c in enumerate(R.CATEGORIES)}


# ====================================================================== reading files
def read_pairs(path: str, default_category: str = "top") -> list[tuple[str, str, str]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pairs list {path} does not exist")
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in R.CATEGORIES):
                raise ValueError(f"{path}:{n}: expected 'im_name c_name [top|bottom|whole]', got {line.strip()!r}")
            rows.append((parts[0], parts[1], parts[2] if len(parts) == 3 else default_category))
    return rows


def paired_cloth_name(layout, im_name: str) -> str:
    """The person's own garment: cloth/<im_name> (VITON-HD) or <id>_1.jpg for <id>_0.jpg (VITON)."""
    if os.path.isfile(os.path.join(layout.base, "cloth", im_name)):
        return im_name
    stem, ext = os.path.splitext(im_name)
    return (stem[:-2] + "_1" if stem.endswith("_0") else stem) + ext


def read_keypoints(path: str) -> np.ndarray:
    """[18, 3] COCO-18 (x, y, confidence) from an OpenPose json (COCO-18 or BODY_25)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable OpenPose json ({e})") from e
    people = data.get("people") if isinstance(data, dict) else None
    if not people:
        raise ValueError(f"{path}: the pose json has no person ('people' is empty or missing)")
    person = people[0]
    flat = person.get("pose_keypoints", person.get("pose_keypoints_2d"))
    if flat is None:
        raise ValueError(f"{path}: people[0] has neither 'pose_keypoints' nor 'pose_keypoints_2d'")
    k = np.asarray(flat, np.float32)
    if k.size == 18 * 3:
        return k.reshape(18, 3)
    if k.size == 25 * 3:
        return k.reshape(25, 3)[R.BODY25_TO_COCO18]
    raise ValueError(f"{path}: {k.size} pose values; expected 54 (COCO-18) or 75 (BODY_25)")


def read_parse(path: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            parse = np.asarray(im)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: the parsing PNG fails to decode ({type(e).__name__}: {e})") from e
    if parse.ndim != 2:
        raise ValueError(f"{path}: a parsing PNG must hold one label per pixel (mode L or P), got shape {parse.shape}")
    bad = np.unique(parse[parse >= R.NUM_LABELS])
    if bad.size:
        raise ValueError(f"{path}: unknown parsing labels {bad.tolist()} (LIP has 0..{R.NUM_LABELS - 1})")
    return parse.astype(np.uint8)


def read_rgb(path: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: fails to decode ({type(e).__name__}: {e})") from e


def read_gray(path: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: fails to decode ({type(e).__name__}: {e})") from e


# ====================================================================== builders
def _png(x: np.ndarray) -> bytes:
    """Lossless PNG bytes (tfds stores encoded images as given: no TensorFlow needed)."""
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    return buf.getvalue()


class Layout:
    """Where one layout keeps its files."""
    parse_dirs = ("image-parse",)
    pose_dirs = ("pose",)

    def __init__(self, root: str, split: str):
        self.root, self.split, self.base = root, split, os.path.join(root, split)

    def _first_dir(self, names):
        for n in names:
            if os.path.isdir(os.path.join(self.base, n)):
                return n
        return names[0]

    def files(self, im_name: str, c_name: str) -> dict:
        stem = os.path.splitext(im_name)[0]
        return {"image": os.path.join(self.base, "image", im_name),
                "parse": os.path.join(self.base, self._first_dir(self.parse_dirs), stem + ".png"),
                "pose": os.path.join(self.base, self._first_dir(self.pose_dirs), stem + "_keypoints.json"),
                "cloth": os.path.join(self.base, "cloth", c_name),
                "cloth_mask": os.path.join(self.base, "cloth-mask", c_name),
                "warp_gt": os.path.join(self.base, "warp-gt", stem + ".json")}


class VitonHdLayout(Layout):
    parse_dirs = ("image-parse", "image-parse-v3")
    pose_dirs = ("openpose_json", "openpose-json")


class Viton(tfds.core.GeneratorBasedBuilder):
    """A VITON-layout folder (manual_dir) as try-on records."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir holds train/ and test/ with image/, image-parse/, cloth/, cloth-mask/, pose/ "
        "(CP-VTON's VITON package) and train_pairs.txt / test_pairs.txt.")
    LAYOUT = Layout

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "parse": tfds.features.Image(shape=(None, None, 1)),
                "cloth": tfds.features.Image(shape=(None, None, 3)),
                "cloth_mask": tfds.features.Image(shape=(None, None, 1)),
                "keypoints": tfds.features.Tensor(shape=(18, 3), dtype=np.float32),
                "im_name": tfds.features.Text(),
                "c_name": tfds.features.Text(),
                "category": tfds.features.Text(),
                "warp_theta": tfds.features.Tensor(shape=(50,), dtype=np.float32),
                "has_warp": np.bool_,
            }))

    def _root(self, dl_manager) -> str:
        return sources.manual_root(dl_manager, self.MANUAL_DOWNLOAD_INSTRUCTIONS)

    def _split_generators(self, dl_manager):
        root = self._root(dl_manager)
        plans = {}
        for split in SPLITS:          # every file of every split is checked before anything is written
            folder = split.removesuffix("_paired")
            pairs_path = os.path.join(root, f"{folder}_pairs.txt")
            layout = self.LAYOUT(root, folder)
            rows = []
            for n, (im_name, c_name, category) in enumerate(read_pairs(pairs_path), 1):
                if split.endswith("_paired"):     # the person with their own garment
                    c_name = paired_cloth_name(layout, im_name)
                files = layout.files(im_name, c_name)
                for key in ("image", "parse", "pose", "cloth", "cloth_mask"):
                    if not os.path.isfile(files[key]):
                        raise FileNotFoundError(f"{pairs_path}:{n} names {im_name} / {c_name}, but its {key} file "
                                                f"{files[key]} does not exist")
                rows.append((im_name, c_name, category, files))
            plans[split] = rows
        return {split: self._generate_examples(rows) for split, rows in plans.items()}

    def _generate_examples(self, rows):
        for i, (im_name, c_name, category, files) in enumerate(rows):
            image, parse = read_rgb(files["image"]), read_parse(files["parse"])
            if parse.shape != image.shape[:2]:
                raise ValueError(f"{files['parse']}: parse is {parse.shape[1]}x{parse.shape[0]} but its image "
                                 f"{files['image']} is {image.shape[1]}x{image.shape[0]}")
            cloth, mask = read_rgb(files["cloth"]), read_gray(files["cloth_mask"])
            if mask.shape != cloth.shape[:2]:
                raise ValueError(f"{files['cloth_mask']}: mask size differs from its cloth {files['cloth']}")
            theta, has = np.zeros(50, np.float32), False
            if os.path.isfile(files["warp_gt"]):
                with open(files["warp_gt"]) as f:
                    theta, has = np.asarray(json.load(f)["theta"], np.float32), True
            yield i, {"image": _png(image), "parse": _png(parse), "cloth": _png(cloth), "cloth_mask": _png(mask),
                      "keypoints": read_keypoints(files["pose"]), "im_name": im_name, "c_name": c_name,
                      "category": category, "warp_theta": theta, "has_warp": has}


class VitonHd(Viton):
    """A VITON-HD folder (manual_dir): BODY_25 poses mapped to COCO-18."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir holds train/ and test/ with image/, image-parse/ (or image-parse-v3/), cloth/, "
        "cloth-mask/, openpose_json/ (shadow2496/VITON-HD) and train_pairs.txt / test_pairs.txt.")
    LAYOUT = VitonHdLayout


class SyntheticTryon(Viton):
    """Procedural people and garments through a known warp (avton/synthetic.py), written as
    a VITON folder and read by the VITON reader."""
    VERSION = tfds.core.Version("1.0.0")
    PREPARES_ITSELF = True
    MANUAL_DOWNLOAD_INSTRUCTIONS = None
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="small", description="16 train / 8 test tops at 64x48 (tests)"),
        tfds.core.BuilderConfig(name="top", description="512 train / 64 test tops at 64x48"),
        tfds.core.BuilderConfig(name="alltype", description="512 train / 64 test tops, bottoms, dresses at 64x48"),
        tfds.core.BuilderConfig(name="small_alltype", description="24 train / 12 test of the three categories (tests)"),
        tfds.core.BuilderConfig(name="top_256", description="64 train / 16 test tops at 256x192"),
    ]
    SIZES = {"small": (16, 8, 64, 48, ("top",)), "top": (512, 64, 64, 48, ("top",)),
             "alltype": (512, 64, 64, 48, R.CATEGORIES), "small_alltype": (24, 12, 64, 48, R.CATEGORIES),
             "top_256": (64, 16, 256, 192, ("top",))}

    def _root(self, dl_manager):
        from avton import synthetic
        name = self.builder_config.name
        root = os.path.join(os.fspath(dl_manager.download_dir), f"synthetic_tryon_{name}")
        n_train, n_test, h, w, cats = self.SIZES[name]
        for split, n in (("train", n_train), ("test", n_test)):
            synthetic.write_viton_folder(root, split, n, h, w, cats)
        return root


# ====================================================================== elements
def _array(x) -> np.ndarray:
    if isinstance(x, (bytes, np.bytes_)):
        with Image.open(io.BytesIO(x)) as im:
            return np.asarray(im)
    return np.asarray(x)


def _text(x) -> str:
    return x.decode() if isinstance(x, (bytes, np.bytes_)) else str(x)


def _resize(x: np.ndarray, h: int, w: int, nearest: bool) -> np.ndarray:
    if x.shape[:2] == (h, w):
        return x
    squeeze = x.ndim == 3 and x.shape[-1] == 1
    im = Image.fromarray(x[..., 0] if squeeze else x)
    out = np.asarray(im.resize((w, h), Image.NEAREST if nearest else Image.BILINEAR))
    return out[..., None] if squeeze else out


class Element:
    """record -> float32 maps (the module doc)."""

    def __init__(self, config, split: str):
        d = config.data
        self.h, self.w = int(d.height), int(d.width)
        self.radius, self.split = int(d.pose_radius), split
        self.label_set = d.label_set
        self.preserve = bool(d.preserve)
        self.warp_dir, self.limb_dir = d.warp_dir, d.limb_dir

    def _stage_file(self, root, sub, name):
        path = os.path.join(root, self.split, sub, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: write the earlier stage's outputs for split "
                                    f"{self.split!r} first (python -m avton.dump ...)")
        return path

    def __call__(self, record: Mapping, index: int | None = None) -> dict:
        image = _array(record["image"])
        h0, w0 = image.shape[:2]
        image = _resize(image, self.h, self.w, False)
        parse = _resize(_array(record["parse"]).reshape(h0, w0, 1), self.h, self.w, True)[..., 0]
        cloth = _resize(_array(record["cloth"]), self.h, self.w, False)
        cmask = _resize(_array(record["cloth_mask"]), self.h, self.w, False)
        k = np.asarray(record["keypoints"], np.float32).copy()
        k[:, 0] *= self.w / w0
        k[:, 1] *= self.h / h0
        category = _text(record["category"])
        label_set = category if self.label_set == "category" else self.label_set
        maps = R.person(image, parse, k, radius=self.radius, label_set=label_set, preserve=self.preserve)
        out = {key: maps[key] for key in ("agnostic", "image", "parse_cloth", "garment_mask", "limb_mask",
                                          "limb_image", "skin")}
        out["cloth"] = R.normalize(cloth)
        out["cloth_mask"] = (cmask.reshape(self.h, self.w, 1) >= 128).astype(np.float32)
        out["warp_theta"] = np.asarray(record["warp_theta"], np.float32)
        out["has_warp"] = np.float32(bool(record["has_warp"]))
        out["category"] = np.int32(CATEGORY_IDS[category])
        if self.warp_dir:
            c_name = _text(record["c_name"])
            out["warp_cloth"] = R.normalize(_resize(read_rgb(self._stage_file(self.warp_dir, "warp-cloth", c_name)),
                                                    self.h, self.w, False))
            wm = _resize(read_gray(self._stage_file(self.warp_dir, "warp-mask", c_name)), self.h, self.w, False)
            out["warp_mask"] = (wm >= 128).astype(np.float32)[..., None]
        if self.limb_dir:
            stem = os.path.splitext(_text(record["im_name"]))[0] + ".png"
            li = read_rgb(self._stage_file(self.limb_dir, "limb-image", stem))
            lm = read_gray(self._stage_file(self.limb_dir, "limb-mask", stem))
            out["pred_limb_image"] = R.normalize(_resize(li, self.h, self.w, False))
            out["pred_limb_mask"] = (_resize(lm, self.h, self.w, False) / 255.0).astype(np.float32)[..., None]
        return out


class Indexed:
    """A source whose records carry their index (so eval rows can be named)."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        return {**self.source[i], "_index": i}


class ElementWithIndex(Element):
    def __call__(self, record, rng=None):
        out = super().__call__(record)
        out["record"] = np.int32(record["_index"])
        return out


def source(config, split: str):
    d = config.data
    return sources.data_source(d.name, split, d.data_dir, d.builder)


def names(config, split: str) -> list[tuple[str, str]]:
    """(im_name, c_name) of every record of a split, in order."""
    src = source(config, split)
    out = []
    for i in range(len(src)):
        r = src[i]
        out.append((_text(r["im_name"]), _text(r["c_name"])))
    return out


def train_dataset(config, split, process_index, process_count):
    d = config.data
    return pipeline.train_dataset(Indexed(source(config, split)), ElementWithIndex(config, split),
                                  int(config.batch_size), int(config.seed), process_index, process_count,
                                  d.num_threads, d.prefetch)


def eval_dataset(config, split, process_index, process_count, batch_size: int | None = None):
    d = config.data
    el = ElementWithIndex(config, split)
    return pipeline.eval_dataset(Indexed(source(config, split)), lambda r: el(r), int(batch_size or config.eval_batch_size),
                                 process_index, process_count, d.num_threads, d.prefetch)
