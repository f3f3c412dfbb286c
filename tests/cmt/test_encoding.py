"""The compound-word encoder against the official encoder's golden fixtures (spec §6.3 and
§10.6, produced by running src/midi2numpy_mix.py), the exact round trip, and bad input."""
import mido
import numpy as np
import pytest

from cmt import encoding, standin

# spec §6.3: bar 0 of the procedural song in the raw layout, as the official encoder prints it
BAR0 = [[1, 17, 5, 0, 0, 0, 0, 0, 112, 0], [1, 1, 4, 0, 0, 1, 1, 0, 112, 0], [2, 0, 0, 37, 2, 1, 0, 0, 112, 0],
        [1, 1, 4, 0, 0, 2, 3, 0, 112, 0], [2, 0, 0, 61, 5, 2, 0, 0, 112, 0], [2, 0, 0, 65, 5, 2, 0, 0, 112, 0],
        [2, 0, 0, 68, 5, 2, 0, 0, 112, 0], [1, 5, 3, 0, 0, 2, 1, 4, 112, 3], [2, 0, 0, 73, 3, 2, 0, 4, 112, 3],
        [1, 9, 2, 0, 0, 1, 2, 8, 112, 7], [2, 0, 0, 37, 2, 1, 0, 8, 112, 7], [2, 0, 0, 43, 2, 1, 0, 8, 112, 7],
        [1, 13, 1, 0, 0, 1, 1, 12, 112, 10], [2, 0, 0, 43, 2, 1, 0, 12, 112, 10]]


def _p_beat(i_beat, n_beat=112):
    return int(i_beat / n_beat * 100)


def test_procedural_song_gives_the_official_87_rows(tmp_path):
    raw, meta = encoding.encode_midi(standin.write(standin.fixture_song(), str(tmp_path / "proc.mid")))
    assert raw.shape == (87, 10) and meta["n_beat"] == 112 and meta["instruments"] == ["Drums", "Piano"]
    np.testing.assert_array_equal(raw[:14], BAR0)
    for b in range(1, 6):                                  # bars 1-5 repeat bar 0, i_beat + 16 per bar
        want = np.array(BAR0)
        want[:, 7] += 16 * b
        want[:, 9] = [_p_beat(i) for i in want[:, 7]]
        np.testing.assert_array_equal(raw[14 * b:14 * (b + 1)], want)
    np.testing.assert_array_equal(raw[84:], [[1, 17, 1, 0, 0, 0, 0, 96, 112, 85],
                                             [1, 17, 1, 0, 0, 0, 0, 112, 112, 100], [0] * 10])


def test_model_order_is_train_py_reordering():
    raw = np.array(BAR0[:3] + [[0] * 10])
    x = encoding.to_model_order(raw)
    np.testing.assert_array_equal(x[1], [1, 1, 4, 0, 0, 1, 1, 0 + 1, 0])
    np.testing.assert_array_equal(x[3], [0] * 9)          # EOS keeps time_encoding 0


@pytest.mark.parametrize("drums", [False, True])
def test_chorale_and_round_trip_are_exact(tmp_path, drums):
    path = standin.write(standin.chorale_song("bach/bwv66.6", drums=drums), str(tmp_path / "bwv66.mid"))
    raw, meta = encoding.encode_midi(path)
    if not drums:
        assert raw.shape == (337, 10) and meta["instruments"] == ["Piano", "Guitar", "Bass", "Strings"]
    else:
        assert meta["instruments"][0] == "Drums" and raw[:, 6].max() > 1
    encoding.words_to_midi(raw, str(tmp_path / "back.mid"))
    again, meta2 = encoding.encode_midi(str(tmp_path / "back.mid"))
    np.testing.assert_array_equal(again, raw)
    assert meta2["n_beat"] == meta["n_beat"]


def test_procedural_songs_round_trip_and_span_the_attributes(tmp_path):
    rows = []
    for seed in range(4):
        path = standin.write(standin.procedural_song(np.random.default_rng(seed)), str(tmp_path / f"{seed}.mid"))
        raw, _ = encoding.encode_midi(path)
        encoding.words_to_midi(raw, str(tmp_path / "back.mid"))
        np.testing.assert_array_equal(encoding.encode_midi(str(tmp_path / "back.mid"))[0], raw)
        rows.append(raw)
    raw = np.concatenate(rows)
    bars = raw[raw[:, 1] == encoding.BAR]
    assert bars[:, 2].min() <= 2 and bars[:, 2].max() >= 15                # bar density 0..16 onsets
    # each bar plays the Euclidean rhythm of its density: beat ticks floor(16 j / d)
    for song in rows:
        bar_rows = np.flatnonzero((song[:, 0] == encoding.TYPE_M) & (song[:, 1] == encoding.BAR))
        for a, b in zip(bar_rows[:-1], bar_rows[1:]):
            seg = song[a + 1:b]
            ticks = sorted(set(seg[seg[:, 0] == encoding.TYPE_M, 1] - 1))
            assert ticks == standin.euclidean_ticks(int(song[a, 2]) - 1)
    assert raw[:, 6].max() >= 10 and (raw[:, 6] == 1).any()                 # strengths
    assert (raw.max(0)[:7] < np.array(encoding.VOCAB)[[1, 0, 2, 3, 4, 5, 6]]).all()


def _write(path, *messages, tpq=480):
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)
    midi.tracks.append(mido.MidiTrack(list(messages)))
    midi.save(path)
    return path


def test_bad_input_names_the_file(tmp_path):
    empty = _write(str(tmp_path / "empty.mid"), mido.MetaMessage("set_tempo", tempo=500000))
    with pytest.raises(encoding.MidiError, match="empty.mid.*no notes"):
        encoding.encode_midi(empty)
    notes = [m for t in range(30) for m in (mido.Message("note_on", note=60, velocity=90, time=0),
                                            mido.Message("note_off", note=60, velocity=0, time=120))]
    waltz = _write(str(tmp_path / "waltz.mid"), mido.MetaMessage("time_signature", numerator=3, denominator=4),
                   *notes)
    with pytest.raises(encoding.MidiError, match="waltz.mid.*time signature 3/4"):
        encoding.encode_midi(waltz)
    (tmp_path / "junk.mid").write_bytes(b"RIFF not a midi")
    with pytest.raises(encoding.MidiError, match="junk.mid"):
        encoding.encode_midi(str(tmp_path / "junk.mid"))
    # a track name outside the five LPD-5 names (the official encoder's KeyError)
    odd = standin.write({"Piano": [[i * 120, 60, 120] for i in range(30)]}, str(tmp_path / "odd.mid"))
    midi = mido.MidiFile(odd)
    midi.tracks[2][0] = mido.MetaMessage("track_name", name="Flute")
    midi.save(odd)
    with pytest.raises(encoding.MidiError, match="odd.mid.*'Flute'"):
        encoding.encode_midi(odd)


def test_training_windows_from_the_first_row_or_a_random_bar(tmp_path):
    from cmt.data import bar_start, element
    raw, _ = encoding.encode_midi(standin.write(standin.fixture_song(), str(tmp_path / "f.mid")))
    ex = {"tokens": raw[:, encoding.RAW_TO_MODEL], "length": len(raw), "prefix": encoding.DEFAULT_PREFIX}
    whole = element(ex, 100)                                        # 87 rows: the whole song, padded
    np.testing.assert_array_equal(whole["y"][:86], ex["tokens"][1:])
    assert whole["loss_mask"].sum() == 87 and whole["x"][0, 7] == ex["tokens"][0, 7] + 1
    starts = {bar_start(ex, np.random.default_rng(seed)) for seed in range(40)}
    bars = set(np.flatnonzero((ex["tokens"][:, 0] == encoding.BAR) & (ex["tokens"][:, 1] == encoding.TYPE_M)))
    assert starts <= bars and len(starts) > 3                      # random Bar rows
    start = sorted(starts)[1]                                       # a bar with 16 rows after it
    w = element(ex, 16, start)
    np.testing.assert_array_equal(w["y"], ex["tokens"][start + 1:start + 17])
    assert w["x"][0, 0] == encoding.BAR and w["loss_mask"].sum() == min(16, 87 - start)
    assert (w["x"][:, 7] == ex["tokens"][start:start + 16, 7] + (np.arange(start, start + 16) < 86)).all()
