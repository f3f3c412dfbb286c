"""COCO-format detection data: tfds builders, one record reader, grain pipelines, and the
ground truth for pycocotools.

Sources (config.data.name, with config.data.builder = "pnp_detr.data" for the last two):
- `coco/2017`: tfds's own COCO 2017 (`tfds build coco/2017`); its `objects/label` 0..79
  are mapped to the raw COCO category ids of the 92-way head (COCO_2017_IDS).
- `coco_format`: any COCO-format folder given as manual_dir: `annotations/instances_train*.json`
  and `annotations/instances_val*.json` plus the images they name (looked up in
  `<root>/<train2017|...>` named after the json, `<root>/images`, then `<root>`). Records
  have the feature keys of `coco/2017` (image, image/filename, image/id, objects: bbox
  normalised [ymin, xmin, ymax, xmax], label = index in the sorted category ids, is_crowd,
  area, id) plus the raw `objects/category_id`; the categories go to the dataset metadata.
- `synthetic_shapes` (`/small` for tests): a generated COCO-format folder
  (pnp_detr.synthetic_shapes), written as real PNG + json files and read by `coco_format`.

Bad input raises errors that name the file and the record: an annotation file that is not
COCO format, a box outside its image, an image that fails to decode (or whose size differs
from the json), a category id the head cannot hold (>= config.model.num_classes). tfds
builds into a temporary directory and renames it when done, so a failed build loses
nothing already prepared.

Elements follow twangnh/pnp-detr datasets/coco.py: crowds and zero-area boxes are dropped
from training (and from the eval targets, as the official `ConvertCocoPolysToMask`), boxes
clipped to the image; the evaluation ground truth (`coco_ground_truth`) keeps crowds.
Batch keys: image [B, Hc, Wc, 3] float32 (normalised, zero padding), pixel_mask [B, Hc, Wc]
bool (True = image), boxes [B, T, 4] cxcywh normalised by `size`, labels [B, T] int32 raw
ids, box_valid [B, T] bool, image_id int64, orig_size / size [B, 2] int32 (h, w) of the
original and the resized image; eval batches add `mask` (PadToMultiple's row validity).
Canvases: each batch is padded to the smallest (Hc, Wc) of config.data.canvases that holds
all its images, so a few static shapes are compiled; an empty list pads to the batch
maximum like the official collate (a new program per shape). Multi-process runs must list
exactly one canvas, or processes could pick different shapes for one global batch.
"""
import concurrent.futures
import glob
import io
import json
import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from common.data import pipeline, sources
from common.errors import ConfigError, DataError
from pnp_detr import transforms

# tfds coco/2017 label (sorted category order) -> raw COCO category id (the head's index)
COCO_2017_IDS = np.array(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
     31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
     56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
     85, 86, 87, 88, 89, 90], np.int64)
# boxes may overshoot their image by this many pixels (float rounding in annotation
# tools); they are clipped, as the official loader clamps them. Beyond it: an error.
BOX_TOLERANCE = 1.0


# ====================================================================== annotation files
def find_annotation_file(root: str, split: str) -> str:
    """The one `annotations/instances_<split>*.json` under root."""
    found = sorted(glob.glob(os.path.join(root, "annotations", f"instances_{split}*.json")))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(map(os.path.basename, found))})"
        raise DataError(f"{what} annotation files annotations/instances_{split}*.json in {root!r}; "
                                f"a COCO-format folder needs exactly one per split (train, val)")
    return found[0]


def _fail(path: str, where: str, why: str):
    raise DataError(f"{path}: {where}: {why}")


def load_annotations(path: str) -> dict:
    """Parsed and checked COCO instances json: {"images": [...] sorted by id, "objects":
    {image id: [annotation, ...] sorted by id}, "categories": [...] sorted by id}."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable json file ({e})") from e
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        _fail(path, "top level", "not COCO format: needs the lists 'images', 'annotations', 'categories'")
    categories = {}
    for k, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or c["id"] < 0:
            _fail(path, f"categories[{k}]", f"needs a non-negative integer 'id', got {c!r}")
        if c["id"] in categories:
            _fail(path, f"categories[{k}]", f"duplicate category id {c['id']}")
        categories[c["id"]] = {"id": c["id"], "name": str(c.get("name", c["id"]))}
    images = {}
    for k, im in enumerate(data["images"]):
        ok = isinstance(im, dict) and isinstance(im.get("id"), int) and isinstance(im.get("file_name"), str)
        if not ok or not all(isinstance(im.get(s), int) and im[s] > 0 for s in ("width", "height")):
            _fail(path, f"images[{k}]", f"needs integer 'id', 'file_name', positive 'width' and 'height', got {im!r}")
        if im["id"] in images:
            _fail(path, f"images[{k}]", f"duplicate image id {im['id']}")
        images[im["id"]] = im
    objects = {i: [] for i in images}
    for k, a in enumerate(data["annotations"]):
        where = f"annotations[{k}] (id {a.get('id') if isinstance(a, dict) else '?'})"
        if not isinstance(a, dict) or not isinstance(a.get("id"), int):
            _fail(path, where, f"needs an integer 'id', got {a!r}")
        if a.get("image_id") not in images:
            _fail(path, where, f"image_id {a.get('image_id')!r} is not in 'images'")
        if a.get("category_id") not in categories:
            _fail(path, where, f"category_id {a.get('category_id')!r} is not in 'categories'")
        im = images[a["image_id"]]
        where += f" of image {im['id']} ({im['file_name']}, {im['width']}x{im['height']})"
        bbox = a.get("bbox")
        if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in bbox)):
            _fail(path, where, f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        t = BOX_TOLERANCE
        if w < 0 or h < 0 or x < -t or y < -t or x + w > im["width"] + t or y + h > im["height"] + t:
            _fail(path, where, f"bbox {list(bbox)} lies outside the image")
        objects[a["image_id"]].append(a)
    for anns in objects.values():
        anns.sort(key=lambda a: a["id"])
    return {"images": sorted(images.values(), key=lambda im: im["id"]), "objects": objects,
            "categories": sorted(categories.values(), key=lambda c: c["id"])}


def _image_dirs(root: str, annotation_file: str) -> list[str]:
    stem = os.path.basename(annotation_file)[len("instances_"):-len(".json")]   # e.g. train2017
    return [d for d in (os.path.join(root, stem), os.path.join(root, "images"), root) if os.path.isdir(d)]


def _encoded_image(path: str, image: dict, annotation_file: str) -> bytes:
    """The file's bytes when it is an RGB JPEG/PNG, else re-encoded as RGB PNG (as
    torchvision's `Image.open(...).convert('RGB')`). Checks it decodes to the json's size."""
    where = f"image {image['id']} ({path}) named in {annotation_file}"
    try:
        with open(path, "rb") as f:
            raw = f.read()
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            fmt, mode, size = im.format, im.mode, im.size
            if fmt not in ("JPEG", "PNG") or mode != "RGB":
                buf = io.BytesIO()
                im.convert("RGB").save(buf, format="PNG")
                raw = buf.getvalue()
    except Exception as e:  # noqa: BLE001 - any decoding failure is reported with its file
        raise DataError(f"{where} fails to decode: {type(e).__name__}: {e}") from e
    if size != (image["width"], image["height"]):
        raise DataError(f"{where} is {size[0]}x{size[1]} but the annotations say "
                         f"{image['width']}x{image['height']}")
    return raw


class CocoFormat(tfds.core.GeneratorBasedBuilder):
    """A COCO-format detection folder (manual_dir) in the feature layout of tfds coco/2017."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir is a COCO-format folder: annotations/instances_train*.json and "
        "annotations/instances_val*.json (COCO 'images', 'annotations', 'categories'), the images "
        "they name in <root>/<train2017|val2017|...> (named after the json), <root>/images or <root>.")
    SPLITS = {"train": "train", "validation": "val"}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "image/filename": tfds.features.Text(),
                "image/id": np.int64,
                "objects": tfds.features.Sequence({
                    "id": np.int64,
                    "area": np.float32,
                    "bbox": tfds.features.BBoxFeature(),
                    "label": np.int64,           # index in the sorted category ids
                    "category_id": np.int64,     # the raw id (the detection head's class)
                    "is_crowd": np.bool_,
                }),
            }),
            metadata=tfds.core.MetadataDict())

    def _root(self, dl_manager) -> str:
        return sources.manual_root(dl_manager, self.MANUAL_DOWNLOAD_INSTRUCTIONS)

    def _split_generators(self, dl_manager):
        root = os.fspath(self._root(dl_manager))
        generators, categories, files = {}, None, {}
        for tfds_split, split in self.SPLITS.items():
            path = find_annotation_file(root, split)
            ann = load_annotations(path)          # every json is checked before anything is written
            if categories is not None and ann["categories"] != categories:
                raise DataError(f"{path}: categories differ from those of the {list(files)[0]} split")
            categories, files[tfds_split] = ann["categories"], path
            generators[tfds_split] = self._generate_examples(root, path, split, ann)
        self.info.metadata["categories"] = categories
        self.info.metadata["annotation_files"] = files
        return generators

    def _generate_examples(self, root, path, split, ann):
        dirs = _image_dirs(root, path)
        label_of = {c["id"]: i for i, c in enumerate(ann["categories"])}
        for image in ann["images"]:
            file = next((os.path.join(d, image["file_name"]) for d in dirs
                         if os.path.isfile(os.path.join(d, image["file_name"]))), None)
            if file is None:
                raise DataError(f"image {image['id']} ({image['file_name']}) named in {path} is in "
                                        f"none of {dirs}")
            w, h = image["width"], image["height"]
            objects = []
            for a in ann["objects"][image["id"]]:
                x, y, bw, bh = (float(v) for v in a["bbox"])
                x0, y0 = min(max(x, 0.0), w), min(max(y, 0.0), h)
                x1, y1 = min(max(x + bw, 0.0), w), min(max(y + bh, 0.0), h)
                objects.append({
                    "id": a["id"], "area": float(a.get("area", bw * bh)),
                    "bbox": tfds.features.BBox(ymin=y0 / h, xmin=x0 / w, ymax=y1 / h, xmax=x1 / w),
                    "label": label_of[a["category_id"]], "category_id": a["category_id"],
                    "is_crowd": bool(a.get("iscrowd", 0))})
            yield image["id"], {"image": _encoded_image(file, image, path), "image/filename": image["file_name"],
                                "image/id": image["id"], "objects": objects}


class SyntheticShapes(CocoFormat):
    """Coloured shapes on noise, 3 categories with ids {1, 3, 18} (pnp_detr.synthetic_shapes),
    generated as a COCO-format folder and read like any other."""
    VERSION = tfds.core.Version("1.0.0")
    PREPARES_ITSELF = True
    MANUAL_DOWNLOAD_INSTRUCTIONS = None      # generated
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="default", description="512 train / 64 validation images"),
        tfds.core.BuilderConfig(name="small", description="16 train / 8 validation images (tests)"),
        tfds.core.BuilderConfig(name="easy", description="1,024 train / 128 validation images of the easy "
                                                         "style: 64-96 px, 1-3 objects (the CPU demo)"),
    ]
    SIZES = {"default": {"train": 512, "val": 64}, "small": {"train": 16, "val": 8},
             "easy": {"train": 1024, "val": 128}}
    STYLE = {"default": "default", "small": "default", "easy": "easy"}

    def _root(self, dl_manager):
        from pnp_detr import synthetic_shapes
        root = os.path.join(os.fspath(dl_manager.download_dir), f"synthetic_shapes_{self.builder_config.name}")
        for split, n in self.SIZES[self.builder_config.name].items():
            synthetic_shapes.write_coco_folder(root, split, n, self.STYLE[self.builder_config.name])
        return root


# ====================================================================== records
def _rgb(image) -> np.ndarray:
    if isinstance(image, (bytes, np.bytes_)):
        with Image.open(io.BytesIO(image)) as im:
            return np.asarray(im.convert("RGB"))
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def read_record(record: Mapping) -> dict:
    """A coco/2017 or coco_format record as image uint8 [H, W, 3], boxes float32 [n, 4]
    absolute xyxy, labels int64 [n] raw category ids, is_crowd bool [n], area float32 [n],
    image_id, filename."""
    image = _rgb(record["image"])
    h, w = image.shape[:2]
    objs = record["objects"]
    bbox = np.asarray(objs["bbox"], np.float32).reshape(-1, 4)
    boxes = bbox[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
    if "category_id" in objs:
        labels = np.asarray(objs["category_id"], np.int64).reshape(-1)
    else:
        labels = COCO_2017_IDS[np.asarray(objs["label"], np.int64).reshape(-1)]
    filename = record.get("image/filename", b"")
    return {"image": image, "boxes": boxes, "labels": labels,
            "is_crowd": np.asarray(objs["is_crowd"], bool).reshape(-1),
            "area": np.asarray(objs["area"], np.float32).reshape(-1),
            "image_id": int(record["image/id"]),
            "filename": filename.decode() if isinstance(filename, bytes) else str(filename)}


def source_categories(source) -> list[dict]:
    """[{"id", "name"}] of a source: the coco_format metadata, or coco/2017's 80 classes."""
    info = getattr(source, "dataset_info", None)
    meta = getattr(info, "metadata", None) or {}
    if "categories" in meta:
        return [{"id": int(c["id"]), "name": str(c["name"])} for c in meta["categories"]]
    try:
        names = info.features["objects"]["label"].names
    except (AttributeError, KeyError, TypeError):
        return []
    if len(names) == len(COCO_2017_IDS):
        return [{"id": int(i), "name": n} for i, n in zip(COCO_2017_IDS, names)]
    return []


def check_categories(source, num_classes: int) -> None:
    """Raises when a category id of the source cannot be a class of a num_classes head
    (ids 0..num_classes-1; index num_classes is no-object)."""
    for c in source_categories(source):
        if not 0 <= c["id"] < num_classes:
            meta = getattr(getattr(source, "dataset_info", None), "metadata", None) or {}
            files = ", ".join(meta.get("annotation_files", {}).values()) or getattr(source, "name", "the source")
            raise ConfigError(f"{files}: category {c['id']} ({c['name']!r}) cannot be held by a head of "
                             f"config.model.num_classes={num_classes} (class ids 0..{num_classes - 1}; "
                             f"index {num_classes} is no-object)")


# ====================================================================== elements
class Element:
    """record -> element (the keys of the module doc, image un-padded [h, w, 3])."""

    def __init__(self, data_config, num_classes: int, train: bool):
        d = data_config
        self.num_classes, self.max_boxes, self.train = int(num_classes), int(d.max_boxes), train
        self.mean = tuple(d.get("mean", transforms.IMAGENET_MEAN))
        self.std = tuple(d.get("std", transforms.IMAGENET_STD))
        if train:
            self.tf = transforms.TrainTransform(d.scales, d.max_size, d.crop_scales, d.crop_size,
                                                flip_prob=d.get("flip_prob", 0.5))
        else:
            self.tf = transforms.EvalTransform(d.eval_size, d.max_size)

    def targets(self, r: dict):
        """Non-crowd, clipped, non-degenerate boxes (detr datasets/coco.py ConvertCocoPolysToMask)."""
        h, w = r["image"].shape[:2]
        boxes = np.clip(r["boxes"], 0, np.array([w, h, w, h], np.float32))
        keep = ~r["is_crowd"] & (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        labels = r["labels"][keep]
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise ConfigError(f"image {r['image_id']} ({r['filename']}): category id {int(labels[bad][0])} "
                             f"cannot be held by a head of num_classes={self.num_classes}")
        return boxes[keep], labels

    def __call__(self, record: Mapping, rng: np.random.Generator | None = None) -> dict:
        r = read_record(record)
        boxes, labels = self.targets(r)
        img = Image.fromarray(r["image"])
        img, boxes, labels = self.tf(img, boxes, labels, rng) if self.train else self.tf(img, boxes, labels)
        w, h = img.size
        n = len(labels)
        if n > self.max_boxes:
            raise ConfigError(f"image {r['image_id']} ({r['filename']}) has {n} boxes, more than "
                             f"config.data.max_boxes={self.max_boxes}")
        padded = np.zeros((self.max_boxes, 4), np.float32)
        padded[:n] = transforms.boxes_to_cxcywh(boxes, w, h)
        padded_labels = np.zeros(self.max_boxes, np.int32)
        padded_labels[:n] = labels
        return {"image": transforms.normalize(img, self.mean, self.std), "boxes": padded,
                "labels": padded_labels, "box_valid": np.arange(self.max_boxes) < n,
                "image_id": np.int64(r["image_id"]),
                "orig_size": np.array(r["image"].shape[:2], np.int32), "size": np.array([h, w], np.int32)}


class PadToCanvas:
    """grain batch_fn: pads each image (bottom/right, zeros) to the smallest canvas that
    holds every image of the batch and adds `pixel_mask` (True = image); other keys stack."""

    def __init__(self, canvases: Sequence[Sequence[int]]):
        self.canvases = sorted((tuple(int(v) for v in c) for c in canvases), key=lambda c: (c[0] * c[1], c))

    def canvas(self, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
        if not self.canvases:
            return h, w
        for c in self.canvases:
            if c[0] >= h and c[1] >= w:
                return c
        raise ConfigError(f"a batch of images up to {h}x{w} (h x w) fits none of config.data.canvases="
                         f"{self.canvases}; add a canvas at least that large")

    def __call__(self, elements: Sequence[Mapping]) -> dict:
        sizes = [e["image"].shape[:2] for e in elements]
        ch, cw = self.canvas(sizes)
        image = np.zeros((len(elements), ch, cw, 3), np.float32)
        pixel_mask = np.zeros((len(elements), ch, cw), bool)
        for k, (e, (h, w)) in enumerate(zip(elements, sizes)):
            image[k, :h, :w] = e["image"]
            pixel_mask[k, :h, :w] = True
        batch = {key: np.stack([np.asarray(e[key]) for e in elements]) for key in elements[0] if key != "image"}
        batch.update(image=image, pixel_mask=pixel_mask)
        return batch


# ====================================================================== pipelines
def source(config, split: str):
    d = config.data
    src = sources.data_source(d.name, split, d.data_dir, d.builder)
    check_categories(src, int(config.model.num_classes))
    return src


def _batch_fn(config, process_count: int) -> PadToCanvas:
    canvases = list(config.data.canvases)
    if process_count > 1 and len(canvases) != 1:
        raise ConfigError(f"with {process_count} processes config.data.canvases must list exactly one canvas "
                         f"(got {canvases}): each process pads its own rows, and all must agree on the shape")
    return PadToCanvas(canvases)


def train_dataset(config, split: str, process_index: int, process_count: int, batch_size: int | None = None):
    """Endless augmented grain stream of this process's rows of global batches of
    `batch_size` (default config.batch_size) padded to config.data.canvases."""
    d = config.data
    return pipeline.train_dataset(
        source(config, split), Element(d, config.model.num_classes, train=True),
        int(batch_size or config.batch_size), int(config.seed), process_index, process_count,
        d.num_threads, d.prefetch, batch_fn=_batch_fn(config, process_count))


def eval_dataset(config, split: str, process_index: int, process_count: int, batch_size: int | None = None):
    """One pass over the split (rows padded with `mask = 0` copies to whole batches of
    `batch_size`, default config.eval_batch_size)."""
    d = config.data
    element = Element(d, config.model.num_classes, train=False)
    return pipeline.eval_dataset(
        source(config, split), element, int(batch_size or config.eval_batch_size), process_index,
        process_count, d.num_threads, d.prefetch, batch_fn=_batch_fn(config, process_count))


# ====================================================================== ground truth
def coco_ground_truth(source, num_threads: int = 8) -> dict:
    """COCO-format ground truth of a split for pycocotools (`COCO(); .dataset = gt;
    .createIndex()`): every image with its original size, every annotation including
    crowds (iscrowd=1, which COCOeval ignores when matched), raw category ids; boxes
    are the records' (clipped) boxes in xywh pixels, rounded to 1e-3 px (COCO's json has
    two decimals; the stored normalised float32 boxes are off by ~1e-5 px)."""
    def one(i):
        r = read_record(source[i])
        return r, r["image"].shape[:2]

    images, annotations, seen = [], [], set()
    with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
        for r, (h, w) in pool.map(one, range(len(source))):
            images.append({"id": r["image_id"], "width": int(w), "height": int(h), "file_name": r["filename"]})
            for b, label, crowd, area in zip(r["boxes"], r["labels"], r["is_crowd"], r["area"]):
                x0, y0, x1, y1 = (float(v) for v in b)
                xywh = [round(v, 3) for v in (x0, y0, x1 - x0, y1 - y0)]   # undo float32 noise
                annotations.append({"id": len(annotations) + 1, "image_id": r["image_id"],
                                    "category_id": int(label), "bbox": xywh,
                                    "area": float(area), "iscrowd": int(crowd)})
                seen.add(int(label))
    categories = source_categories(source) or [{"id": c, "name": str(c)} for c in sorted(seen)]
    return {"images": images, "annotations": annotations, "categories": categories}
