"""CMT's metrics (spec §7.3-7.4).

Control accuracy
- `official_control_errors`: gen_midi_conditional.cal_control_error of the online lists the
  control loop records: strength error = mean |requested - emitted notes| / 1.83, density
  error = mean |#distinct beats since the last forced bar - forced density token| / 10.90
  (quirks kept: the first entries compare the initial state).
- `bar_densities` / `density_following`: offline re-analysis closer to the paper's §5.5:
  the achieved density of generated bar b is the number of distinct onset ticks (beat
  tokens) in it; it is compared with the requested class of the b-th bar row of the control
  array (the bar token's density - 1). Reported: mean |achieved - requested|, that divided by
  9.9 (the paper's normalisation: mean simu-notes per bar of the data), the fraction of
  bars within +-1, and the Spearman correlation over bars.

Quality (MusDr definitions; what the paper used exactly is unverified, §7.4)
- `pitch_class_entropy`: per window of `window` bars, the entropy in bits of the pitch-class
  histogram of the non-drum notes' onsets, averaged over windows with notes (at most log2 12).
- `grooving_similarity`: 1 - XOR(onset vectors of two bars) / 16, averaged over all bar
  pairs (at most 1000 random pairs), over all tracks' onsets.
"""
import itertools

import numpy as np

from cmt.encoding import BAR, TYPE_M, TYPE_NOTE

STRENGTH_NORM, DENSITY_NORM, PAPER_DENSITY_NORM = 1.83, 10.90, 9.9


def official_control_errors(err_strength, err_density) -> dict:
    return {"strength_error": float(np.mean(err_strength)) / STRENGTH_NORM if len(err_strength) else float("nan"),
            "density_error": float(np.mean(err_density)) / DENSITY_NORM if len(err_density) else float("nan")}


def bar_densities(words: np.ndarray) -> np.ndarray:
    """Distinct onset ticks per bar of model-order rows [N, >= 2] (barbeat, type first)."""
    out, ticks = [], None
    for w in np.asarray(words):
        barbeat, kind = int(w[0]), int(w[1])
        if kind == TYPE_M and barbeat == BAR:
            if ticks is not None:
                out.append(len(ticks))
            ticks = set()
        elif kind == TYPE_M and 0 < barbeat < BAR and ticks is not None:
            ticks.add(barbeat)
        elif kind == 0:
            break
    if ticks is not None:
        out.append(len(ticks))
    return np.asarray(out, np.int64)


def requested_densities(controls: np.ndarray) -> np.ndarray:
    """The density class of every bar row of a control array (bar token density - 1)."""
    c = np.asarray(controls)
    return c[c[:, 0] == BAR, 1] - 1


def density_following(words: np.ndarray, controls: np.ndarray) -> dict:
    from scipy.stats import spearmanr
    got, want = bar_densities(words), requested_densities(controls)
    n = min(len(got), len(want))
    got, want = got[:n], want[:n]
    if n == 0:
        return {"bars": 0}
    diff = np.abs(got - want)
    rho = spearmanr(want, got).statistic if n > 2 and np.std(got) > 0 and np.std(want) > 0 else float("nan")
    return {"bars": int(n), "density_mae": float(diff.mean()), "density_error_rate": float(diff.mean() / PAPER_DENSITY_NORM),
            "within_1": float((diff <= 1).mean()), "spearman": float(rho),
            "requested": want.tolist(), "achieved": got.tolist()}


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
