"""Which frames of a video form a clip: mmaction's `SampleFrames` as the official configs use it.

Dense sampling (Kinetics, Diving-48, HMDB51, UCF101): a clip is `clip_len` frames spaced
`interval` native frames apart (span L = clip_len * interval); indices past the end wrap
around (`out_of_bound_opt='loop'`). Training draws one clip uniformly; testing takes
`num_clips` evenly spaced clips. Uniform sampling (the fork's `frame_uniform`, SSv2): one
frame from each of `clip_len` equal segments, random in training, the segment's middle in test.
All indices are 0-based (video decoding; mmaction's RawframeDataset adds start_index 1).
"""
import numpy as np


def train_clip_offsets(num_frames: int, span: int, num_clips: int, rng: np.random.Generator) -> np.ndarray:
    """mmaction SampleFrames._get_train_clips."""
    avg_interval = (num_frames - span + 1) // num_clips
    if avg_interval > 0:
        return np.arange(num_clips) * avg_interval + rng.integers(0, avg_interval, size=num_clips)
    if num_frames > max(num_clips, span):
        return np.sort(rng.integers(0, num_frames - span + 1, size=num_clips))
    if avg_interval == 0:
        ratio = (num_frames - span + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio).astype(np.int64)
    return np.zeros(num_clips, np.int64)


def test_clip_offsets(num_frames: int, span: int, num_clips: int) -> np.ndarray:
    """mmaction SampleFrames._get_test_clips (no twice_sample)."""
    avg_interval = (num_frames - span + 1) / float(num_clips)
    if num_frames > span - 1:
        return (np.arange(num_clips) * avg_interval + avg_interval / 2.0).astype(np.int64)
    return np.zeros(num_clips, np.int64)


def dense_clips(num_frames: int, clip_len: int, interval: int, num_clips: int = 1, *,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """[num_clips, clip_len] frame indices; `rng` given = training, None = testing."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    span = clip_len * interval
    offsets = (train_clip_offsets(num_frames, span, num_clips, rng) if rng is not None
               else test_clip_offsets(num_frames, span, num_clips))
    inds = offsets[:, None] + np.arange(clip_len)[None, :] * interval
    return np.mod(inds, num_frames)


def uniform_clip(num_frames: int, clip_len: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """[1, clip_len] indices, one per segment (SlowFast's SSv2 sampler, as the fork copies it)."""
    seg = float(num_frames - 1) / clip_len
    inds = []
    for i in range(clip_len):
        start, end = int(np.round(seg * i)), int(np.round(seg * (i + 1)))
        inds.append(int(rng.integers(start, end + 1)) if rng is not None else (start + end) // 2)
    return np.asarray(inds, np.int64)[None]
