"""CMT's metrics (spec §7.3-7.4).

Control accuracy
- `official_control_errors`: gen_midi_conditional.cal_control_error of the online lists the
  control loop records: strength error = mean |requested - emitted notes| / 1.83, density
  error = mean |#distinct beats since the last forced bar - forced density token| / 10.90
  (quirks kept: the first entries compare the initial state).
- `bar_densities` / `density_following`: offline re-analysis closer to the paper's §5.5:
  the achieved density of generated bar b is the number of distinct onset ticks (beat
  tokens) in it (the official count: len(beat_num) - 1 of inference_from_scratch); it is
  compared with the requested class of the b-th bar row of the control array (the bar
  token's density - 1), over the bars the generation completed (the loop stops when the
  controls run out, which leaves the last bar empty). Reported: mean |achieved - requested|, that divided by
  9.9 (the paper's normalisation: mean simu-notes per bar of the data), the fraction of
  bars within +-1, and the Spearman correlation over bars.

- `strength_following`: offline strength re-analysis: for every visual-beat row of the
  control array (bar b, tick t, class s) and each forced instrument (Drums, Piano, Guitar),
  the number of notes that instrument starts at tick t of generated bar b, against s.
  Reported: mean |achieved - requested| and that divided by 1.83 (the official
  normalisation: mean notes per simu-note).
- `time_error`: |ticks of the music (bars x 16) - n_beat of the controls| / n_beat (the
  paper's time error: the music's length against the video's).

Quality (MusDr definitions; what the paper used exactly is unverified, §7.4)
- `pitch_class_entropy`: per window of `window` bars, the entropy in bits of the pitch-class
  histogram of the non-drum notes' onsets, averaged over windows with notes (at most log2 12).
- `grooving_similarity`: 1 - XOR(onset vectors of two bars) / 16, averaged over all bar
  pairs (at most 1000 random pairs), over all tracks' onsets.
- `structureness_indicator`: MusDr's SI: the maximum of the fitness scape plot (Mueller's
  audio thumbnailing) within a timescale band. MusDr computes it from audio chroma; here the
  chroma is **symbolic** (no synthesis, no librosa): the pitch-class energy of the sounding
  non-drum notes at 10 Hz (the music played at `tempo`), then MusDr's settings: boxcar
  smoothing 21 frames and downsampling by 5 (2 Hz), L2 normalisation, the tempo- (7 relative
  tempi 0.5..2) and transposition- (12 shifts) invariant SSM with 16-frame diagonal
  smoothing in both directions, relative threshold 0.25 with scaling and penalty -2,
  diagonal 1; SI(3, 8), SI(8, 15) and SI(15, inf) seconds.
- `matching_score`: src/match.py's MS between a song and a control array: 1 / (MSE of the
  per-bar densities - 1 + MSE of the 16-tick strength grid where the video has beats).
"""
import itertools

import numpy as np

from cmt.encoding import BAR, TYPE_M, TYPE_NOTE

STRENGTH_NORM, DENSITY_NORM, PAPER_DENSITY_NORM = 1.83, 10.90, 9.9


def official_control_errors(err_strength, err_density) -> dict:
    return {"strength_error": float(np.mean(err_strength)) / STRENGTH_NORM if len(err_strength) else float("nan"),
            "density_error": float(np.mean(err_density)) / DENSITY_NORM if len(err_density) else float("nan")}


def bar_densities(words: np.ndarray, complete: bool = False) -> np.ndarray:
    """Distinct onset ticks per bar of model-order rows [N, >= 2] (barbeat, type first).
    `complete`: only bars closed by the next Bar token or EOS (the control loop stops as soon
    as the controls run out, which cuts the last bar short)."""
    out, ticks, closed = [], None, False
    for w in np.asarray(words):
        barbeat, kind = int(w[0]), int(w[1])
        if kind == TYPE_M and barbeat == BAR:
            if ticks is not None:
                out.append(len(ticks))
            ticks = set()
        elif kind == TYPE_M and 0 < barbeat < BAR and ticks is not None:
            ticks.add(barbeat)
        elif kind == 0:
            closed = True
            break
    if ticks is not None and (closed or not complete):
        out.append(len(ticks))
    return np.asarray(out, np.int64)


def requested_densities(controls: np.ndarray) -> np.ndarray:
    """The density class of every bar row of a control array (bar token density - 1)."""
    c = np.asarray(controls)
    return c[c[:, 0] == BAR, 1] - 1


def density_following(words: np.ndarray, controls: np.ndarray) -> dict:
    from scipy.stats import spearmanr
    got, want = bar_densities(words, complete=True), requested_densities(controls)
    n = min(len(got), len(want))
    got, want = got[:n], want[:n]
    if n == 0:
        return {"bars": 0}
    diff = np.abs(got - want)
    rho = spearmanr(want, got).statistic if n > 2 and np.std(got) > 0 and np.std(want) > 0 else float("nan")
    return {"bars": int(n), "density_mae": float(diff.mean()), "density_error_rate": float(diff.mean() / PAPER_DENSITY_NORM),
            "within_1": float((diff <= 1).mean()), "spearman": float(rho),
            "requested": want.tolist(), "achieved": got.tolist()}


def strength_following(tracks: dict, controls: np.ndarray, forced=("Drums", "Piano", "Guitar")) -> dict:
    """Notes each forced instrument starts at each visual beat's tick, against its class."""
    c = np.asarray(controls)
    starts = {name: {} for name in forced}
    for name in forced:
        for t, _, _ in (n[:3] for n in tracks.get(name, [])):
            starts[name][int(t)] = starts[name].get(int(t), 0) + 1
    diffs = []
    for row in c[c[:, 0] < BAR]:
        tick = int(row[3])                       # i_beat = 16 * bar + tick
        diffs += [abs(starts[name].get(tick, 0) - int(row[2])) for name in forced]
    if not diffs:
        return {"beats": 0}
    mae = float(np.mean(diffs))
    return {"beats": int(len(diffs) // len(forced)), "strength_mae": mae, "strength_error_rate": mae / STRENGTH_NORM}


def time_error(words: np.ndarray, controls: np.ndarray) -> float:
    n_beat = int(np.asarray(controls)[0, 4])
    return abs(len(bar_densities(words)) * 16 - n_beat) / max(n_beat, 1)


def notes_by_bar(tracks: dict, ticks_per_bar: int = 16, drums: bool = True):
    bars = {}
    for name, notes in tracks.items():
        if name == "Drums" and not drums:
            continue
        for t, p, _ in (n[:3] for n in notes):
            bars.setdefault(int(t) // ticks_per_bar, []).append((int(t) % ticks_per_bar, int(p)))
    return bars


def pitch_class_entropy(tracks: dict, window: int = 1) -> float:
    bars = notes_by_bar(tracks, drums=False)
    if not bars:
        return float("nan")
    values = []
    for start in range(0, max(bars) + 1, window):
        pcs = [p % 12 for b in range(start, start + window) for _, p in bars.get(b, [])]
        if pcs:
            hist = np.bincount(pcs, minlength=12) / len(pcs)
            hist = hist[hist > 0]
            values.append(float(-(hist * np.log2(hist)).sum()))
    return float(np.mean(values)) if values else float("nan")


def grooving_similarity(tracks: dict, max_pairs: int = 1000, seed: int = 0) -> float:
    bars = notes_by_bar(tracks)
    if len(bars) < 2:
        return float("nan")
    n = max(bars) + 1
    grid = np.zeros((n, 16), bool)
    for b, ns in bars.items():
        for tick, _ in ns:
            grid[b, tick] = True
    pairs = list(itertools.combinations(range(n), 2))
    if len(pairs) > max_pairs:
        idx = np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[i] for i in idx]
    return float(np.mean([1 - np.logical_xor(grid[a], grid[b]).sum() / 16 for a, b in pairs]))


def note_count(words: np.ndarray) -> int:
    return int((np.asarray(words)[:, 1] == TYPE_NOTE).sum())


def matching_score(words: np.ndarray, controls: np.ndarray) -> float:
    """src/match.py: MS = 1 / (MSE(d_m, d_v) + MSE(s_m * [s_v > 0], s_v)) over the first
    min(#bars) bars; d = bar density - 1 (music: distinct onset ticks), s = the 16-tick
    strength grid per bar (a later beat token at the same tick overwrites)."""
    w, c = np.asarray(words), np.asarray(controls)
    d_m, d_v = bar_densities(w), requested_densities(c)
    n = min(len(d_m), len(d_v))
    if n == 0:
        return float("nan")

    def grid(rows, is_bar, tick_of, strength_of):
        g, bar = np.zeros((n, 16)), -1
        for r in rows:
            if is_bar(r):
                bar += 1
            elif bar >= 0 and bar < n and tick_of(r) is not None:
                g[bar, tick_of(r)] = strength_of(r)
        return g
    s_m = grid(w, lambda r: r[1] == TYPE_M and r[0] == BAR,
               lambda r: int(r[0]) - 1 if r[1] == TYPE_M and 0 < r[0] < BAR else None, lambda r: r[6])
    s_v = grid(c, lambda r: r[0] == BAR, lambda r: int(r[0]) - 1 if r[0] < BAR else None, lambda r: r[2])
    err = np.mean((d_m[:n] - d_v[:n]) ** 2) + np.mean((s_m * (s_v > 0) - s_v) ** 2)
    return float(1.0 / err) if err > 0 else float("inf")


# ---------------------------------------------------------------------- structureness (MusDr SI)
def symbolic_chroma(tracks: dict, tempo: float = 120.0, fs: float = 10.0) -> np.ndarray:
    """[12, frames] pitch-class energy of the sounding non-drum notes at `fs` Hz, L2-normalised
    per frame (librosa's chroma_stft(norm=2) on the 16th grid played at `tempo` qpm)."""
    sec_per_tick = 60.0 / tempo / 4
    notes = [n for name, ns in tracks.items() if name != "Drums" for n in ns]
    if not notes:
        return np.zeros((12, 0))
    end = max((t + max(d, 1)) * sec_per_tick for t, _, d in (n[:3] for n in notes))
    frames = int(np.ceil(end * fs))
    c = np.zeros((12, frames))
    for t, p, d in (n[:3] for n in notes):
        a, b = int(t * sec_per_tick * fs), int(np.ceil((t + max(d, 1)) * sec_per_tick * fs))
        c[int(p) % 12, a:max(b, a + 1)] += 1.0
    norm = np.sqrt((c ** 2).sum(0))
    return np.where(norm > 1e-3, c / np.maximum(norm, 1e-12), 1 / np.sqrt(12))


def _smooth_downsample(x, filt_len=21, down=5):
    from scipy import signal
    k = signal.get_window("boxcar", filt_len)[None]
    return signal.convolve(x, k, mode="same")[:, ::down] / filt_len


def _l2_columns(x, threshold=0.001):
    n = np.sqrt((x ** 2).sum(0))
    return np.where(n > threshold, x / np.maximum(n, 1e-12), 1 / np.sqrt(x.shape[0]))


def _diag_filter(s, length, tempi, direction):
    """ssm_features.filter_diag_mult_SM (MusDr / FMP)."""
    n, m = s.shape[0], s.shape[1]
    out = np.zeros((m, n))
    for tempo in tempi:
        m_ceil = int(np.ceil(n / tempo))
        idx = np.maximum(np.around(np.arange(1, m_ceil + 1) / m_ceil * n) - 1, 0).astype(np.int64)
        s_res = s[:, idx]
        ext = np.zeros((m + length, m_ceil + length))
        acc = np.zeros((m, m_ceil))
        if direction == 0:
            ext[:m, :m_ceil] = s_res
            for pos in range(length):
                acc += ext[pos:m + pos, pos:m_ceil + pos]
        else:
            ext[length:, length:] = s_res
            for pos in range(length):
                acc += ext[length - pos:m + length - pos, length - pos:m_ceil + length - pos]
        acc /= length
        inv = np.maximum(np.around(np.arange(1, n + 1) / n * m_ceil) - 1, 0).astype(np.int64)
        out = np.maximum(out, acc[:, inv])
    return out


def self_similarity(x: np.ndarray, smooth: int = 16, rel_threshold: float = 0.25, penalty: float = -2.0) -> np.ndarray:
    """compute_SM_TI + threshold_matrix + normalization_properties_SSM with MusDr's settings."""
    tempi = np.exp(np.linspace(np.log(0.5), np.log(2.0), 7))
    best = None
    for shift in range(12):
        s = x.T @ np.roll(x, shift, axis=0)
        s = np.maximum(_diag_filter(s, smooth, tempi, 0), _diag_filter(s, smooth, tempi, 1))
        best = s if best is None else np.maximum(best, s)
    s = best.copy()
    below = int(np.round(s.size * (1 - rel_threshold)))
    if below < s.size:
        s[s < np.sort(s.flatten("F"))[below]] = 0
    else:
        s[:] = 0
    pos = s > 0
    if pos.any():
        lo, hi = s[pos].min(), s.max()
        if hi > lo:
            s = (s - lo) / (hi - lo)
            s[~pos] = penalty
    np.fill_diagonal(s, 1.0)
    return s


def _segment_fitness(seg: np.ndarray, n_total: int) -> float:
    """Accumulated score matrix, optimal path family and fitness of one segment (FMP C4S3),
    the DP vectorised over the segment axis."""
    n, m = seg.shape[0], seg.shape[1] + 1
    d = np.full((n, m), -np.inf)
    d[0, 0], d[0, 1] = 0.0, seg[0, 0]
    for i in range(1, n):
        d[i, 0] = max(d[i - 1, 0], d[i - 1, -1])
        d[i, 1] = d[i, 0] + seg[i, 0]
        if m > 2:
            prev2 = d[i - 2, 1:m - 1] if i >= 2 else np.full(m - 2, -np.inf)
            # D[i, j] = S[i, j-1] + max(D[i-1, j-1], D[i-1, j-2], D[i-2, j-1]) for j >= 2
            d[i, 2:] = seg[i, 1:] + np.maximum(np.maximum(d[i - 1, 1:m - 1], d[i - 1, 0:m - 2]), prev2)
    score = max(d[n - 1, 0], d[n - 1, m - 1])
    # backtracking (compute_optimal_path_family)
    family, path = [], []
    i = n - 1
    if d[i, m - 1] < d[i, 0]:
        j = 0
    else:
        j = m - 1
        path.append((n - 1, m - 2))
    while i > 0 or j > 0:
        if i <= 2 and j <= 2:
            pred = [(i - 1, j - 1)]
        elif i <= 2:
            pred = [(i - 1, j - 1), (i - 1, j - 2)]
        elif j <= 2:
            pred = [(i - 1, j - 1), (i - 2, j - 1)]
        else:
            pred = [(i - 1, j - 1), (i - 2, j - 1), (i - 1, j - 2)]
        if i == 0:
            cell = (0, j - 1)
        elif j == 0:
            if d[i - 1, m - 1] > d[i - 1, 0]:
                cell = (i - 1, m - 1)
                if path:
                    path.reverse()
                    family.append(path)
                path = [(i - 1, m - 2)]
            else:
                cell = (i - 1, 0)
        elif j == 1:
            cell = (i, 0)
        else:
            best = -np.inf
            for pr in pred:
                if best < d[pr]:
                    best, cell = d[pr], pr
            path.append((cell[0], cell[1] - 1))
        i, j = cell
    path.reverse()
    family.append(path)
    family.reverse()
    seg_len = family[0][-1][1] + 1
    length = sum(len(p) for p in family)
    eps = 1e-16
    score_n = (score - seg_len) / (length + eps)
    coverage = sum(p[-1][0] - p[0][0] + 1 for p in family)
    coverage_n = (coverage - seg_len) / (n_total + eps)
    return 2 * score_n * coverage_n / (score_n + coverage_n + eps)


def fitness_scape_plot(ssm: np.ndarray) -> np.ndarray:
    """[segment length - 1, start] fitness (compute_fitness_scape_plot's SP_fitness)."""
    n = ssm.shape[0]
    sp = np.zeros((n, n))
    for length_minus_one in range(n):
        for start in range(n - length_minus_one):
            sp[length_minus_one, start] = _segment_fitness(ssm[:, start:start + length_minus_one + 1], n)
    return sp


def structureness_indicator(tracks: dict, tempo: float = 120.0, bands=((3, 8), (8, 15), (15, None)),
                            sample_rate: int = 2) -> dict:
    """SI(lo, hi) = max of the fitness scape plot over segment lengths lo..hi seconds
    (eval_metrics.compute_structure_indicator); 0 when the piece is shorter than lo."""
    x = symbolic_chroma(tracks, tempo)
    if x.shape[1] < 10:
        return {f"SI_{lo}_{hi or 'inf'}": float("nan") for lo, hi in bands}
    x = _l2_columns(_smooth_downsample(x))
    sp = fitness_scape_plot(self_similarity(x))
    out = {}
    for lo, hi in bands:
        a = int(lo * sample_rate) - 1
        b = int(hi * sample_rate) if hi is not None else sp.shape[0]
        out[f"SI_{lo}_{hi or 'inf'}"] = float(sp[a:b].max()) if a < sp.shape[0] else 0.0
    return out
