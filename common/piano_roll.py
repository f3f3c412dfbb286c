"""A piano-roll picture of notes on a tick grid, with per-bar curves drawn over it (e.g. a
requested and an achieved note density), built on common.pictures (Pillow only).

  image = piano_roll({"Piano": [(start, pitch, duration), ...], "Drums": [...]},
                     ticks_per_bar=16, curves=[("requested", [3, 5, 8], (0, 0, 0)), ...])
  save_png("song.png", image)

Tracks are drawn in the order given, each in its own colour (common.pictures.palette), notes
as filled rectangles (time to the right, pitch up), bar lines every `ticks_per_bar` ticks.
Curves are step functions with one value per bar, scaled into [curve_range] over the full
height of the roll, with a legend; they are meant for controls against what came out.
"""
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from common.pictures import _font, palette


def piano_roll(tracks: Mapping[str, Sequence[Sequence[int]]], *, ticks_per_bar: int = 16,
               px_per_tick: int = 3, px_per_pitch: int = 3, pitch_range: tuple[int, int] | None = None,
               num_ticks: int | None = None, colors: Mapping[str, tuple[int, int, int]] | None = None,
               curves: Sequence[tuple[str, Sequence[float], tuple[int, int, int]]] = (),
               curve_range: tuple[float, float] = (0.0, 16.0), title: str = "") -> np.ndarray:
    notes = [(name, int(t), int(p), max(int(d), 1)) for name, ns in tracks.items() for t, p, d in
             (n[:3] for n in ns)]
    if pitch_range is None:
        pitches = [p for _, _, p, _ in notes] or [60]
        pitch_range = (min(pitches) - 2, max(pitches) + 2)
    lo, hi = pitch_range
    end = max([t + d for _, t, _, d in notes] + [len(c[1]) * ticks_per_bar for c in curves] + [ticks_per_bar])
    num_ticks = num_ticks or int(np.ceil(end / ticks_per_bar) * ticks_per_bar)
    left, top, legend_h = 34, 18 if title else 4, 16
    width = left + num_ticks * px_per_tick + 6
    roll_h = (hi - lo + 1) * px_per_pitch
    height = top + roll_h + legend_h + 6
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font(10)
    if title:
        draw.text((left, 2), title, fill=(0, 0, 0), font=font)
    y_of = lambda pitch: top + (hi - pitch) * px_per_pitch  # noqa: E731
    for c in range(lo - lo % 12 + 12, hi + 1, 12):                  # C lines and labels
        draw.line([(left, y_of(c) + px_per_pitch), (width - 6, y_of(c) + px_per_pitch)], fill=(235, 235, 235))
        draw.text((2, y_of(c) - 4), f"C{c // 12 - 1}", fill=(120, 120, 120), font=font)
    for b in range(0, num_ticks + 1, ticks_per_bar):
        x = left + b * px_per_tick
        draw.line([(x, top), (x, top + roll_h)], fill=(200, 200, 200))
    names = list(tracks)
    colors = dict(colors or {}) or dict(zip(names, palette(len(names))))
    for name, t, p, d in notes:
        if lo <= p <= hi:
            x0, y0 = left + t * px_per_tick, y_of(p)
            draw.rectangle([x0, y0, x0 + d * px_per_tick - 1, y0 + px_per_pitch - 1], fill=colors[name],
                           outline=tuple(int(v * 0.6) for v in colors[name]))
    c_lo, c_hi = curve_range
    for label, values, color in curves:
        pts = []
        for b, v in enumerate(values):
            frac = (float(v) - c_lo) / max(c_hi - c_lo, 1e-9)
            y = top + roll_h - np.clip(frac, 0, 1) * roll_h
            pts += [(left + b * ticks_per_bar * px_per_tick, y), (left + (b + 1) * ticks_per_bar * px_per_tick, y)]
        if pts:
            draw.line(pts, fill=color, width=2)
    x = left
    for name in names:                                              # legend: tracks, then curves
        draw.rectangle([x, top + roll_h + 5, x + 8, top + roll_h + 13], fill=colors[name])
        draw.text((x + 11, top + roll_h + 3), name, fill=(0, 0, 0), font=font)
        x += 16 + 7 * len(name)
    for label, _, color in curves:
        draw.line([(x, top + roll_h + 9), (x + 12, top + roll_h + 9)], fill=color, width=2)
        draw.text((x + 15, top + roll_h + 3), label, fill=(0, 0, 0), font=font)
        x += 20 + 7 * len(label)
    return np.asarray(img)
