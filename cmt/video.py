"""Video -> CMT's control array (wzk1015/video-bgm-generation src/video2npz/: optical_flow.py,
video2metadata.py, metadata2numpy_mix.py, stat_mix.py). Spec §6.5.

- frames: decoded with OpenCV (any container/codec its FFmpeg reads), gray, shrunk to height
  360 when taller (resize_video.py / visbeat's max_height=360); fps = round(frames / duration);
- motion speed: `cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)` on
  every consecutive pair, F_t = mean |flow| over H x W x 2 (optical_flow.py);
- visual beats: the official ones come from visbeat3 (directogram flux of flow-angle
  histograms, Butterworth high-pass, peak picking). Here a simplified stand-in of it
  (`visual_beats`): 128-bin magnitude-weighted flow-angle histograms with a 5 % border dead
  zone, the negative part of their temporal difference averaged over bins (the
  deceleration "impact" envelope), normalised to [0, 1], peaks picked with scipy
  (>= 3 frames apart, height >= 0.35); weight = envelope value at the peak;
- tempo: given, or the autocorrelation peak of the envelope within 60..180 bpm (stand-in for
  librosa.beat.beat_track on the envelope);
- alignment (video2metadata.py): tick = round(t / 60 * tempo * 4), bar = tick // 16; per-bar
  speed = mean F_t over blocks of round(fps * 240 / tempo) frames; n_beat = ceil(duration /
  60 * tempo * 4); classes by the fixed thresholds of stat_mix.py (strict `<`);
- the array (metadata2numpy_mix.py): rows [beat, density, strength, i_beat, n_beat, p_beat].

The official thresholds are calibrated on 360p footage; tiny rendered clips move far fewer
pixels per frame, so `percentiles="clip"` re-derives the 16 density thresholds from the
clip's own per-bar speeds (quantiles), as the spec's stand-in suggests.
"""
import math
import os

import numpy as np

# stat_mix.py ("calculated based on a set of videos")
VBEAT_WEIGHT_PERCENTILE = [0, 0.22890276357193542, 0.4838207191278801, 0.7870981363596372, 0.891160136856027,
                           0.9645568135300789, 0.991241869205911, 0.9978208223154553, 0.9996656159745393,
                           0.9998905521344276]
FMPB_PERCENTILE = [0.008169269189238548, 0.020344337448477745, 0.02979462407529354, 0.041041795164346695,
                   0.07087484002113342, 0.10512548685073853, 0.14267262816429138, 0.19095642864704132,
                   0.5155120491981506, 0.7514784336090088, 0.9989343285560608, 1.2067525386810303,
                   1.6322582960128784, 2.031705141067505, 2.467430591583252, 2.8104422092437744]
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)       # optical_flow.py params
RESOLUTION = 16
COLUMNS = ("beat", "density", "strength", "i_beat", "n_beat", "p_beat")


class VideoError(ValueError):
    """A video or control array that cannot be used; the message names the file."""


def read_frames(path: str, max_height: int = 360) -> tuple[np.ndarray, float, float]:
    """(gray frames uint8 [T, H, W], fps (rounded, as video2metadata), duration in s)."""
    import cv2
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such video file")
    cap = cv2.VideoCapture(path)
    frames = []
    try:
        raw_fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        while cap.isOpened():
            ok, frame = cap.read()
            if not ok:
                break
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if gray.shape[0] > max_height:
                w = int(round(gray.shape[1] * max_height / gray.shape[0]))
                gray = cv2.resize(gray, (w, max_height), interpolation=cv2.INTER_AREA)
            frames.append(gray)
    finally:
        cap.release()
    if len(frames) < 2 or not raw_fps or raw_fps <= 0:
        raise VideoError(f"{path}: cannot be decoded as a video ({len(frames)} frames read)")
    duration = len(frames) / raw_fps
    return np.stack(frames), float(round(len(frames) / duration)), duration


def flow_fields(frames: np.ndarray) -> list[np.ndarray]:
    import cv2
    return [cv2.calcOpticalFlowFarneback(frames[i - 1], frames[i], None, *FARNEBACK) for i in range(1, len(frames))]


def flow_magnitudes(flows) -> np.ndarray:
    """optical_flow.py: np.mean(np.abs(flow)) per frame pair."""
    return np.array([float(np.mean(np.abs(f))) for f in flows])


def impact_envelope(flows, bins: int = 128, border: float = 0.05) -> np.ndarray:
    """Per frame pair: the deceleration flux of the magnitude-weighted flow-angle histogram
    (simplified visbeat directogram), normalised to [0, 1]; length = len(flows)."""
    hists = []
    for f in flows:
        h, w = f.shape[:2]
        bh, bw = int(h * border), int(w * border)
        f = f[bh:h - bh or None, bw:w - bw or None]
        mag = np.hypot(f[..., 0], f[..., 1]).ravel()
        ang = np.arctan2(f[..., 1], f[..., 0]).ravel()
        hists.append(np.histogram(ang, bins=bins, range=(-np.pi, np.pi), weights=mag)[0] / max(mag.size, 1))
    hists = np.asarray(hists)
    diff = np.diff(hists, axis=0, prepend=hists[:1])
    env = np.maximum(-diff, 0.0).mean(1)
    return env / env.max() if env.max() > 0 else env


def directogram(flows, bins: int = 128, dead_zone: float = 0.05) -> np.ndarray:
    """visbeat3 Video_CV.computeDirectogramPowers (power 1): [bins, frames] histograms of the
    flow angle (arctan2 + pi in [0, 2 pi)) weighted by the flow magnitude, inside a 5 % dead zone."""
    cols = []
    for f in flows:
        h, w = f.shape[:2]
        y0, x0 = int(dead_zone * h), int(dead_zone * w)
        fx, fy = f[y0:h - y0, x0:w - x0, 0], f[y0:h - y0, x0:w - x0, 1]
        ang, amp = np.arctan2(fy, fx) + np.pi, np.sqrt(fx * fx + fy * fy)
        cols.append(np.histogram(ang.ravel(), bins=bins, range=(0, 2 * np.pi), weights=amp.ravel())[0])
    return np.asarray(cols, np.float64).T


def visbeat_envelope(flows, fps: float, f_sigma=(5, 3), median_kernel=(3, 3), highpass_seconds: float = 0.8,
                     order: int = 5, cut_percentile: float = 99) -> np.ndarray:
    """visbeat3 Video_CV.computeImpactEnvelope(forward=True) with its defaults: the directogram
    smoothed (Gaussian sigma (5 bins, 3 frames), 3 x 3 median), its temporal difference, the
    negative part averaged over bins, an order-5 Butterworth high-pass at 1 / 0.8 s = 1.25 Hz
    (filtfilt), values beyond the 99th percentile of |v| set to the 98th (cut suppression),
    divided by the 99th percentile. Length = len(flows)."""
    from scipy import ndimage, signal
    im = signal.medfilt(ndimage.gaussian_filter(directogram(flows), sigma=f_sigma, order=0), median_kernel)
    d = np.concatenate([im[:, :1], np.diff(im, axis=1)], 1)
    v = np.clip(-d, 0, None).mean(0)
    if highpass_seconds and len(v) > 3 * (order + 1):
        b, a = signal.butter(order, (1.0 / highpass_seconds) / (fps * 0.5), btype="high", analog=False)
        v = signal.filtfilt(b, a, v)
    norm = np.max(np.abs(v))
    if cut_percentile is not None:
        pv, pvlow = np.percentile(np.abs(v), cut_percentile), np.percentile(np.abs(v), cut_percentile - 1)
        norm = pv
        v = np.where((v > pv) | (v < -pv), pvlow, v)   # visbeat's run test never fires: every one -> pvlow
    return v / norm if norm > 0 else v


def peak_pick(x: np.ndarray, pre_max: int = 2, post_max: int = 2, pre_avg: int = 5, post_avg: int = 5,
              delta: float = 0.015, wait: int = 2) -> np.ndarray:
    """librosa.util.peak_pick's rule: x[n] is the maximum of x[n - pre_max : n + post_max + 1],
    at least the mean of x[n - pre_avg : n + post_avg + 1] + delta, and more than `wait`
    samples after the previous peak (visbeat3's default picking, in frames)."""
    peaks, last = [], -np.inf
    for n in range(len(x)):
        lo, hi = max(0, n - pre_max), min(len(x), n + post_max + 1)
        if x[n] < x[lo:hi].max():
            continue
        a, b = max(0, n - pre_avg), min(len(x), n + post_avg + 1)
        if x[n] >= x[a:b].mean() + delta and n - last > wait:
            peaks.append(n)
            last = n
    return np.asarray(peaks, np.int64)


def visual_beats(envelope: np.ndarray, fps: float, min_gap: int = 3, height: float = 0.35):
    """[(time s, weight)] of the envelope's peaks (frame pair i ends at frame i + 1)."""
    from scipy.signal import find_peaks
    peaks, _ = find_peaks(np.concatenate([[0.0], envelope, [0.0]]), height=height, distance=min_gap)
    return [((p - 1 + 1) / fps, float(envelope[p - 1])) for p in peaks]


def estimate_tempo(envelope: np.ndarray, fps: float, lo: float = 60.0, hi: float = 180.0) -> float:
    """The beat period (60..180 bpm) with the largest envelope autocorrelation."""
    e = envelope - envelope.mean()
    ac = np.correlate(e, e, "full")[len(e) - 1:]
    lags = np.arange(max(1, int(fps * 60 / hi)), min(len(ac) - 1, int(fps * 60 / lo)) + 1)
    if len(lags) == 0 or not np.any(ac[lags] > 0):
        return 120.0
    return float(60.0 * fps / lags[np.argmax(ac[lags])])


def density_class(speed: float, percentiles=FMPB_PERCENTILE) -> int:
    """stat_mix._cal_density: the first i with speed < percentile[i], else len."""
    for i, p in enumerate(percentiles):
        if speed < p:
            return i
    return len(percentiles)


def strength_class(weight: float, percentiles=VBEAT_WEIGHT_PERCENTILE) -> int:
    for i, p in enumerate(percentiles):
        if weight < p:
            return i
    return len(percentiles)


def align(beats, speeds: np.ndarray, fps: float, tempo: float):
    """video2metadata.process_video: visual beats -> {bar, tick, weight}; per-bar speeds."""
    vbeats = []
    for t, w in beats:
        i_beat = round(t / 60 * tempo * 4)
        vbeats.append({"bar": int(i_beat // 16), "tick": int(i_beat % 16), "weight": float(w)})
    fpb = int(round(fps * 4 * 60 / tempo))
    fmpb = [float(np.mean(speeds[i:i + fpb])) for i in range(0, len(speeds), fpb)]
    return vbeats, fmpb


def control_array(duration: float, tempo: float, vbeats, fmpb, fmpb_percentile=FMPB_PERCENTILE,
                  weight_percentile=VBEAT_WEIGHT_PERCENTILE) -> np.ndarray:
    """metadata2numpy_mix.metadata2numpy: int [rows, 6]."""
    n_beat = int(math.ceil(float(duration) / 60 * float(tempo) * 4))
    p = lambda i: round(float(i) / n_beat * 100) + 1  # noqa: E731
    rows, n_bars = [], 0
    for vb in vbeats:
        while int(vb["bar"]) >= n_bars:
            i = n_bars * RESOLUTION
            rows.append([17, density_class(fmpb[n_bars], fmpb_percentile) + 1, 0, i, n_beat, p(i)])
            n_bars += 1
        i = int(vb["bar"]) * RESOLUTION + int(vb["tick"])
        rows.append([int(vb["tick"]) + 1, 0, strength_class(vb["weight"], weight_percentile), i, n_beat, p(i)])
    while n_bars < len(fmpb):
        i = n_bars * RESOLUTION
        rows.append([17, density_class(fmpb[n_bars], fmpb_percentile) + 1, 0, i, n_beat, p(i)])
        n_bars += 1
    return np.asarray(rows, dtype=np.int64).reshape(-1, 6)


def visbeat_beats(envelope: np.ndarray, fps: float):
    """[(time s, weight)]: visbeat3's peaks of its envelope, weight = the envelope there
    (frame pair i ends at frame i + 1)."""
    return [((int(p) + 1) / fps, float(envelope[p])) for p in peak_pick(envelope)]


def video_controls(path: str, tempo: float | None = None, percentiles: str = "official",
                   beats: str = "simple") -> dict:
    """The control array of a video and what it came from. `beats`: "simple" (the directogram
    flux stand-in) or "visbeat" (visbeat3's envelope and peak picking; all its peaks, not
    only the longest beat sequence that video2metadata.py keeps)."""
    frames, fps, duration = read_frames(path)
    flows = flow_fields(frames)
    speeds = flow_magnitudes(flows)
    if beats == "simple":
        env = impact_envelope(flows)
        beats = visual_beats(env, fps)
    elif beats == "visbeat":
        env = visbeat_envelope(flows, fps)
        beats = visbeat_beats(env, fps)
    else:
        raise ValueError(f"beats {beats!r}: simple | visbeat")
    tempo = float(tempo) if tempo else estimate_tempo(env, fps)
    vbeats, fmpb = align(beats, speeds, fps, tempo)
    if len(fmpb) > 0 and vbeats and vbeats[-1]["bar"] >= len(fmpb):
        vbeats = [v for v in vbeats if v["bar"] < len(fmpb)]       # a beat in a bar without speed
    if percentiles == "official":
        thresholds = FMPB_PERCENTILE
    elif percentiles == "clip":
        thresholds = list(np.quantile(np.asarray(fmpb), np.linspace(0.0, 1.0, 18)[1:-1]) + 1e-12)
    else:
        raise ValueError(f"percentiles {percentiles!r}: official | clip")
    array = control_array(duration, tempo, vbeats, fmpb, thresholds)
    return {"input": array, "tempo": tempo, "fps": fps, "duration": duration, "speeds": speeds,
            "envelope": env, "beats": beats, "fmpb": np.asarray(fmpb)}


def check_controls(array, path: str = "<controls>") -> np.ndarray:
    """A control array [rows, 6] whose first row is a bar row; errors name the file."""
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[1] != len(COLUMNS) or len(a) == 0:
        raise VideoError(f"{path}: the control array must have shape [rows, {len(COLUMNS)}] "
                         f"({', '.join(COLUMNS)}), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise VideoError(f"{path}: the control array must hold integers")
        a = a.astype(np.int64)
    if a[0, 0] != 17:
        raise VideoError(f"{path}: the first control row must be a bar row (beat = 17), got {a[0].tolist()}")
    if (a[:, 0] < 1).any() or (a[:, 0] > 17).any() or (a[:, 4] <= 0).any():
        raise VideoError(f"{path}: beat column must be 1..17 and n_beat > 0")
    return a


def load_controls(path: str) -> np.ndarray:
    """An official control .npz (key `input`, as metadata2numpy_mix.py writes it)."""
    try:
        with np.load(path) as f:
            if "input" not in f:
                raise VideoError(f"{path}: no array 'input' in the npz (keys: {list(f.keys())})")
            a = f["input"]
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoError(f"{path}: not a readable .npz control file ({e})") from e
    return check_controls(a, path)


def synthetic_controls(n_bars: int, tempo: float = 120.0, density=None, beats_per_bar: int = 2,
                       strength_range=(2, 10), seed: int = 0) -> np.ndarray:
    """A control array in the official format without a video: per-bar density classes
    (default: a ramp 0..15) and `beats_per_bar` visual beats per bar with random strengths."""
    rng = np.random.default_rng(seed)
    density = np.linspace(0, 15, n_bars).round().astype(int) if density is None else np.asarray(density)
    duration = n_bars * 240.0 / tempo
    fmpb = [FMPB_PERCENTILE[d] - 1e-6 if d < len(FMPB_PERCENTILE) else 3.0 for d in density]
    vbeats = []
    p = VBEAT_WEIGHT_PERCENTILE
    for b in range(n_bars):
        for tick in sorted(rng.choice(16, beats_per_bar, replace=False)):
            s = int(rng.integers(strength_range[0], strength_range[1] + 1))
            w = (p[s - 1] + p[s]) / 2 if s < len(p) else (p[-1] + 1.0) / 2     # inside class s
            vbeats.append({"bar": b, "tick": int(tick), "weight": w})
    return control_array(duration, tempo, vbeats, fmpb)


def render_clip(path: str, speeds_px, fps: int = 24, size: int = 64, seconds_per_segment: float = 2.0,
                impacts=()) -> str:
    """A panning test clip (MJPG .avi): a smooth random texture translated to the right,
    in segment k at speeds_px[k] pixels per frame (sub-pixel, wrapping around); from each
    frame index in `impacts` the pan stops dead for 3 frames (an abrupt deceleration, i.e.
    a visual beat)."""
    import cv2
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    if not writer.isOpened():
        raise VideoError(f"{path}: OpenCV cannot write MJPG video here")
    texture = np.random.default_rng(0).random((size, size)).astype(np.float32) * 255
    texture = cv2.GaussianBlur(texture, (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    stop = {f for i in impacts for f in range(i, i + 3)}
    offset, frame_idx = 0.0, 0
    for speed in speeds_px:
        for _ in range(int(round(fps * seconds_per_segment))):
            if frame_idx and frame_idx not in stop:
                offset += speed
            shift = np.float32([[1, 0, offset], [0, 1, 0]])
            img = cv2.warpAffine(texture, shift, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            writer.write(cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_GRAY2BGR))
            frame_idx += 1
    writer.release()
    return path
