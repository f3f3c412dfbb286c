"""Calibrated multi-view data for MvP: tfds builders over the CMU Panoptic file layout (the
VoxelPose layout that sail-sg/mvp lib/dataset/panoptic.py reads), the synthetic stand-in
written in that same layout, one record reader, the official input construction, and grain
pipelines.

Sources (config.data.name, config.data.builder = "mvp.data"):
- `mvp_panoptic`: manual_dir = the panoptic-toolbox `data` folder: for every sequence SEQ,
  `SEQ/calibration_SEQ.json` ({"cameras": [{panel, node, K, distCoef, R, t (cm)}]}),
  `SEQ/hdPose3d_stage1_coco19/body3DScene_XXXXXXXX.json` ({"bodies": [{id, joints19}]}) and
  `SEQ/hdImgs/00_NN/00_NN_XXXXXXXX.jpg`. The builder config holds the official sequence
  lists (train: 9 sequences, every 3rd frame; validation: 4, every 12th) and the HD cameras
  (0,12), (0,6), (0,23), (0,13), (0,3) in that order, truncated to the view count.
- `mvp_synthetic` (`/small` for tests): the stand-in of mvp/synthetic.py, generated as real
  Panoptic-format files (calibration json, joints19 json, JPEG views) and read by the same
  generator, so the real loader is tested end to end.

Loader rules (panoptic.py `_get_db`): the first 15 of joints19; visibility conf > 0.1; a body
whose mid-hip (root, joint 2) is invisible is skipped (documented rule, as the official); a
frame without bodies is skipped; (x, y, z) -> (x, z, -y), x 10 -> mm; camera R' = R M,
T = -R'^T t x 10 (the centre), k = distCoef[0, 1, 4], p = distCoef[2, 3]. Joints behind a
camera are kept (the official has no z > 0 check; mvp.cameras.project mirrors them). Bad
input raises an error naming the file: a calibration file missing one of the cameras, a view
image that is absent, more persons than `max_people`. tfds writes into a temporary
directory and renames it when done, so a failed build loses nothing already prepared.

Batches (`Element`): images [B, V, IH, IW, 3] float32 (BGR->RGB, the affine crop of
`get_affine_transform(center, get_scale(...))` by cv2.warpAffine, /255, ImageNet mean/std),
the camera meta of mvp.cameras.stack_meta [B, V, ...], joints_3d [B, P, J, 3] mm,
joints_3d_vis [B, P, J], person_valid [B, P] (P = max_people, zero padded), frame [B]; eval
batches add `mask`.
"""
import dataclasses
import glob
import json
import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from common.data import pipeline, sources
from mvp import cameras, synthetic

TRAIN_SEQUENCES = ("160422_ultimatum1", "160224_haggling1", "160226_haggling1", "161202_haggling1",
                   "160906_ian1", "160906_ian2", "160906_ian3", "160906_band1", "160906_band2")
VAL_SEQUENCES = ("160906_pizza1", "160422_haggling1", "160906_ian5", "160906_band4")
HD_CAMERAS = ((0, 12), (0, 6), (0, 23), (0, 13), (0, 3))
M = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
ROOT = 2
NUM_JOINTS = 15
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


# ====================================================================== the Panoptic layout
def read_calibration(path: str, cam_list) -> list[dict]:
    """The cameras of `cam_list` (in that order) in mvp.cameras' layout (float64)."""
    with open(path) as f:
        calib = json.load(f)
    found = {(c["panel"], c["node"]): c for c in calib.get("cameras", [])}
    missing = [pn for pn in cam_list if tuple(pn) not in found]
    if missing:
        raise ValueError(f"{path}: no camera (panel, node) {missing} (it has {len(found)} cameras); "
                         f"each of {list(cam_list)} is needed")
    out = []
    for pn in cam_list:
        c = found[tuple(pn)]
        K, d = np.asarray(c["K"], np.float64), np.asarray(c["distCoef"], np.float64).reshape(-1)
        R = np.asarray(c["R"], np.float64) @ M
        t = np.asarray(c["t"], np.float64).reshape(3, 1)
        out.append({"R": R, "T": (-R.T @ t * 10.0).reshape(3), "f": np.array([K[0, 0], K[1, 1]]),
                    "c": np.array([K[0, 2], K[1, 2]]), "k": d[[0, 1, 4]], "p": d[[2, 3]]})
    return out


def read_bodies(path: str, max_people: int):
    """(joints [P, 15, 3] mm, visibility [P, 15]) of one hdPose3d json; bodies without a
    visible root are skipped."""
    with open(path) as f:
        bodies = json.load(f)["bodies"]
    joints, vis = [], []
    for body in bodies:
        pose = np.asarray(body["joints19"], np.float64).reshape(-1, 4)[:NUM_JOINTS]
        v = pose[:, 3] > 0.1
        if not v[ROOT]:
            continue
        joints.append(pose[:, :3] @ M * 10.0)
        vis.append(v.astype(np.float32))
    if len(joints) > max_people:
        raise ValueError(f"{path}: {len(joints)} persons, more than max_people={max_people}")
    return np.asarray(joints, np.float64).reshape(-1, NUM_JOINTS, 3), np.asarray(vis, np.float32).reshape(-1, NUM_JOINTS)


def panoptic_frames(root: str, sequences: Sequence[str], interval: int, cam_list, max_people: int = 10):
    """Yields (key, record) for every kept frame of the sequences (official order)."""
    for seq in sequences:
        calib = os.path.join(root, seq, f"calibration_{seq}.json")
        if not os.path.isfile(calib):
            raise FileNotFoundError(f"{calib}: calibration file of sequence {seq} not found under {root}")
        cams = read_calibration(calib, cam_list)
        files = sorted(glob.glob(os.path.join(root, seq, "hdPose3d_stage1_coco19", "*.json")))
        if not files:
            raise FileNotFoundError(f"{os.path.join(root, seq, 'hdPose3d_stage1_coco19')}: no body3DScene json")
        for i, file in enumerate(files):
            if i % interval:
                continue
            joints, vis = read_bodies(file, max_people)
            if not len(joints):
                continue
            postfix = os.path.basename(file).replace("body3DScene", "").replace(".json", ".jpg")
            images = []
            for panel, node in cam_list:
                prefix = f"{panel:02d}_{node:02d}"
                image = os.path.join(root, seq, "hdImgs", prefix, prefix + postfix)
                if not os.path.isfile(image):
                    raise FileNotFoundError(f"{image}: view {prefix} of frame {file} is absent")
                with open(image, "rb") as f:
                    images.append(f.read())
            key = f"{seq}_{postfix[1:-4]}"
            yield key, {"key": key, "images": images, "joints_3d": joints, "joints_3d_vis": vis,
                        "cameras": {k: np.stack([c[k] for c in cams]) for k in cameras.CAMERA_KEYS}}


def write_panoptic_sequence(root: str, seq: str, cams, frames, cam_list=HD_CAMERAS, start: int = 0) -> None:
    """Write frames [(images [V, H, W, 3] RGB uint8, poses [P, 15, 3] mm, vis [P, 15])] of a
    camera rig in the Panoptic layout: (x, y, z)_pan = (X, -Z, Y) / 10 cm, joints19 with the
    four face joints copied from the nose, conf = vis; R_pan = R M^T, t_pan = -R C / 10,
    distCoef = [k1, k2, p1, p2, k3]."""
    import cv2
    os.makedirs(os.path.join(root, seq, "hdPose3d_stage1_coco19"), exist_ok=True)
    calib = []
    for (panel, node), c in zip(cam_list, cams):
        K = [[c["f"][0], 0.0, c["c"][0]], [0.0, c["f"][1], c["c"][1]], [0.0, 0.0, 1.0]]
        R = np.asarray(c["R"]) @ M.T
        calib.append({"panel": panel, "node": node, "name": f"{panel:02d}_{node:02d}", "K": K,
                      "distCoef": [c["k"][0], c["k"][1], c["p"][0], c["p"][1], c["k"][2]],
                      "R": R.tolist(), "t": (-np.asarray(c["R"]) @ np.asarray(c["T"]) / 10.0).reshape(3, 1).tolist()})
    with open(os.path.join(root, seq, f"calibration_{seq}.json"), "w") as f:
        json.dump({"cameras": calib}, f)
    for i, (images, poses, vis) in enumerate(frames):
        n = start + i
        bodies = []
        for pid, (pose, v) in enumerate(zip(poses, vis)):
            pan = np.stack([pose[:, 0], -pose[:, 2], pose[:, 1]], -1) / 10.0
            j19 = np.concatenate([pan, v[:, None]], -1)
            j19 = np.concatenate([j19, np.repeat(j19[1:2], 4, 0)], 0)        # face joints = the nose
            bodies.append({"id": pid, "joints19": j19.reshape(-1).tolist()})
        with open(os.path.join(root, seq, "hdPose3d_stage1_coco19", f"body3DScene_{n:08d}.json"), "w") as f:
            json.dump({"version": 0.7, "univTime": float(n), "fpsType": "hd_29_97", "bodies": bodies}, f)
        for (panel, node), image in zip(cam_list, images):
            d = os.path.join(root, seq, "hdImgs", f"{panel:02d}_{node:02d}")
            os.makedirs(d, exist_ok=True)
            cv2.imwrite(os.path.join(d, f"{panel:02d}_{node:02d}_{n:08d}.jpg"), image[:, :, ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95])


# ====================================================================== tfds builders
@dataclasses.dataclass
class PanopticConfig(tfds.core.BuilderConfig):
    train_sequences: tuple = TRAIN_SEQUENCES
    val_sequences: tuple = VAL_SEQUENCES
    train_interval: int = 3
    val_interval: int = 12
    num_views: int = 5
    max_people: int = 10


class MvpPanoptic(tfds.core.GeneratorBasedBuilder):
    """CMU Panoptic in the VoxelPose layout (manual_dir), as sail-sg/mvp reads it."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir is the panoptic-toolbox data folder: SEQ/calibration_SEQ.json, "
        "SEQ/hdPose3d_stage1_coco19/body3DScene_*.json and SEQ/hdImgs/00_NN/00_NN_*.jpg for the official "
        "train sequences (160422_ultimatum1, 160224_haggling1, 160226_haggling1, 161202_haggling1, "
        "160906_ian1..3, 160906_band1..2) and validation sequences (160906_pizza1, 160422_haggling1, "
        "160906_ian5, 160906_band4).")
    BUILDER_CONFIGS = [PanopticConfig(name="cam5", description="5 HD views (0,12) (0,6) (0,23) (0,13) (0,3)"),
                       PanopticConfig(name="cam3", description="the first 3 HD views", num_views=3)]

    def _info(self):
        v = self.builder_config.num_views
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "key": tfds.features.Text(),
                "images": tfds.features.Sequence(tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                                                 length=v),
                "joints_3d": tfds.features.Tensor(shape=(None, NUM_JOINTS, 3), dtype=np.float64),
                "joints_3d_vis": tfds.features.Tensor(shape=(None, NUM_JOINTS), dtype=np.float32),
                "cameras": tfds.features.FeaturesDict({
                    "R": tfds.features.Tensor(shape=(v, 3, 3), dtype=np.float64),
                    "T": tfds.features.Tensor(shape=(v, 3), dtype=np.float64),
                    "f": tfds.features.Tensor(shape=(v, 2), dtype=np.float64),
                    "c": tfds.features.Tensor(shape=(v, 2), dtype=np.float64),
                    "k": tfds.features.Tensor(shape=(v, 3), dtype=np.float64),
                    "p": tfds.features.Tensor(shape=(v, 2), dtype=np.float64)}),
            }))

    def _root(self, dl_manager) -> str:
        return sources.manual_root(dl_manager, self.MANUAL_DOWNLOAD_INSTRUCTIONS)

    def _split_generators(self, dl_manager):
        root, c = self._root(dl_manager), self.builder_config
        cams = HD_CAMERAS[:c.num_views]
        # every calibration / body file is checked before anything is written
        for seq in tuple(c.train_sequences) + tuple(c.val_sequences):
            read_calibration(os.path.join(root, seq, f"calibration_{seq}.json"), cams)
        return {"train": panoptic_frames(root, c.train_sequences, c.train_interval, cams, c.max_people),
                "validation": panoptic_frames(root, c.val_sequences, c.val_interval, cams, c.max_people)}

    def _generate_examples(self, *args):      # the generators come from _split_generators
        raise NotImplementedError


@dataclasses.dataclass
class SyntheticConfig(PanopticConfig):
    train_frames: int = 16                   # per train sequence
    val_frames: int = 8


class MvpSynthetic(MvpPanoptic):
    """The synthetic calibrated stand-in (mvp/synthetic.py), written as a Panoptic-format folder
    (two train rigs, one distorted and one not, and a distorted validation rig; every frame
    kept) and read by the Panoptic generator."""
    VERSION = tfds.core.Version("1.0.0")
    PREPARES_ITSELF = True
    MANUAL_DOWNLOAD_INSTRUCTIONS = None
    BUILDER_CONFIGS = [
        SyntheticConfig(name="default", description="3 views; 2 x 160 train, 48 validation frames",
                        train_sequences=("synth_rig0", "synth_rig1"), val_sequences=("synth_val",),
                        train_interval=1, val_interval=1, num_views=3, train_frames=160, val_frames=48),
        SyntheticConfig(name="small", description="3 views; 2 x 8 train, 8 validation frames (tests)",
                        train_sequences=("synth_rig0", "synth_rig1"), val_sequences=("synth_val",),
                        train_interval=1, val_interval=1, num_views=3, train_frames=8, val_frames=8),
    ]

    def _root(self, dl_manager):
        c = self.builder_config
        root = os.path.join(os.fspath(dl_manager.download_dir), f"mvp_synthetic_{c.name}")
        write_standin(root, c)
        return root


def write_standin(root: str, c: SyntheticConfig, seed: int = 0) -> None:
    """Deterministic: rig r of the train sequences uses seed (seed, r); distortion on rigs 0
    and validation, off on rig 1."""
    seqs = [(s, c.train_frames, i != 1) for i, s in enumerate(c.train_sequences)]
    seqs += [(s, c.val_frames, True) for s in c.val_sequences]
    for r, (seq, n, distortion) in enumerate(seqs):
        rng = np.random.default_rng([seed, r])
        cams = synthetic.ring_cameras(rng, c.num_views, synthetic.IMAGE_WH, distortion=distortion)
        frames = [synthetic.frame(rng, cams, hide_joint=(i % 5 == 4)) for i in range(n)]
        write_panoptic_sequence(root, seq, cams, frames, HD_CAMERAS[:c.num_views])


# ====================================================================== records -> elements
def decode(image) -> np.ndarray:
    """An RGB uint8 view from the record (encoded JPEG bytes as cv2.imread + BGR->RGB, or an array)."""
    import cv2
    if isinstance(image, (bytes, np.bytes_)):
        bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("a view image does not decode")
        return bgr[:, :, ::-1]
    return np.asarray(image)[:, :, :3]


class Element:
    """One record -> the model's inputs and targets (JointsDataset.__getitem__, no augmentation)."""

    def __init__(self, image_size, max_people: int = 10):
        self.image_size, self.max_people = tuple(int(s) for s in image_size), int(max_people)

    def __call__(self, record: Mapping, rng=None) -> dict:
        import cv2
        views = [decode(im) for im in record["images"]]
        h, w = views[0].shape[:2]
        cams = [{k: np.asarray(record["cameras"][k])[v] for k in cameras.CAMERA_KEYS} for v in range(len(views))]
        meta = cameras.stack_meta(cams, (w, h), self.image_size)
        iw, ih = self.image_size
        images = np.stack([cv2.warpAffine(np.ascontiguousarray(im), meta["affine"][v, :2].astype(np.float64), (iw, ih),
                                          flags=cv2.INTER_LINEAR) for v, im in enumerate(views)])
        images = (images.astype(np.float32) / 255.0 - MEAN) / STD
        joints = np.asarray(record["joints_3d"], np.float64).reshape(-1, NUM_JOINTS, 3)
        vis = np.asarray(record["joints_3d_vis"], np.float32).reshape(-1, NUM_JOINTS)
        n, p = len(joints), self.max_people
        j3d = np.zeros((p, NUM_JOINTS, 3), np.float32)
        v3d = np.zeros((p, NUM_JOINTS), np.float32)
        j3d[:n], v3d[:n] = joints, vis
        return {"images": images, **meta, "joints_3d": j3d, "joints_3d_vis": v3d,
                "person_valid": np.arange(p) < n}


def source(config, split: str):
    d = config.data
    return sources.data_source(d.name, split, d.data_dir, d.builder)


def train_dataset(config, split: str, process_index: int, process_count: int, batch_size: int | None = None):
    d = config.data
    return pipeline.train_dataset(source(config, split), Element(d.image_size, d.max_people),
                                  int(batch_size or config.batch_size), int(config.seed), process_index,
                                  process_count, d.num_threads, d.prefetch)


def eval_dataset(config, split: str, process_index: int, process_count: int, batch_size: int | None = None):
    d = config.data
    element = Element(d.image_size, d.max_people)
    return pipeline.eval_dataset(source(config, split), lambda r: element(r), int(batch_size or config.eval_batch_size),
                                 process_index, process_count, d.num_threads, d.prefetch)
