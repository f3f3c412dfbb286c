"""MIDI <-> compound words, exactly as wzk1015/video-bgm-generation src/midi2numpy_mix.py and
src/numpy2midi_mix.py (which read and write through muspy).

MIDI library: **mido**. muspy's default MIDI reader is itself built on mido and works in
integer ticks; the official grid comes from Python `round(tick * 4 / ticks_per_beat)` of
those integer ticks, so reading the messages with mido and repeating muspy's bookkeeping
(`_read_mido` below) reproduces the official timing bit for bit. pretty_midi converts to
seconds first and miditoolkit re-quantises on its own, so either would need an inverse
mapping to get the same ticks back.

One compound word (CP) row in the stored ("raw") layout of the official npz:
  [type, beat, density, pitch, duration, instr, strength, i_beat, n_beat, p_beat]
and in the model's column order (train.py re-orders with RAW_TO_MODEL and adds 1 to p_beat):
  [barbeat, type, beat_density, pitch, duration, instr, onset_density, p_beat + 1, i_beat].
Tick = one 16th note, 16 per bar (4/4). See ../shared/specs/cmt.md §3.1, §6.3-6.4.
"""
import math
import os
from dataclasses import dataclass, field

import mido
import numpy as np

RESOLUTION = 16                   # ticks per bar (midi2numpy_mix.RESOLUTION)
MAX_LEN = 10000                   # DECODER_MAX_LEN: longer songs are skipped
MIN_NOTES = 21                    # tracks with <= 20 notes are dropped
INSTRUMENTS = ("None", "Drums", "Piano", "Guitar", "Bass", "Strings")   # instr_type vocabulary
PROGRAMS = {"Drums": 114, "Piano": 0, "Guitar": 24, "Bass": 33, "Strings": 41}   # numpy2midi_mix
TYPE_EOS, TYPE_M, TYPE_NOTE = 0, 1, 2
BAR = 17                          # barbeat of a Bar token; Beat_k = k + 1
RAW = dict(type=0, beat=1, density=2, pitch=3, duration=4, instr=5, strength=6, i_beat=7, n_beat=8, p_beat=9)
RAW_TO_MODEL = [1, 0, 2, 3, 4, 5, 6, 9, 7]            # train.py: stored -> model columns
MODEL_FIELDS = ("barbeat", "type", "beat_density", "pitch", "duration", "instr", "onset_density",
                "time_encoding", "i_beat")
VOCAB = (18, 3, 18, 129, 18, 6, 20, 102, 5025)        # gen_midi_conditional.decoder_n_class
INIT_VOCAB = (7, 1, 6)                                # genre, key, instrument
GENRES = ("None", "Metal", "Country", "Dance", "Electronic", "Pop", "Rock")
# train.py / inference_from_scratch: one constant prefix (Pop, then every instrument)
DEFAULT_PREFIX = np.array([[5, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 0, 4], [0, 0, 5]], np.int32)


class MidiError(ValueError):
    """A MIDI file the encoder cannot take; the message names the file."""


@dataclass
class Track:
    name: str | None
    program: int
    is_drum: bool
    notes: list = field(default_factory=list)   # [time, pitch, duration, velocity] in ticks


@dataclass
class Song:
    resolution: int
    tracks: list
    event_times: list                            # tempo / key / time signature / lyric / annotation ticks
    time_signatures: list                        # (time, numerator, denominator)

    def adjust_resolution(self, target: int = RESOLUTION // 4) -> "Song":
        """muspy Music.adjust_resolution(target): t -> round(t * target / resolution), a note's
        duration -> round(end * f) - round(start * f) (zero is possible)."""
        f = target / self.resolution
        r = lambda t: round(t * f)                       # noqa: E731 - Python round: half to even
        for tr in self.tracks:
            tr.notes = [[r(t), p, r(t + d) - r(t), v] for t, p, d, v in tr.notes]
        self.event_times = [r(t) for t in self.event_times]
        self.time_signatures = [(r(t), n, d) for t, n, d in self.time_signatures]
        self.resolution = target
        return self

    def end_time(self) -> int:
        """muspy Music.get_end_time: the last note offset or event time (0 if none)."""
        ends = [t + d for tr in self.tracks for t, _, d, _ in tr.notes] + list(self.event_times)
        return max(ends, default=0)


def _read_mido(path: str) -> Song:
    """muspy.inputs.midi.from_mido (duplicate_note_mode 'fifo'): one track per (MIDI track,
    program, channel), created when its first note closes or control change arrives; the
    track name comes from the MIDI track (track 0's name is the song title in type-1
    files); notes sorted by (time, pitch, duration, velocity)."""
    try:
        midi = mido.MidiFile(path)
    except Exception as e:  # noqa: BLE001 - mido raises many types for a broken file
        raise MidiError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from e
    if midi.type == 2:
        raise MidiError(f"{path}: type-2 (asynchronous) MIDI files are not supported")
    event_times, time_signatures, track_names, tracks = [], [], [None] * len(midi.tracks), []
    per_track = []
    for t_idx, midi_track in enumerate(midi.tracks):
        time, programs, active, subtracks = 0, [0] * 16, {}, {}

        def active_track(program, channel):
            key = (program, channel)
            if key not in subtracks:
                subtracks[key] = Track(None, program, channel == 9)
            return subtracks[key]

        for msg in midi_track:
            time += msg.time
            kind = msg.type
            if kind in ("set_tempo", "key_signature", "lyrics", "marker", "text"):
                event_times.append(time)
            elif kind == "time_signature":
                event_times.append(time)
                time_signatures.append((time, msg.numerator, msg.denominator))
            elif kind == "track_name":
                if not (midi.type == 0 or t_idx == 0):
                    track_names[t_idx] = msg.name
            elif kind == "program_change":
                programs[msg.channel] = msg.program
            elif kind == "note_on" and msg.velocity > 0:
                active.setdefault((msg.channel, msg.note), []).append((time, msg.velocity))
            elif kind == "note_off" or (kind == "note_on" and msg.velocity == 0):
                ons = active.get((msg.channel, msg.note))
                if not ons:
                    continue
                onset, velocity = ons.pop(0)
                active_track(programs[msg.channel], msg.channel).notes.append([onset, msg.note, time - onset, velocity])
            elif kind == "control_change":
                active_track(programs[msg.channel], msg.channel)
                event_times.append(time)                # muspy keeps it as a track annotation
            elif kind == "end_of_track":
                break
        for (channel, note), ons in active.items():
            for onset, velocity in ons:
                active_track(programs[channel], channel).notes.append([onset, note, time - onset, velocity])
        per_track.append(subtracks)
    for subtracks, name in zip(per_track, track_names):
        for tr in subtracks.values():
            tr.name = name
            tr.notes.sort(key=lambda n: (n[0], n[1], n[2], n[3]))
            tracks.append(tr)
    return Song(int(midi.ticks_per_beat), tracks, event_times, time_signatures)


def read_midi(path: str, check_meter: bool = True) -> Song:
    """The song on the 16th-note grid (muspy.read_midi + adjust_resolution(4)). Raises
    MidiError naming the file for an unreadable file, a song without notes, or (with
    `check_meter`) a time signature other than 4/4, which the 16-tick bar cannot hold."""
    if not os.path.isfile(path):
        raise MidiError(f"{path}: no such MIDI file")
    song = _read_mido(path)
    if not any(tr.notes for tr in song.tracks):
        raise MidiError(f"{path}: the MIDI file has no notes")
    if check_meter:
        bad = sorted({(n, d) for _, n, d in song.time_signatures if (n, d) != (4, 4)})
        if bad:
            raise MidiError(f"{path}: unsupported time signature {', '.join(f'{n}/{d}' for n, d in bad)}; "
                            f"the compound-word grid is 16 ticks per 4/4 bar")
    return song.adjust_resolution(RESOLUTION // 4)


def _beat_row(tick, i_beat, instr, density, strength, n_beat):
    return [TYPE_M, tick + 1, density + 1, 0, 0, instr, strength, i_beat, n_beat, int(i_beat / n_beat * 100)]


def _note_row(note, n_beat):
    time, pitch, duration, instr = note
    return [TYPE_NOTE, 0, 0, pitch + 1, duration + 1, instr, 0, time, n_beat, int(time / n_beat * 100)]


def _bar_rows(notes, i_bar, n_beat):
    """midi2numpy_mix.Bar.to_decoder_list: built backwards from the last note, a beat token
    before each (tick, instrument) group; density = #distinct ticks from this one on."""
    rows, n_beats = [], 0
    if notes:
        rows = [_note_row(notes[-1], n_beat)]
        prev, per_beat = notes[-1], 1
        for note in reversed(notes[:-1]):
            if note[0] % RESOLUTION != prev[0] % RESOLUTION or note[3] != prev[3]:
                rows = [_beat_row(prev[0] % RESOLUTION, prev[0], prev[3], n_beats, per_beat, n_beat)] + rows
                if note[0] % RESOLUTION != prev[0] % RESOLUTION:
                    n_beats += 1
                per_beat = 0
            rows = [_note_row(note, n_beat)] + rows
            per_beat += 1
            prev = note
        rows = [_beat_row(prev[0] % RESOLUTION, prev[0], prev[3], n_beats, per_beat, n_beat)] + rows
        n_beats += 1
    i = i_bar * RESOLUTION
    return [[TYPE_M, BAR, n_beats + 1, 0, 0, 0, 0, i, n_beat, int(i / n_beat * 100)]] + rows


def encode_song(song: Song, path: str = "<song>") -> tuple[np.ndarray, dict]:
    """(raw rows int32 [N, 10] ending with the zero EOS row, metadata). midi2numpy_mix.MIDI:
    n_beat from every event before the track filter, tracks with <= 20 notes dropped."""
    n_beat = song.end_time()
    if n_beat <= 0:
        raise MidiError(f"{path}: the song has zero length on the 16th-note grid")
    n_bars = math.ceil((n_beat + 1) / RESOLUTION)
    tracks = [tr for tr in song.tracks if len(tr.notes) >= MIN_NOTES]
    if not tracks:
        raise MidiError(f"{path}: no track has more than {MIN_NOTES - 1} notes (the official track filter)")
    bars = [[] for _ in range(n_bars)]
    for tr in tracks:
        if tr.name not in PROGRAMS:
            raise MidiError(f"{path}: track {tr.name!r} is not one of the five LPD-5 track names "
                            f"{', '.join(PROGRAMS)} (the encoder maps instruments by track name)")
        instr = INSTRUMENTS.index(tr.name)
        for t, p, d, _ in tr.notes:
            bars[t // RESOLUTION].append((t, p, min(RESOLUTION, d), instr))
    rows = []
    for i, notes in enumerate(bars):
        notes.sort(key=lambda n: n[0])                 # stable: ties keep track, then pitch order
        rows += _bar_rows(notes, i, n_beat)
    rows.append([0] * len(RAW))
    meta = {"de_len": len(rows), "n_beat": n_beat, "instruments": [tr.name for tr in tracks], "genre": "N/A"}
    return np.asarray(rows, np.int32), meta


def encode_midi(path: str, check_meter: bool = True) -> tuple[np.ndarray, dict]:
    """MIDI file -> (raw rows [N, 10], metadata); errors name the file."""
    return encode_song(read_midi(path, check_meter), path)


def to_model_order(raw: np.ndarray, training: bool = True) -> np.ndarray:
    """Raw rows -> model columns (train.py): re-ordered, p_beat + 1 on rows before the EOS
    row (time_encoding 0 stays for EOS/padding)."""
    x = np.asarray(raw)[..., RAW_TO_MODEL].copy()
    if training:
        eos = np.asarray(raw)[..., RAW["type"]] == TYPE_EOS
        x[..., 7] += np.where(eos, 0, 1)
    return x


def decode(words: np.ndarray, strict: bool = True) -> dict:
    """numpy2midi_mix.numpy2midi on raw-layout rows (at least the first 7 columns): notes
    per track name, [time, pitch, duration] on the 16th grid; stops at EOS. A note row with
    pitch, duration or instrument 0 (numpy2midi asserts against them) raises, or with
    `strict=False` is skipped (sampled music may hold such rows)."""
    tracks = {name: [] for name in PROGRAMS}
    n_bars, tick = -1, 0
    for w in np.asarray(words):
        kind = w[RAW["type"]]
        if kind == TYPE_M:
            if w[RAW["beat"]] == BAR:
                n_bars += 1
            elif 0 < w[RAW["beat"]] < BAR:
                tick = int(w[RAW["beat"]]) - 1
        elif kind == TYPE_NOTE:
            pitch, duration, instr = int(w[RAW["pitch"]]), int(w[RAW["duration"]]), int(w[RAW["instr"]])
            if pitch <= 0 or duration <= 0 or instr <= 0:
                if not strict:
                    continue
                raise ValueError(f"note row {list(w)} has pitch/duration/instr 0 (numpy2midi asserts them > 0)")
            tracks[INSTRUMENTS[instr]].append([n_bars * RESOLUTION + tick, pitch - 1, duration - 1])
        else:
            break
    return tracks


def write_midi(tracks: dict, path: str, tempo_qpm: float | None = None, ticks_per_beat: int = RESOLUTION // 4,
               velocity: int = 80) -> None:
    """muspy.write_midi of numpy2midi's Music: {track name: [[time, pitch, duration], ...]}
    in ticks of `ticks_per_beat` (4: the 16th grid), a meta track, then the five tracks in
    order with their names and programs (Drums on channel 9). No tempo event unless
    `tempo_qpm` is given (the official file plays at the default 120 qpm)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    meta = mido.MidiTrack()
    if tempo_qpm:
        meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_qpm), time=0))
    meta.append(mido.MetaMessage("end_of_track", time=0))
    midi.tracks.append(meta)
    for i, name in enumerate(PROGRAMS):
        channel = 9 if name == "Drums" else (i % 15) + (1 if i % 15 > 8 else 0)
        events = []
        for t, p, d in (n[:3] for n in tracks.get(name, [])):
            # at one tick: earlier notes end, then notes start, then zero-length notes end
            events.append((t, 1, mido.Message("note_on", channel=channel, note=p, velocity=velocity)))
            events.append((t + d, 0 if d else 2, mido.Message("note_off", channel=channel, note=p, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0),
                                mido.Message("program_change", channel=channel, program=PROGRAMS[name], time=0)])
        now = 0
        for t, _, msg in events:
            track.append(msg.copy(time=t - now))
            now = t
        track.append(mido.MetaMessage("end_of_track", time=0))
        midi.tracks.append(track)
    tmp = path + ".tmp"
    midi.save(tmp)
    os.replace(tmp, path)                                  # a failed write leaves no half file


def words_to_midi(words: np.ndarray, path: str, tempo_qpm: float | None = None) -> dict:
    """Raw rows -> MIDI file; returns the decoded tracks."""
    tracks = decode(words)
    write_midi(tracks, path, tempo_qpm)
    return tracks
