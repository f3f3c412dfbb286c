"""pnp_detr data: augmentation box transforms, canvases, the COCO-format builders, the
record reader, bad-input errors, and pycocotools on the generated stand-in."""
import io
import json
import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from common.data import sources
from common.errors import ConfigError, DataError
from pnp_detr import data, synthetic_shapes, transforms
from tests.conftest import require

BUILDER = "pnp_detr.data"


def _config(data_dir, **data_overrides):
    d = dict(name="synthetic_shapes/small", builder=BUILDER, data_dir=str(data_dir), train_split="train",
             eval_split="validation", num_threads=1, prefetch=1, scales=[96, 112, 128], max_size=192,
             crop_scales=[96, 128], crop_size=[64, 128], eval_size=128,
             canvases=[[128, 192], [192, 128], [192, 192]], max_boxes=8)
    d.update(data_overrides)
    return ml_collections.ConfigDict(dict(batch_size=4, eval_batch_size=3, seed=0,
                                          model=dict(num_classes=19), data=d))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    sources.prepare("synthetic_shapes/small", str(d), builder=BUILDER)
    return d


# ---------------------------------------------------------------------- transforms
def test_resize_rule():
    # (w, h, size, max_size) -> (h, w), detr datasets/transforms.py get_size_with_aspect_ratio
    assert transforms.resized_size(640, 480, 800, 1333) == (800, 1066)
    assert transforms.resized_size(480, 640, 800, 1333) == (1066, 800)
    assert transforms.resized_size(2000, 500, 800, 1333) == (333, 1332)   # int(333 * 2000 / 500)
    assert transforms.resized_size(500, 2000, 800, 1333) == (1332, 333)
    assert transforms.resized_size(640, 800, 800, None) == (1000, 800)
    assert transforms.resized_size(640, 480, 480, 1333) == (480, 640)      # already that size


def _box_of(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_augmentation_keeps_boxes_on_objects():
    """Each box is painted into its own channel; after flip / resize / crop the boxes
    still frame the painted pixels, and the dropped boxes' pixels left the crop."""
    boxes = np.array([[5, 10, 40, 50], [60, 0, 119, 30], [30, 55, 90, 89]], np.float32)
    canvas = np.zeros((90, 120, 3), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        canvas[y0:y1, x0:x1, k] = 255
    tf = transforms.TrainTransform([64, 80, 96], 128, crop_scales=[72, 96], crop_size=[40, 90])
    flips = crops = 0
    for seed in range(40):
        img, out, labels = tf(Image.fromarray(canvas), boxes.copy(), np.arange(3), np.random.default_rng(seed))
        x = np.asarray(img)
        assert min(img.size) in (64, 80, 96) and max(img.size) <= 128
        assert len(out) == len(labels)
        crops += len(labels) < 3
        for b, k in zip(out, labels):
            if min(b[2] - b[0], b[3] - b[1]) < 2:
                continue
            np.testing.assert_allclose(_box_of(x[:, :, k] > 127), b, atol=1.5)
            flips += b[0] > 60 and k == 0            # object 0 sits on the left unless flipped
        for k in set(range(3)) - set(labels.tolist()):
            assert x[:, :, k].max() < 128            # a dropped box: its object is outside the crop
    assert flips and crops


def test_crop_and_flip_exact():
    boxes = np.array([[10, 10, 30, 20], [50, 5, 60, 15]], np.float32)
    img = Image.new("RGB", (100, 40))
    _, flipped = transforms.hflip(img, boxes)
    np.testing.assert_array_equal(flipped, [[70, 10, 90, 20], [40, 5, 50, 15]])
    cropped, b, labels = transforms.crop(img, boxes, np.array([1, 2]), (8, 20, 20, 25))   # top, left, h, w
    assert cropped.size == (25, 20)
    np.testing.assert_array_equal(b, [[0, 2, 10, 12]])
    np.testing.assert_array_equal(labels, [1])
    np.testing.assert_allclose(transforms.boxes_to_cxcywh(b, 25, 20), [[0.2, 0.35, 0.4, 0.5]])


# ---------------------------------------------------------------------- canvases
def test_pad_to_canvas():
    pad = data.PadToCanvas([[64, 64], [32, 64], [64, 32]])
    els = [{"image": np.ones((30, 50, 3), np.float32), "image_id": np.int64(1)},
           {"image": np.ones((20, 60, 3), np.float32), "image_id": np.int64(2)}]
    b = pad(els)
    assert b["image"].shape == (2, 32, 64, 3) and b["pixel_mask"].shape == (2, 32, 64)
    assert b["pixel_mask"][0].sum() == 30 * 50 and b["pixel_mask"][0, :30, :50].all()
    assert b["image"][1, 20:].sum() == 0 and b["image"][1, :20, :60].min() == 1
    np.testing.assert_array_equal(b["image_id"], [1, 2])
    assert pad([{"image": np.ones((40, 20, 3))}])["image"].shape == (1, 64, 32, 3)
    assert pad([{"image": np.ones((40, 20, 3))}, els[0]])["image"].shape == (2, 64, 64, 3)
    with pytest.raises(ConfigError, match="fits none of config.data.canvases"):
        pad([{"image": np.ones((65, 10, 3))}])
    assert data.PadToCanvas([])(els)["image"].shape == (2, 30, 60, 3)       # the batch maximum
    with pytest.raises(ConfigError, match="exactly one canvas"):
        data._batch_fn(_config("/tmp"), process_count=2)


# ---------------------------------------------------------------------- builders and records
def test_stand_in_reads_back_what_it_wrote(data_dir):
    root = os.path.join(data_dir, "downloads", "synthetic_shapes_small")
    for split, name in (("train", "train"), ("validation", "val")):
        src = sources.data_source("synthetic_shapes/small", split, str(data_dir), BUILDER)
        with open(os.path.join(root, "annotations", f"instances_{name}.json")) as f:
            js = json.load(f)
        assert len(src) == len(js["images"]) == data.SyntheticShapes.SIZES["small"][name]
        anns = {}
        for a in js["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        for i in range(len(src)):
            r = data.read_record(src[i])
            im = next(m for m in js["images"] if m["id"] == r["image_id"])
            np.testing.assert_array_equal(r["image"], np.asarray(Image.open(os.path.join(root, "images",
                                                                                         im["file_name"]))))
            want = sorted(anns.get(r["image_id"], []), key=lambda a: a["id"])
            np.testing.assert_array_equal(r["labels"], [a["category_id"] for a in want])
            np.testing.assert_array_equal(r["is_crowd"], [bool(a["iscrowd"]) for a in want])
            xywh = np.array([a["bbox"] for a in want], np.float32).reshape(-1, 4)
            np.testing.assert_allclose(r["boxes"], np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1),
                                       atol=1e-3)
        assert data.source_categories(src) == [{"id": c["id"], "name": c["name"]} for c in js["categories"]]
    assert set(np.unique([a["category_id"] for a in js["annotations"]])) == {1, 3, 18}


def test_coco_2017_records_map_labels_to_raw_ids():
    record = {"image": np.zeros((40, 50), np.uint8), "image/id": 7, "image/filename": b"x.jpg",
              "objects": {"bbox": [np.array([0.1, 0.2, 0.5, 0.6], np.float32)] * 3, "label": [0, 11, 79],
                          "is_crowd": [False, True, False], "area": [3, 4, 5], "id": [1, 2, 3]}}
    r = data.read_record(record)
    np.testing.assert_array_equal(r["labels"], [1, 13, 90])
    assert r["image"].shape == (40, 50, 3)                     # grey -> RGB
    np.testing.assert_allclose(r["boxes"][0], [10, 4, 30, 20])   # [ymin xmin ymax xmax] -> xyxy px
    assert len(data.COCO_2017_IDS) == 80 and data.COCO_2017_IDS.max() == 90
    el = data.Element(_config("/tmp").data, num_classes=91, train=False)(record)
    assert el["box_valid"].sum() == 2                           # the crowd is not a target
    np.testing.assert_array_equal(el["labels"][:2], [1, 90])
    np.testing.assert_array_equal(el["orig_size"], [40, 50])


def test_pipelines(data_dir):
    cfg = _config(data_dir)
    a, b = next(iter(data.train_dataset(cfg, "train", 0, 1))), next(iter(data.train_dataset(cfg, "train", 0, 1)))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])               # deterministic
    assert a["image"].shape[1:3] in [(128, 192), (192, 128), (192, 192)]
    assert a["image"].dtype == np.float32 and a["pixel_mask"].dtype == bool
    for k, h, w in zip(range(4), *a["size"].T):
        assert a["pixel_mask"][k].sum() == h * w and 96 <= min(h, w) <= 128 and max(h, w) <= 192
    v = a["box_valid"]
    assert v.dtype == bool and a["boxes"].shape == (4, 8, 4) and a["labels"].dtype == np.int32
    assert set(a["labels"][v].tolist()) <= {1, 3, 18} and np.all(a["labels"][~v] == 0)
    assert np.all((a["boxes"][v] >= 0) & (a["boxes"][v] <= 1))
    batches = list(data.eval_dataset(cfg, "validation", 0, 1))
    n = data.SyntheticShapes.SIZES["small"]["val"]
    assert sum(int(b["mask"].sum()) for b in batches) == n and len(batches) == -(-n // 3)
    for b in batches:
        assert np.all(b["size"].min(1) <= 128) and b["orig_size"].dtype == np.int32


def test_pycocotools_gives_ap_1_on_ground_truth(data_dir):
    coco_mod = require("pycocotools.coco")
    COCOeval = require("pycocotools.cocoeval").COCOeval
    src = sources.data_source("synthetic_shapes/small", "validation", str(data_dir), BUILDER)
    gt = data.coco_ground_truth(src)
    assert sum(a["iscrowd"] for a in gt["annotations"]) == 1
    assert len(gt["images"]) == len(src) and {c["id"] for c in gt["categories"]} == {1, 3, 18}
    coco = coco_mod.COCO()
    coco.dataset = gt
    coco.createIndex()
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt["annotations"] if not a["iscrowd"]]
    ev = COCOeval(coco, coco.loadRes(dets), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


# ---------------------------------------------------------------------- bad input
def _folder(tmp_path, n_train=3, n_val=2):
    root = str(tmp_path / "coco")
    synthetic_shapes.write_coco_folder(root, "train", n_train)
    synthetic_shapes.write_coco_folder(root, "val", n_val)
    return root


def _edit(root, split, fn):
    path = os.path.join(root, "annotations", f"instances_{split}.json")
    with open(path) as f:
        js = json.load(f)
    fn(js)
    with open(path, "w") as f:
        json.dump(js, f)
    return path


def _build(root, data_dir):
    sources.prepare("coco_format", str(data_dir), manual_dir=root, builder=BUILDER)


def test_coco_format_folder_builds(tmp_path):
    root = _folder(tmp_path)
    _build(root, tmp_path / "tfds")
    src = sources.data_source("coco_format", "validation", str(tmp_path / "tfds"), BUILDER)
    assert len(src) == 2 and data.source_categories(src)[2] == {"id": 18, "name": "triangle"}


@pytest.mark.parametrize("case", ["not_coco", "box_outside", "bad_image", "wrong_size", "unknown_category"])
def test_bad_input_names_file_and_record(tmp_path, case):
    root = _folder(tmp_path)
    data_dir = tmp_path / "tfds"
    sources.prepare("synthetic_shapes/small", str(data_dir), builder=BUILDER)   # already there: kept
    if case == "not_coco":
        path = _edit(root, "val", lambda js: js.pop("categories"))
        want = [path, "not COCO format"]
    elif case == "box_outside":
        def push(js):
            a = js["annotations"][0]
            im = next(m for m in js["images"] if m["id"] == a["image_id"])
            a["bbox"][0] = im["width"] - a["bbox"][2] + 5
        path = _edit(root, "train", push)
        want = [path, "annotations[0]", "outside the image"]
    elif case == "bad_image":
        with open(os.path.join(root, "images", "val_000001.png"), "wb") as f:
            f.write(b"not a png")
        want = ["val_000001.png", "instances_val.json", "fails to decode"]
    elif case == "wrong_size":
        path = _edit(root, "val", lambda js: js["images"][1].update(width=js["images"][1]["width"] + 1))
        want = ["val_000001.png", "but the annotations say"]
    else:
        def unknown(js):
            js["annotations"][2]["category_id"] = 99
        path = _edit(root, "train", unknown)
        want = [path, "annotations[2]", "category_id 99"]
    with pytest.raises(DataError) as e:             # one line from the command-line programs
        _build(root, data_dir)
    for w in want:
        assert w in str(e.value), (w, str(e.value))
    assert not tfds.builder("coco_format", data_dir=str(data_dir)).is_prepared()
    assert len(sources.data_source("synthetic_shapes/small", "train", str(data_dir), BUILDER)) == 16


def test_category_the_head_cannot_hold(data_dir):
    cfg = _config(data_dir)
    cfg.model.num_classes = 18                # ids 0..17: 18 does not fit
    with pytest.raises(ConfigError, match=r"category 18 \('triangle'\).*num_classes=18"):
        data.train_dataset(cfg, "train", 0, 1)
    record = {"image": np.zeros((40, 50, 3), np.uint8), "image/id": 5, "image/filename": b"five.png",
              "objects": {"bbox": [np.array([0.1, 0.2, 0.5, 0.6], np.float32)], "category_id": [95],
                          "label": [0], "is_crowd": [False], "area": [3.0], "id": [1]}}
    with pytest.raises(ConfigError, match=r"image 5 \(five.png\): category id 95"):
        data.Element(cfg.data, num_classes=91, train=False)(record)


class Coco2017Layout(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Records with exactly tfds coco/2017's features (80-way ClassLabel, integer area)."""
    VERSION = tfds.core.Version("1.1.0")        # tfds object_detection/coco.py, config 2017

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(encoding_format="jpeg"),
            "image/filename": tfds.features.Text(),
            "image/id": np.int64,
            "objects": tfds.features.Sequence({
                "id": np.int64, "area": np.int64, "bbox": tfds.features.BBoxFeature(),
                "label": tfds.features.ClassLabel(num_classes=80), "is_crowd": np.bool_})}))

    def _split_generators(self, dl_manager):
        return {"validation": self._generate_examples()}

    def _generate_examples(self):
        buf = io.BytesIO()
        Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(buf, format="JPEG")
        for i, labels in enumerate([[0, 11, 79], []]):
            yield i, {"image": buf.getvalue(), "image/filename": f"{i}.jpg", "image/id": 10 + i,
                      "objects": [{"id": k, "area": 12, "bbox": tfds.features.BBox(0.1, 0.2, 0.5, 0.6),
                                   "label": label, "is_crowd": k == 1} for k, label in enumerate(labels)]}


def test_tfds_coco_2017_layout_reads_raw_ids(tmp_path):
    """A prepared coco/2017 directory is read (without TensorFlow, from its files) and its
    labels become raw COCO ids; its ground truth keeps the crowd."""
    Coco2017Layout(data_dir=str(tmp_path / "make"), file_format="array_record").download_and_prepare(
        file_format="array_record")
    src_dir = tmp_path / "make" / "coco2017_layout" / "1.1.0"
    dst = tmp_path / "tfds" / "coco" / "2017" / "1.1.0"
    dst.mkdir(parents=True)
    for f in os.listdir(src_dir):
        (dst / f.replace("coco2017_layout", "coco")).write_bytes((src_dir / f).read_bytes())
    info = json.loads((dst / "dataset_info.json").read_text())
    info.update(name="coco", configName="2017", moduleName="tensorflow_datasets.object_detection.coco")
    (dst / "dataset_info.json").write_text(json.dumps(info))
    src = sources.data_source("coco/2017", "validation", str(tmp_path / "tfds"))
    records = sorted((data.read_record(src[i]) for i in range(len(src))), key=lambda r: r["image_id"])
    np.testing.assert_array_equal(records[0]["labels"], [1, 13, 90])
    gt = data.coco_ground_truth(src)
    assert [a["category_id"] for a in gt["annotations"]] == [1, 13, 90]
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1, 0] and len(gt["images"]) == 2
    cfg = _config(tmp_path, name="coco/2017", builder="")
    cfg.model.num_classes = 91
    el = data.Element(cfg.data, 91, train=False)(src[0])
    assert el["box_valid"].sum() in (0, 2)


def test_easy_style_of_the_stand_in():
    """The demo's stand-in: 64-96 px images, 1-3 objects of >= 16 px (image 0 empty)."""
    counts = []
    for i in range(24):
        image, anns = synthetic_shapes.make_image("train", i, "easy")
        h, w = image.shape[:2]
        assert 64 <= h <= 96 and 64 <= w <= 96
        counts.append(len(anns))
        for a in anns:
            x, y, bw, bh = a["bbox"]
            assert a["iscrowd"] == 0 and x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
            assert min(bw, bh) >= 8                 # triangles narrow at the apex, boxes stay >= 16 px wide
    assert counts[0] == 0 and set(counts[1:]) == {1, 2, 3}
    big, _ = synthetic_shapes.make_image("train", 1)
    assert max(big.shape[:2]) > 96                  # the default style is unchanged: 96-192 px
    with pytest.raises(ValueError, match="style"):
        synthetic_shapes.write_coco_folder("/nonexistent", "train", 1, "hard")
