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
- `mvp_synthetic` (`/small` for tests, `/easy` for the demo): the stand-in of mvp/synthetic.py,
  generated as real Panoptic-format files (calibration json, joints19 json, JPEG views) and read
  by the same generator, so the real loader is tested end to end.
- `mvp_shelf` / `mvp_campus`: manual_dir = sail-sg/mvp's data/Shelf or data/CampusSeq1
  (calibration_{shelf,campus}.json, actorsGT.mat, Camera{k}/ PNGs, the VoxelPose pseudo-GT
  pickle under pesudo_gt/; see "the Shelf / Campus layout" below), with the official frame
  ranges; `mvp_actors_synthetic/{shelf,campus}`: the stand-in written in that layout.

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
from common.errors import DataError
from mvp import cameras, synthetic


class BadFile(DataError, ValueError):
    """An official file that is there but holds what the loader cannot use."""


class MissingFile(DataError, FileNotFoundError):
    """An official file that is absent."""

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
        raise BadFile(f"{path}: no camera (panel, node) {missing} (it has {len(found)} cameras); "
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
        raise BadFile(f"{path}: {len(joints)} persons, more than max_people={max_people}")
    return np.asarray(joints, np.float64).reshape(-1, NUM_JOINTS, 3), np.asarray(vis, np.float32).reshape(-1, NUM_JOINTS)


def panoptic_frames(root: str, sequences: Sequence[str], interval: int, cam_list, max_people: int = 10):
    """Yields (key, record) for every kept frame of the sequences (official order)."""
    for seq in sequences:
        calib = os.path.join(root, seq, f"calibration_{seq}.json")
        if not os.path.isfile(calib):
            raise MissingFile(f"{calib}: calibration file of sequence {seq} not found under {root}")
        cams = read_calibration(calib, cam_list)
        files = sorted(glob.glob(os.path.join(root, seq, "hdPose3d_stage1_coco19", "*.json")))
        if not files:
            raise MissingFile(f"{os.path.join(root, seq, 'hdPose3d_stage1_coco19')}: no body3DScene json")
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
                    raise MissingFile(f"{image}: view {prefix} of frame {file} is absent")
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
    # the scene (mvp/synthetic.py); `easy` (the demo) changes them
    people: int = 3                          # 1..people persons a frame
    spread: float = 1500.0                   # roots in |x|, |y| <= spread
    distance: tuple = (3500.0, 4500.0)       # camera ring radius
    radius: int = 3                          # joint discs
    noise: bool = True                       # noise background (else black)


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
        SyntheticConfig(name="easy", description="the demo's scene: 1-2 persons within 0.8 m of the centre, "
                        "cameras at 2.8-3.2 m, black background, radius-5 joints; 2 x 160 train, 48 validation",
                        train_sequences=("synth_rig0", "synth_rig1"), val_sequences=("synth_val",),
                        train_interval=1, val_interval=1, num_views=3, train_frames=160, val_frames=48,
                        people=2, spread=800.0, distance=(2800.0, 3200.0), radius=5, noise=False),
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
        cams = synthetic.ring_cameras(rng, c.num_views, synthetic.IMAGE_WH, distortion=distortion,
                                      distance=tuple(c.distance))
        frames = [synthetic.frame(rng, cams, max_people=c.people, hide_joint=(i % 5 == 4), spread=c.spread,
                                  radius=c.radius, noise=c.noise) for i in range(n)]
        write_panoptic_sequence(root, seq, cams, frames, HD_CAMERAS[:c.num_views])


# ====================================================================== the Shelf / Campus layout
# sail-sg/mvp lib/dataset/shelf.py, campus.py (VoxelPose's layout): ROOT/calibration_{name}.json
# {"0": {R, T (camera centre, mm), fx, fy, cx, cy, k 3x1, p 2x1}, ...}; ROOT/actorsGT.mat, whose
# `actor3D` is a 1 x A cell of F x 1 cells holding 14 x 3 joints in metres or a 1 x 0 empty;
# ROOT/Camera{k}/img_{i:06d}.png (Shelf) or ROOT/Camera{k}/campus4-c{k}-{i:05d}.png (Campus);
# training labels: the VoxelPose pseudo-GT ROOT/pesudo_gt/voxelpose_pesudo_gt_{name}.pickle, a
# dict from the image basename (Shelf: img_{i:06d}.png; Campus: camera 0's) to a list of 14 x 3
# (Campus 14 x 4, the 4th column a confidence that is dropped) poses in mm.
SHELF_JOINTS = ("r-ankle", "r-knee", "r-hip", "l-hip", "l-knee", "l-ankle", "r-wrist", "r-elbow", "r-shoulder",
                "l-shoulder", "l-elbow", "l-wrist", "bottom-head", "top-head")
ACTOR_JOINTS = len(SHELF_JOINTS)
ACTOR_LIMBS = ((0, 1), (1, 2), (3, 4), (4, 5), (2, 3), (6, 7), (7, 8), (9, 10), (10, 11), (2, 8), (3, 9), (8, 12),
               (9, 12), (12, 13))                                  # shelf.py / campus.py LIMBS
ACTOR_DATASETS = {
    # name: (views, image name of (camera, frame), official train ranges, test ranges)
    "shelf": (5, lambda k, i: f"img_{i:06d}.png", ((0, 300), (601, 3200)), ((300, 601),)),
    "campus": (3, lambda k, i: f"campus4-c{k}-{i:05d}.png",
               ((0, 350), (471, 650), (751, 1900), (471, 520), (471, 520), (751, 1200), (751, 1200)),
               ((350, 471), (650, 751))),
}


def read_actor_calibration(path: str, views: int) -> list[dict]:
    """calibration_{shelf,campus}.json -> cameras "0" .. str(views - 1) in mvp.cameras' layout."""
    if not os.path.isfile(path):
        raise MissingFile(f"{path}: calibration file not found")
    with open(path) as f:
        calib = json.load(f)
    missing = [str(k) for k in range(views) if str(k) not in calib]
    if missing:
        raise BadFile(f"{path}: no camera {missing} (it has {sorted(calib)}); cameras 0..{views - 1} are needed")
    out = []
    for k in range(views):
        c = calib[str(k)]
        try:
            out.append({"R": np.asarray(c["R"], np.float64).reshape(3, 3), "T": np.asarray(c["T"], np.float64).reshape(3),
                        "f": np.array([c["fx"], c["fy"]], np.float64).reshape(2),
                        "c": np.array([c["cx"], c["cy"]], np.float64).reshape(2),
                        "k": np.asarray(c["k"], np.float64).reshape(3), "p": np.asarray(c["p"], np.float64).reshape(2)})
        except (KeyError, ValueError) as e:
            raise BadFile(f"{path}: camera {k} lacks R, T, fx, fy, cx, cy, k (3) or p (2): {e}") from None
    return out


def read_actors_gt(path: str):
    """actorsGT.mat -> (joints [A, F, 14, 3] mm, present [A, F]); the official
    `actor_3d[person][i] * 1000`, an entry being present when it holds 14 joints."""
    import scipy.io
    if not os.path.isfile(path):
        raise MissingFile(f"{path}: actorsGT.mat not found")
    mat = scipy.io.loadmat(path)
    if "actor3D" not in mat:
        raise BadFile(f"{path}: no actor3D cell array (it has {sorted(k for k in mat if not k.startswith('__'))})")
    actors = mat["actor3D"][0]
    frames = len(actors[0])
    joints = np.zeros((len(actors), frames, ACTOR_JOINTS, 3))
    present = np.zeros((len(actors), frames), bool)
    for a, cells in enumerate(actors):
        for i in range(frames):
            pose = np.asarray(cells[i][0], np.float64)
            if pose.size == 0:
                continue
            if pose.shape != (ACTOR_JOINTS, 3):
                raise BadFile(f"{path}: actor {a} frame {i} has shape {pose.shape}, not ({ACTOR_JOINTS}, 3) or empty")
            joints[a, i], present[a, i] = pose * 1000.0, True
    return joints, present


def write_actors_gt(path: str, joints, present) -> None:
    """The inverse of read_actors_gt (metres; absent entries as 1 x 0 empties)."""
    import scipy.io
    actors = np.empty((1, len(joints)), object)
    for a in range(len(joints)):
        cells = np.empty((joints.shape[1], 1), object)
        for i in range(joints.shape[1]):
            cells[i, 0] = joints[a, i] / 1000.0 if present[a, i] else np.zeros((1, 0))
        actors[0, a] = cells
    scipy.io.savemat(path, {"actor3D": actors})


def frame_list(ranges) -> list[int]:
    return [i for start, stop in ranges for i in range(start, stop)]


def actor_frames(root: str, name: str, split: str, ranges, views: int, max_people: int = 10,
                 pseudo_gt: str | None = None):
    """Yields (key, record) of every frame of `ranges` (repeats keep their order): the test
    split's persons are the actorsGT actors in actor order (absent ones with visibility 0, so
    PCP knows each actor), the train split's the pseudo-GT poses (`pseudo_gt`, a file under
    ROOT/pesudo_gt; None: actorsGT, a deviation for data without pseudo labels). Campus keeps
    only the train frames the pseudo-GT has, as the official."""
    import pickle
    _, image_name, _, _ = ACTOR_DATASETS[name]
    cams = read_actor_calibration(os.path.join(root, f"calibration_{name}.json"), views)
    gt_path = os.path.join(root, "actorsGT.mat")
    joints, present = read_actors_gt(gt_path)
    labels = None
    if split == "train" and pseudo_gt:
        path = os.path.join(root, "pesudo_gt", pseudo_gt)
        if not os.path.isfile(path):
            raise MissingFile(f"{path}: the VoxelPose pseudo-GT of the training frames is absent (sail-sg/mvp "
                              f"README: data/{{Shelf,CampusSeq1}}/pesudo_gt/); or set the builder's pseudo_gt to ''")
        with open(path, "rb") as f:
            labels = pickle.load(f)
    frames = frame_list(ranges)
    if labels is not None and name == "campus":
        frames = [i for i in frames if image_name(0, i) in labels]
    seen = {}
    camera_arrays = {k: np.stack([c[k] for c in cams]) for k in cameras.CAMERA_KEYS}
    for i in frames:
        if i >= joints.shape[1]:
            raise BadFile(f"{gt_path}: frame {i} is asked for, the file has {joints.shape[1]} frames")
        if labels is not None:
            if image_name(0, i) not in labels:
                raise BadFile(f"{os.path.join(root, 'pesudo_gt', pseudo_gt)}: no entry {image_name(0, i)!r}")
            poses = [np.asarray(p, np.float64) for p in labels[image_name(0, i)]]
            poses = [p[:, :3] for p in poses if p.size and len(p[0]) > 0]
            j3d = np.asarray(poses, np.float64).reshape(-1, ACTOR_JOINTS, 3)
            vis = np.ones(j3d.shape[:2], np.float32)
        else:
            j3d = joints[:, i]
            vis = np.repeat(present[:, i, None], ACTOR_JOINTS, 1).astype(np.float32)
        if len(j3d) > max_people:
            raise BadFile(f"{gt_path}: frame {i} has {len(j3d)} persons, more than max_people={max_people}")
        images = []
        for k in range(views):
            image = os.path.join(root, f"Camera{k}", image_name(k, i))
            if not os.path.isfile(image):
                raise MissingFile(f"{image}: view {k} of frame {i} is absent")
            with open(image, "rb") as f:
                images.append(f.read())
        seen[i] = seen.get(i, -1) + 1
        key = f"{name}_{i:06d}_{seen[i]}"
        yield key, {"key": key, "images": images, "joints_3d": j3d, "joints_3d_vis": vis, "cameras": camera_arrays}


def write_actor_dataset(root: str, name: str, cams, frames, pseudo_gt: str | None = None, drop_label=()) -> None:
    """Write a camera rig and frames [(images [V, H, W, 3] RGB uint8, joints [A, 14, 3] mm,
    present [A])] in the Shelf / Campus layout (frame i = the i-th entry), with the pseudo-GT
    pickle (the present actors plus 10 mm noise; Campus with a confidence column) unless
    `pseudo_gt` is None; frames in `drop_label` get no pseudo-GT entry."""
    import cv2
    import pickle
    _, image_name, _, _ = ACTOR_DATASETS[name]
    os.makedirs(root, exist_ok=True)
    calib = {str(k): {"R": np.asarray(c["R"]).tolist(), "T": np.asarray(c["T"]).reshape(3, 1).tolist(),
                      "fx": float(c["f"][0]), "fy": float(c["f"][1]), "cx": float(c["c"][0]), "cy": float(c["c"][1]),
                      "k": np.asarray(c["k"]).reshape(3, 1).tolist(), "p": np.asarray(c["p"]).reshape(2, 1).tolist()}
             for k, c in enumerate(cams)}
    with open(os.path.join(root, f"calibration_{name}.json"), "w") as f:
        json.dump(calib, f)
    joints = np.stack([j for _, j, _ in frames], 1)
    present = np.stack([p for _, _, p in frames], 1)
    write_actors_gt(os.path.join(root, "actorsGT.mat"), joints, present)
    rng = np.random.default_rng(0)
    labels = {}
    for i, (images, j, p) in enumerate(frames):
        for k, image in enumerate(images):
            os.makedirs(os.path.join(root, f"Camera{k}"), exist_ok=True)
            cv2.imwrite(os.path.join(root, f"Camera{k}", image_name(k, i)), image[:, :, ::-1])
        poses = [j[a] + rng.normal(0, 10.0, j[a].shape) for a in np.flatnonzero(p)]
        if name == "campus":
            poses = [np.concatenate([q, np.ones((ACTOR_JOINTS, 1))], 1) for q in poses]
        if i not in drop_label:
            labels[image_name(0, i)] = poses
    if pseudo_gt:
        os.makedirs(os.path.join(root, "pesudo_gt"), exist_ok=True)
        with open(os.path.join(root, "pesudo_gt", pseudo_gt), "wb") as f:
            pickle.dump(labels, f)


def actor_standin_frames(rng, cams, frames: int, actors: int, origin=(0.0, 0.0, 0.0)):
    """Stand-in frames for write_actor_dataset: 1..3 of the `actors` present per frame (a
    random subset, so actor slots have gaps), the 15-joint skeletons reordered to the 14
    Shelf joints (mvp.model.TO_14_JOINTS), the world shifted by `origin` (cameras too)."""
    from mvp.model import TO_14_JOINTS
    out = []
    for _ in range(frames):
        images, poses, _ = synthetic.frame(rng, cams, max_people=min(3, actors))
        slots = rng.choice(actors, len(poses), replace=False)
        joints = np.zeros((actors, ACTOR_JOINTS, 3))
        present = np.zeros(actors, bool)
        joints[slots] = poses[:, list(TO_14_JOINTS)] + np.asarray(origin)
        present[slots] = True
        out.append((images, joints, present))
    return out, [dict(c, T=np.asarray(c["T"]) + np.asarray(origin)) for c in cams]


@dataclasses.dataclass
class ActorsConfig(tfds.core.BuilderConfig):
    dataset: str = "shelf"
    train_frames: tuple = ()
    test_frames: tuple = ()
    pseudo_gt: str = ""                       # a file under ROOT/pesudo_gt ("" : actorsGT for training)
    max_people: int = 10


class MvpShelf(tfds.core.GeneratorBasedBuilder):
    """Shelf (5 views) in the VoxelPose layout (manual_dir), as sail-sg/mvp lib/dataset/shelf.py reads it."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir is the Shelf folder (sail-sg/mvp data/Shelf): calibration_shelf.json, actorsGT.mat, "
        "Camera0..4/img_XXXXXX.png and pesudo_gt/voxelpose_pesudo_gt_shelf.pickle (from VoxelPose).")
    BUILDER_CONFIGS = [ActorsConfig(name="default", dataset="shelf", train_frames=ACTOR_DATASETS["shelf"][2],
                                    test_frames=ACTOR_DATASETS["shelf"][3],
                                    pseudo_gt="voxelpose_pesudo_gt_shelf.pickle")]

    def _info(self):
        v = ACTOR_DATASETS[self.builder_config.dataset][0]
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "key": tfds.features.Text(),
                "images": tfds.features.Sequence(tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                                                 length=v),
                "joints_3d": tfds.features.Tensor(shape=(None, ACTOR_JOINTS, 3), dtype=np.float64),
                "joints_3d_vis": tfds.features.Tensor(shape=(None, ACTOR_JOINTS), dtype=np.float32),
                "cameras": tfds.features.FeaturesDict({
                    k: tfds.features.Tensor(shape=(v,) + shape, dtype=np.float64)
                    for k, shape in (("R", (3, 3)), ("T", (3,)), ("f", (2,)), ("c", (2,)), ("k", (3,)), ("p", (2,)))}),
            }))

    def _root(self, dl_manager) -> str:
        return sources.manual_root(dl_manager, self.MANUAL_DOWNLOAD_INSTRUCTIONS)

    def _split_generators(self, dl_manager):
        root, c = self._root(dl_manager), self.builder_config
        views = ACTOR_DATASETS[c.dataset][0]
        # the calibration and the ground truth are checked before anything is written
        read_actor_calibration(os.path.join(root, f"calibration_{c.dataset}.json"), views)
        read_actors_gt(os.path.join(root, "actorsGT.mat"))
        return {"train": actor_frames(root, c.dataset, "train", c.train_frames, views, c.max_people, c.pseudo_gt or None),
                "validation": actor_frames(root, c.dataset, "validation", c.test_frames, views, c.max_people)}

    def _generate_examples(self, *args):      # the generators come from _split_generators
        raise NotImplementedError


class MvpCampus(MvpShelf):
    """Campus (3 views) in the VoxelPose layout (manual_dir), as sail-sg/mvp lib/dataset/campus.py reads it."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir is the CampusSeq1 folder (sail-sg/mvp data/CampusSeq1): calibration_campus.json, actorsGT.mat, "
        "Camera0..2/campus4-cK-XXXXX.png and pesudo_gt/voxelpose_pesudo_gt_campus.pickle (from VoxelPose).")
    BUILDER_CONFIGS = [ActorsConfig(name="default", dataset="campus", train_frames=ACTOR_DATASETS["campus"][2],
                                    test_frames=ACTOR_DATASETS["campus"][3],
                                    pseudo_gt="voxelpose_pesudo_gt_campus.pickle")]


class MvpActorsSynthetic(MvpShelf):
    """The synthetic stand-in written in the Shelf (5 views, 4 actors, 10 frames) or Campus
    (3 views, 3 actors, 10 frames, its space centre, repeated train frames, one train frame
    without pseudo-GT) layout and read by the Shelf / Campus generator."""
    VERSION = tfds.core.Version("1.0.0")
    PREPARES_ITSELF = True
    MANUAL_DOWNLOAD_INSTRUCTIONS = None
    BUILDER_CONFIGS = [
        ActorsConfig(name="shelf", dataset="shelf", train_frames=((0, 3), (7, 10)), test_frames=((3, 7),),
                     pseudo_gt="voxelpose_pesudo_gt_shelf.pickle"),
        ActorsConfig(name="campus", dataset="campus", train_frames=((0, 3), (7, 10), (8, 10)), test_frames=((3, 7),),
                     pseudo_gt="voxelpose_pesudo_gt_campus.pickle"),
    ]
    STANDIN = {"shelf": dict(actors=4, origin=(0.0, 0.0, 0.0), drop=()),
               "campus": dict(actors=3, origin=(3000.0, 4500.0, 0.0), drop=(1,))}

    def _root(self, dl_manager):
        c = self.builder_config
        root = os.path.join(os.fspath(dl_manager.download_dir), f"mvp_actors_synthetic_{c.name}")
        write_actor_standin(root, c.dataset, c.pseudo_gt)
        return root


def write_actor_standin(root: str, name: str, pseudo_gt: str, frames: int = 10, seed: int = 0) -> None:
    s = MvpActorsSynthetic.STANDIN[name]
    rng = np.random.default_rng([seed, 7])
    cams = synthetic.ring_cameras(rng, ACTOR_DATASETS[name][0], synthetic.IMAGE_WH, distortion=True)
    out, cams = actor_standin_frames(rng, cams, frames, s["actors"], s["origin"])
    write_actor_dataset(root, name, cams, out, pseudo_gt, s["drop"])


# ====================================================================== records -> elements
def decode(image) -> np.ndarray:
    """An RGB uint8 view from the record (encoded JPEG bytes as cv2.imread + BGR->RGB, or an array)."""
    import cv2
    if isinstance(image, (bytes, np.bytes_)):
        bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BadFile("a view image does not decode")
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
        joints = np.asarray(record["joints_3d"], np.float64)
        nj = joints.shape[-2] if joints.ndim == 3 else NUM_JOINTS
        joints = joints.reshape(-1, nj, 3)
        vis = np.asarray(record["joints_3d_vis"], np.float32).reshape(-1, nj)
        n, p = len(joints), self.max_people
        j3d = np.zeros((p, nj, 3), np.float32)
        v3d = np.zeros((p, nj), np.float32)
        j3d[:n], v3d[:n] = joints, vis
        # a person is a slot with a visible joint (Shelf / Campus test frames keep absent actors'
        # slots, with visibility 0, so that PCP knows each actor)
        return {"images": images, **meta, "joints_3d": j3d, "joints_3d_vis": v3d,
                "person_valid": v3d.sum(-1) > 0}


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
