"""Compound-word songs as tfds datasets (array_record), and the grain pipelines of the
`music` task.

Builders (config.data.builder = "cmt.data"):
- `lpd5_cp`: LPD-5-cleansed from manual_dir, in either official layout: the pianorolls
  `lpd_5_cleansed/A/A/A/<MSD id>/<md5>.npz` (converted as src/pianoroll2midi.py does with
  pypianoroll: `pip install pypianoroll`), or the MIDI folder midi2numpy_mix.py reads
  (`<id>.mid` files, any depth). Each song is encoded by cmt.encoding (src/midi2numpy_mix.py);
  songs of more than 10,000 rows are skipped as officially. Every 20th song (sorted by id)
  goes to `validation` (the official code has no validation split).
- `cmt_standin` (`/small` for tests): PREPARES_ITSELF. Writes MIDI files in that same
  MIDI-folder layout under its data_dir (music21 Bach chorales -> Piano/Guitar/Strings/Bass
  plus procedural Drums, and procedural songs whose densities and strengths span their
  ranges; cmt.standin), then goes through the same encoding.

Record: `tokens` int32 [N, 9] in model column order (time_encoding without the training +1),
`prefix` int32 [7, 3] (the official constant prefix: metadata genre is "N/A"), `length` = N
(= de_len, EOS row included), `id`.

Batches (train.py's layout, cut to config.data.seq_len): `x` [B, L, 9] (time_encoding + 1 on
rows before the EOS row), `y` [B, L, 9] (the next rows), `loss_mask` [B, L] float (positions
< de_len: one past the EOS target, as decoder_mask), `prefix` [B, 7, 3]; eval batches add
`mask` (PadToMultiple's row validity). Longer songs keep their first L + 1 rows (the official
trains whole songs of <= 10,000 rows), or with `config.data.crop = "bar"` the L + 1 rows
from a random Bar row (training windows shorter than the songs then cover every bar and tick).
"""
import glob
import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from cmt import encoding, standin
from common.data import pipeline, sources
from common.errors import ConfigError

VALIDATION_EVERY = 20


def _features():
    return tfds.features.FeaturesDict({
        "tokens": tfds.features.Tensor(shape=(None, 9), dtype=np.int32),
        "prefix": tfds.features.Tensor(shape=(7, 3), dtype=np.int32),
        "length": np.int32,
        "id": tfds.features.Text(),
    })


def _record(song_id: str, raw: np.ndarray) -> dict:
    return {"tokens": raw[:, encoding.RAW_TO_MODEL].astype(np.int32), "prefix": encoding.DEFAULT_PREFIX,
            "length": np.int32(len(raw)), "id": song_id}


def pianoroll_to_midi(npz_path: str, midi_path: str) -> str:
    """src/pianoroll2midi.py: pypianoroll.load + write (tracks Drums/Piano/Guitar/Bass/Strings)."""
    try:
        import pypianoroll
    except ImportError as e:
        raise ImportError(f"{npz_path}: reading LPD pianorolls needs `pip install pypianoroll`") from e
    pypianoroll.write(midi_path, pypianoroll.load(npz_path))
    return midi_path


def _songs(root: str):
    """(id, MIDI path) of every song under root, sorted by id; pianorolls converted to MIDI."""
    mids = sorted(glob.glob(os.path.join(root, "**", "*.mid"), recursive=True)
                  + glob.glob(os.path.join(root, "**", "*.midi"), recursive=True))
    npzs = sorted(glob.glob(os.path.join(root, "**", "*.npz"), recursive=True))
    if not mids and not npzs:
        raise FileNotFoundError(f"no .mid/.midi or LPD .npz files under {root!r}")
    tmp = tempfile.mkdtemp(prefix="lpd_midi_") if npzs else None
    for path in npzs:
        song_id = os.path.basename(os.path.dirname(path))      # the MSD id (pianoroll2midi names the MIDI by it)
        yield song_id, pianoroll_to_midi(path, os.path.join(tmp, song_id + ".mid"))
    for path in mids:
        yield os.path.splitext(os.path.basename(path))[0], path


def _examples(root: str, validation: bool, max_len: int = encoding.MAX_LEN):
    songs = sorted(_songs(root))
    for i, (song_id, path) in enumerate(songs):
        if (i % VALIDATION_EVERY == VALIDATION_EVERY - 1) != validation:
            continue
        raw, _ = encoding.encode_midi(path, check_meter=False)  # LPD is 4/4 throughout (its cleansing rule)
        if len(raw) > max_len:
            continue
        yield song_id, _record(song_id, raw)


class Lpd5Cp(tfds.core.GeneratorBasedBuilder):
    """LPD-5-cleansed as compound words (cmt.encoding)."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Put lpd_5_cleansed (the .npz pianorolls) or the MIDI folder the official "
                                    "src/midi2numpy_mix.py reads into manual_dir.")

    def _info(self):
        return self.dataset_info_from_configs(features=_features())

    def _split_generators(self, dl_manager):
        root = dl_manager.manual_dir
        return {"train": _examples(root, False), "validation": _examples(root, True)}

    def _generate_examples(self):  # pragma: no cover - tfds calls the generators above
        raise NotImplementedError


class CmtStandinConfig(tfds.core.BuilderConfig):
    def __init__(self, *, chorales: int, procedural: int, bars: int, **kw):
        super().__init__(**kw)
        self.chorales, self.procedural, self.bars = chorales, procedural, bars


def write_standin_midi(root: str, chorales: int, procedural: int, bars: int, seed: int = 0) -> list[str]:
    """The stand-in's MIDI folder: chorales (4/4 ones with >20 notes per part) and
    procedural songs; returns the paths."""
    import music21
    os.makedirs(root, exist_ok=True)
    paths, rng = [], np.random.default_rng(seed)
    names = sorted(str(p) for p in music21.corpus.getComposer("bach"))
    for path in names:
        if len([p for p in paths if "bwv" in p]) >= chorales:
            break
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            score = music21.corpus.parse(path)
            sigs = {ts.ratioString for ts in score.recurse().getElementsByClass("TimeSignature")}
            if sigs != {"4/4"} or len(score.parts) < 4:
                continue
            tracks = standin.chorale_song(path, drums=True, seed=len(paths))
        except Exception:  # noqa: BLE001 - a corpus file music21 cannot parse is skipped
            continue
        if min(len(v) for v in tracks.values()) < encoding.MIN_NOTES:
            continue
        paths.append(standin.write(tracks, os.path.join(root, f"{name}.mid")))
    for i in range(procedural):
        while True:                          # redraw a song whose every track has <= 20 notes (all filtered)
            tracks = standin.procedural_song(rng, bars)
            if max(len(v) for v in tracks.values()) >= encoding.MIN_NOTES:
                break
        paths.append(standin.write(tracks, os.path.join(root, f"proc{i:03d}.mid")))
    return paths


class CmtStandin(tfds.core.GeneratorBasedBuilder):
    """The CPU stand-in for LPD-5 (spec §6.6), generated in the MIDI-folder layout."""
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": "procedural songs: Euclidean rhythms, one ensemble per song, 16 bars (default)"}
    PREPARES_ITSELF = True
    BUILDER_CONFIGS = [
        CmtStandinConfig(name="default", chorales=40, procedural=200, bars=16,
                         description="40 chorales + 200 procedural 16-bar songs"),
        CmtStandinConfig(name="small", chorales=6, procedural=14, bars=6,
                         description="6 chorales + 14 procedural 6-bar songs (tests)"),
    ]

    def _info(self):
        return self.dataset_info_from_configs(features=_features())

    def _split_generators(self, dl_manager):
        c = self.builder_config
        root = os.path.join(str(dl_manager.download_dir), "cmt_standin_midi", c.name)
        write_standin_midi(root, c.chorales, c.procedural, c.bars)
        return {"train": _examples(root, False), "validation": _examples(root, True)}

    def _generate_examples(self):  # pragma: no cover
        raise NotImplementedError


# ====================================================================== pipelines
def source(config, split: str):
    d = config.data
    return sources.data_source(d.name, split, d.data_dir, d.builder)


def bar_start(ex: dict, rng: np.random.Generator) -> int:
    """A random Bar row of the song (the start of a `crop = "bar"` window)."""
    tokens = np.asarray(ex["tokens"])
    bars = np.flatnonzero((tokens[:, 0] == encoding.BAR) & (tokens[:, 1] == encoding.TYPE_M))
    return int(rng.choice(bars)) if len(bars) else 0


def element(ex: dict, seq_len: int, start: int = 0) -> dict:
    """train.py's x / y / mask of one song from row `start` (0: the official whole song),
    cut or zero-padded to seq_len positions."""
    tokens, n = np.asarray(ex["tokens"], np.int32)[start:], int(ex["length"]) - start
    rows = np.zeros((seq_len + 1, 9), np.int32)
    rows[:min(len(tokens), seq_len + 1)] = tokens[:seq_len + 1]
    x, y = rows[:-1].copy(), rows[1:]
    x[:min(n - 1, seq_len), 7] += 1                       # p_beat + 1 before the EOS row (train.py)
    mask = (np.arange(seq_len) < n).astype(np.float32)    # decoder_mask[:, :L]: one past the EOS target
    return {"x": x, "y": y, "loss_mask": mask, "prefix": np.asarray(ex["prefix"], np.int32)}


def train_dataset(config, split, process_index, process_count):
    d = config.data
    src = source(config, split)
    n = len(src)
    b = int(config.batch_size)
    if n < b:
        raise ValueError(f"split {split!r} of {d.name!r} has {n} songs, fewer than one batch of {b}")
    order = None
    if not d.shuffle:                                      # train.py: fixed order, remainder dropped
        order = lambda epoch: np.arange((n // b) * b)      # noqa: E731
    crop = d.get("crop", "start")
    if crop not in ("start", "bar"):
        raise ConfigError(f"config.data.crop = {crop!r}: 'start' (the official: each song from its first row) "
                          f"or 'bar' (a window from a random Bar row)")

    def transform(ex, rng):
        return element(ex, d.seq_len, bar_start(ex, rng) if crop == "bar" else 0)
    return pipeline.train_dataset(src, transform, b, config.seed, process_index,
                                  process_count, d.num_threads, d.prefetch, order_fn=order)


def eval_dataset(config, split, process_index, process_count):
    d = config.data
    return pipeline.eval_dataset(source(config, split), lambda ex: element(ex, d.seq_len),
                                 int(config.eval_batch_size), process_index, process_count, d.num_threads,
                                 d.prefetch)
