"""Songs for the stand-in data set and the tests (../shared/specs/cmt.md §6.3, §6.6), written
as real MIDI files (480 ticks per quarter, 120 qpm) in the canonical track order and encoded
by cmt.encoding like any LPD file:

- `fixture_song`: the spec's procedural golden song (Drums, Piano, a 6-note Bass that the
  track filter drops but that sets n_beat = 112);
- `chorale_song`: a music21 Bach chorale, ties merged, shifted by its pickup so bar lines
  fall on the 16-tick grid; S/A/T/B -> Piano/Guitar/Strings/Bass, optionally a procedural
  Drums track whose onset counts vary (so Drums and strengths > 1 occur);
- `procedural_song`: per bar a density (number of onset ticks, its Euclidean rhythm) and per
  onset a chord size per instrument of the song's ensemble, so both rhythm attributes span
  their whole range.
"""
import numpy as np

from cmt import encoding

RESOLUTION = encoding.RESOLUTION   # ticks per bar
TPQ = 480                          # ticks per quarter of the written files
SIXTEENTH = TPQ // 4
SATB = ("Piano", "Guitar", "Strings", "Bass")    # soprano, alto, tenor, bass


def fixture_song() -> dict:
    s = SIXTEENTH
    tracks = {"Drums": [], "Piano": [], "Bass": []}
    for b in range(6):
        t0 = b * 16 * s
        tracks["Piano"] += [[t0, p, 4 * s] for p in (67, 64, 60)] + [[t0 + 4 * s, 72, 2 * s]]
        tracks["Drums"] += [[t0 + k * s, p, s] for k, p in ((0, 36), (8, 36), (8, 42), (12, 42))]
        tracks["Bass"].append([t0, 36, 8 * TPQ])         # 4 s at 120 qpm
    return tracks


def chorale_song(name: str = "bach/bwv66.6", drums: bool = False, seed: int = 0) -> dict:
    import music21
    score = music21.corpus.parse(name).stripTies()
    parts = list(score.parts)[:4]
    first = parts[0].getElementsByClass("Measure")[0]
    pickup = float(first.barDuration.quarterLength - first.duration.quarterLength)
    tracks = {}
    for part, track in zip(parts, SATB):
        notes = []
        for n in part.flatten().notes:
            t = round((float(n.offset) + pickup) * TPQ)
            d = round(float(n.quarterLength) * TPQ)
            notes += [[t, p.midi, d] for p in (n.pitches if n.isChord else [n.pitch])]
        tracks[track] = notes
    if drums:
        end = max(t + d for notes in tracks.values() for t, _, d in notes)
        rng = np.random.default_rng(seed)
        notes = []
        for tick in range(0, end // SIXTEENTH, 2):
            k = int(rng.choice([0, 0, 1, 1, 2, 3]))
            notes += [[tick * SIXTEENTH, int(p), SIXTEENTH] for p in rng.choice([35, 36, 38, 42, 46, 49, 51], k, False)]
        tracks["Drums"] = notes
    return tracks


def euclidean_ticks(density: int) -> list:
    """The Euclidean rhythm E(density, 16): onsets at floor(16 j / density), j < density."""
    return sorted({(RESOLUTION * j) // density for j in range(density)})


def procedural_song(rng: np.random.Generator, n_bars: int = 8) -> dict:
    """Per bar a density 0..16 (distinct onset ticks, uniform; 0 = an empty bar) played as the
    Euclidean rhythm E(density, 16), so a bar's rhythm follows from its density; per song an
    ensemble of 1-3 instruments (probabilities 0.5 / 0.35 / 0.15) that all play at every
    onset, each a chord whose size is geometric (mean ~1.7) up to the instrument's maximum;
    when Drums play, one chord in ten is a fill of 8..12 notes, so strengths reach high
    values while songs stay short; durations 1..16 ticks.

    Why this shape: the tiny model must learn the countdown of the beat densities (each beat
    token's density = the onset ticks left in its bar) to follow a forced bar density. With
    onsets at random ticks and each instrument joining an onset at random (the first
    version), it had not learnt it after 4,000 steps (Spearman ~0 between requested and
    achieved density); with the rhythm fixed by the density and the ensemble fixed per song
    the count is learnt in about a thousand steps (cmt/README.md)."""
    s = SIXTEENTH
    roots = {"Piano": 60, "Guitar": 52, "Bass": 36, "Strings": 67}
    sizes = {"Drums": 12, "Piano": 8, "Guitar": 6, "Bass": 2, "Strings": 4}
    tracks = {name: [] for name in encoding.PROGRAMS}
    names = list(tracks)
    k = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    ensemble = [names[i] for i in sorted(rng.choice(len(names), k, replace=False))]
    for b in range(n_bars):
        for tick in euclidean_ticks(int(rng.integers(0, RESOLUTION + 1))):
            for name in ensemble:
                k = int(min(sizes[name], rng.geometric(0.6)))
                if name == "Drums" and rng.random() < 0.1:
                    k = int(rng.integers(8, sizes[name] + 1))      # a rare fill: strengths up to 12
                if name == "Drums":
                    pitches = rng.choice(np.arange(35, 82), k, replace=False)
                else:
                    pitches = roots[name] + rng.choice(24, k, replace=False)
                d = int(rng.integers(1, 17))
                tracks[name] += [[(b * RESOLUTION + int(tick)) * s, int(p), d * s] for p in pitches]
    return tracks


def write(tracks: dict, path: str) -> str:
    encoding.write_midi(tracks, path, tempo_qpm=120.0, ticks_per_beat=TPQ, velocity=100)
    return path
