"""tfds builders for video classification from local video files (`manual_dir`).

Layout of `manual_dir` (mmaction's): `<prefix>_{train,val}_list_videos.txt` with lines
`relative/path.mp4 label` (0-based), paths relative to `videos_train/` / `videos_val/`
(SSv2: both under `videos/`). Each video is decoded with OpenCV (`pip install '.[data]'`),
its frames resized to short side 256 (Kinetics; the official test pipeline then resizes to
224) and stored JPEG-encoded, so training decodes only the sampled frames and needs neither
TensorFlow nor a video decoder. Features are plain Tensors (array_record, read by grain):
frames: bytes [F], label, num_frames, video_id. Videos that fail to decode are reported and
skipped (the official dataset lists drop the ~50 corrupt Kinetics files the same way).

`synthetic_motion` writes its own small video files (dualformer.synthetic_motion) and reads
them through exactly the same decoding path.
"""
import io
import logging
import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image



def read_video(path: str) -> np.ndarray:
    """All frames of a video file as uint8 [F, H, W, 3] RGB (OpenCV/FFmpeg decoding)."""
    import cv2
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    cap.release()
    if not frames:
        raise ValueError(f"no frames decoded from {path}")
    return np.stack(frames)


def encode_frames(frames: np.ndarray, short_side: int, quality: int = 90) -> list[bytes]:
    out = []
    for f in frames:
        img = Image.fromarray(f)
        if short_side > 0 and min(img.size) != short_side:
            w, h = img.size
            s = short_side / min(w, h)
            img = img.resize((int(w * s + 0.5), int(h * s + 0.5)), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def read_list(list_file: str) -> list[tuple[str, int]]:
    items = []
    with open(list_file) as f:
        for line in f:
            if line.strip():
                path, label = line.rsplit(maxsplit=1)
                items.append((path, int(label)))
    return items


class VideoFolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base: subclasses set NUM_CLASSES, LIST_PREFIX, VIDEO_DIRS and SHORT_SIDE."""
    VERSION = tfds.core.Version("1.0.0")
    NUM_CLASSES = 0
    LIST_PREFIX = ""
    VIDEO_DIRS = {"train": "videos_train", "val": "videos_val"}
    SHORT_SIDE = 256
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the videos in manual_dir/videos_train and manual_dir/videos_val and the list files "
        "<name>_train_list_videos.txt / <name>_val_list_videos.txt (lines 'relative/path label') "
        "in manual_dir, as mmaction2's tools/data scripts lay them out.")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "frames": tfds.features.Tensor(shape=(None,), dtype=np.object_),  # JPEG bytes per frame
                "num_frames": tfds.features.Tensor(shape=(), dtype=np.int32),
                "label": tfds.features.ClassLabel(num_classes=self.NUM_CLASSES),
                "video_id": tfds.features.Tensor(shape=(), dtype=np.object_),
            }))

    def _root(self, dl_manager) -> str:
        return dl_manager.manual_dir

    def _split_generators(self, dl_manager):
        root = self._root(dl_manager)
        return {tfds_split: self._generate_examples(root, split)
                for tfds_split, split in (("train", "train"), ("validation", "val"))}

    def _generate_examples(self, root: str, split: str):
        list_file = os.path.join(root, f"{self.LIST_PREFIX}_{split}_list_videos.txt")
        if not os.path.exists(list_file):
            raise FileNotFoundError(f"{list_file} is missing. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        for path, label in read_list(list_file):
            full = os.path.join(root, self.VIDEO_DIRS[split], path)
            try:
                frames = read_video(full)
            except Exception as e:  # corrupt or missing file: skip it, loudly
                logging.warning("skipping %s: %s", full, e)
                continue
            yield path, {"frames": encode_frames(frames, self.SHORT_SIDE), "num_frames": len(frames),
                         "label": label, "video_id": path.encode()}


class Kinetics400(VideoFolderBuilder):
    """Kinetics-400 from the cvdfoundation mp4 files (400 classes)."""
    NUM_CLASSES, LIST_PREFIX = 400, "kinetics400"


class Kinetics600(VideoFolderBuilder):
    """Kinetics-600 from the cvdfoundation mp4 files (600 classes)."""
    NUM_CLASSES, LIST_PREFIX = 600, "kinetics600"


class SomethingSomethingV2(VideoFolderBuilder):
    """Something-Something v2 (174 classes; webm files under manual_dir/videos)."""
    NUM_CLASSES, LIST_PREFIX = 174, "sthv2"
    VIDEO_DIRS = {"train": "videos", "val": "videos"}


class SyntheticMotion(VideoFolderBuilder):
    """Moving shapes labelled by their motion (dualformer.synthetic_motion), 8 classes.

    Videos are generated into manual_dir (or a temporary directory) as real MPEG-4 files and
    decoded like Kinetics; frames are kept at their native 80x64."""
    NUM_CLASSES, LIST_PREFIX, SHORT_SIDE = 8, "synthetic_motion", 0
    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {"1.2.0": "faster motion, smooth gradient background, 2048 train videos"}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="default", description="2048 train / 256 validation videos"),
        tfds.core.BuilderConfig(name="small", description="32 train / 16 validation videos (tests)"),
    ]
    SIZES = {"default": (2048, 256), "small": (32, 16)}
    MANUAL_DOWNLOAD_INSTRUCTIONS = None  # generated
    PREPARES_ITSELF = True

    def _root(self, dl_manager):
        from dualformer import synthetic_motion
        manual = getattr(dl_manager, "_manual_dir", None)
        root = manual if manual else tempfile.mkdtemp(prefix="synthetic_motion_")
        n_train, n_val = self.SIZES[self.builder_config.name]
        synthetic_motion.write_videos(root, "train", n_train)
        synthetic_motion.write_videos(root, "val", n_val)
        return root




class Diving48Videos(VideoFolderBuilder):
    """Diving-48 (V2 labels; 48 classes) from video files (the official configs read rawframes)."""
    NUM_CLASSES, LIST_PREFIX = 48, "diving48"


class Hmdb51Videos(VideoFolderBuilder):
    """HMDB51 split 1 (51 classes) from video files; list files hmdb51_{train,val}_list_videos.txt."""
    NUM_CLASSES, LIST_PREFIX = 51, "hmdb51"


class Ucf101Videos(VideoFolderBuilder):
    """UCF101 split 1 (101 classes) from video files (tfds' own `ucf101` needs TensorFlow)."""
    NUM_CLASSES, LIST_PREFIX = 101, "ucf101"

