"""Controlled generation: a video (or a control array) -> MIDI, a piano roll and metrics.

  python -m cmt.generate --config=configs/cmt/cmt.py --checkpoint=converted/cmt \
      --video clip.mp4 --out song.mid                      # official thresholds, tempo estimated
  python -m cmt.generate --config=configs/cmt/cmt.py:demo --checkpoint=/tmp/cmt_demo \
      --ramp 16 --out /tmp/ramp.mid                        # synthetic density ramp 0..15
  python -m cmt.generate ... --controls inference/clip.npz --out song.mid   # official .npz ('input')

The loop is model.py `inference_from_scratch` (spec §7.1) with C = config.generate.
control_degree: the constant prefix, the first Bar row with the first control's density,
then per token: sample type then the six attributes (type p 0.9; barbeat t 1.2; pitch p 0.9;
duration t 2, p 0.9; instr, strength, density p 0.9); a sampled Bar at a bar control is
replaced with probability C by the control's density; a beat at or past a visual-beat
control is replaced (always, as the code does) by forced Drums, Piano, Guitar beat tokens
with the control's strength; generation stops when the controls run out, at EOS, or when
p_beat reaches 102. Rows with strength 1 are dropped first (gen_midi_conditional.py).
Unlike the official loop, every step is one recurrent update (constant memory, linear time)
instead of a full pass over the prefix; upstream edge cases that crash (a Note before any M
token) start from beat 1.

Outputs: OUT.mid (five tracks, 120 qpm grid; `--tempo` writes the video tempo instead),
OUT.png (piano roll with requested and achieved per-bar density), OUT.json (the official
online control errors, the offline density / strength following and time error, the
matching score, and the quality metrics H, GS, SI; definitions in cmt/metrics.py). Inputs are
checked before anything is written.
"""
import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from cmt import encoding, metrics, video
from common.sampling import Setting, sample_categorical, sample_fields

# model.py forward_output_sampling
TYPE_SETTING = Setting(1.0, 0.9)
SETTINGS = {"barbeat": Setting(1.2, None), "pitch": Setting(1.0, 0.9), "duration": Setting(2.0, 0.9),
            "instr": Setting(1.0, 0.9), "onset_density": Setting(1.0, 0.9), "beat_density": Setting(1.0, 0.9)}
STRENGTH_TRACKS = (1, 2, 3)                       # Drums, Piano, Guitar get the forced beats
SI_AUTO_SECONDS = 64.0                            # the structureness indicator by default up to this length


class Sampler:
    """Jitted recurrent steps of one model: feed a row, get the next proposed row."""

    def __init__(self, model, variables):
        self.model, self.variables = model, variables

        def feed_prefix(cache, row):
            return model.apply(variables, row, cache, method=model.step_prefix)[1]

        def feed(cache, row, rng):
            h, cache = model.apply(variables, row, cache, method=model.step_music)
            k_type, k_rest = jax.random.split(rng)
            t = sample_categorical(k_type, model.apply(variables, h, method=model.type_logits), *TYPE_SETTING)
            s = sample_fields(k_rest, model.apply(variables, h, t, method=model.attribute_logits), SETTINGS)
            row = jnp.stack([s["barbeat"], t, s["beat_density"], s["pitch"], s["duration"], s["instr"],
                             s["onset_density"]], -1)
            return cache, row

        self.feed_prefix, self.feed = jax.jit(feed_prefix), jax.jit(feed)

    def start(self, prefix: np.ndarray):
        cache = self.model.apply(self.variables, 1, method=self.model.init_cache)
        for r in prefix:
            cache = self.feed_prefix(cache, jnp.asarray(r[None], jnp.int32))
        return cache


def controlled_generation(sampler: Sampler, controls: np.ndarray, C: float = 0.7, seed: int = 0,
                          prefix: np.ndarray = encoding.DEFAULT_PREFIX, max_tokens: int = 10000,
                          progress: bool = False) -> dict:
    """inference_from_scratch with the recurrent sampler. Returns the model-order rows [N, 9],
    the official error lists, and what was forced."""
    vlog = np.asarray(controls)
    rand = np.random.default_rng(seed)                 # the control draws (np.random.rand upstream)
    rng = jax.random.PRNGKey(seed)
    n_beat = int(vlog[0][4])
    p_beat_of = lambda bar, beat: round((bar * 16 + beat - 1) / n_beat * 100) + 1  # noqa: E731
    first = np.array([17, 1, vlog[0][1], 0, 0, 0, 0, 1, 0], np.int64)
    result = [first]
    cache = sampler.start(prefix)
    cache, proposal = sampler.feed(cache, jnp.asarray(first[None], jnp.int32), jax.random.fold_in(rng, 0))
    cur_vlog, cur_track, cur_bar, cur_beat, cur_density = 1, 0, 0, 1, 1
    acc_beat_num, beat_num, acc_note_num, note_num, replace = int(vlog[0][1]), {}, 0, 0, False
    err_strength, err_density, forced = [], [], 0
    bars_total = int((vlog[:, 0] == 17).sum())
    bar_iter = None
    if progress:
        from tqdm import tqdm
        bar_iter = tqdm(total=bars_total, desc="bars", unit="bar", file=sys.stderr)
    for idx in range(1, max_tokens):
        arr = np.asarray(proposal[0]).astype(np.int64)
        if arr[1] == 1:
            replace = False
        if arr[1] == 2 and arr[5] == 0:
            arr[5] = 1                                   # upstream: a note without instrument -> Drums
        if cur_vlog >= len(vlog):
            break
        row = vlog[cur_vlog]
        if row[0] == 17 and arr[0] == 17:
            err_density.append(abs(len(beat_num) - acc_beat_num))
            if rand.random() < C:
                arr = np.array([17, 1, row[1], 0, 0, 0, 0])
                beat_num, acc_beat_num, replace = {}, int(row[1]), True
                forced += 1
            cur_vlog += 1
        elif row[0] < 17 and arr[0] >= row[0]:
            err_strength.append(abs(acc_note_num - note_num))
            if cur_track == 0:
                cur_density = int(arr[2])
                rand.random()                            # drawn upstream, unused
                if arr[0] == 17:
                    cur_density = 1
            arr = np.array([row[0], 1, cur_density, 0, 0, STRENGTH_TRACKS[cur_track], row[2]])
            replace, acc_note_num, note_num = True, int(row[2]), 0
            forced += 1
            cur_track += 1
            if cur_track >= len(STRENGTH_TRACKS):
                cur_track, cur_vlog = 0, cur_vlog + 1
        if arr[1] == 1:
            beat_num[int(arr[0])] = 1
        elif arr[1] == 2 and replace:
            note_num += 1
        if arr[0] == 17:
            cur_bar += 1
            if bar_iter is not None:
                bar_iter.update(1)
        if arr[1] == 1:
            cur_beat = 1 if arr[0] == 17 else int(arr[0])
        p_beat = p_beat_of(cur_bar, cur_beat)
        if p_beat >= 102:
            break
        full = np.concatenate([arr, [p_beat, min(cur_bar * 16 + cur_beat - 1, encoding.VOCAB[8] - 1)]])
        result.append(full)
        if arr[1] == 0:
            break
        cache, proposal = sampler.feed(cache, jnp.asarray(full[None], jnp.int32), jax.random.fold_in(rng, idx))
    if bar_iter is not None:
        bar_iter.close()
    return {"words": np.stack(result), "err_strength": err_strength, "err_density": err_density, "forced": forced}


def words_to_raw(words: np.ndarray) -> np.ndarray:
    """Model-order rows -> the raw layout numpy2midi reads (gen_midi_conditional: [1,0,2,3,4,5,6])."""
    return np.asarray(words)[:, [1, 0, 2, 3, 4, 5, 6]].astype(np.int32)


def piano_roll_picture(tracks: dict, follow: dict, title: str = "") -> np.ndarray:
    from common.piano_roll import piano_roll
    curves = []
    if follow.get("bars"):
        curves = [("requested density", follow["requested"], (0, 0, 0)),
                  ("achieved", follow["achieved"], (220, 30, 30))]
    return piano_roll({k: v for k, v in tracks.items() if v}, curves=curves, curve_range=(0, 16), title=title,
                      px_per_tick=3, px_per_pitch=2)


def load_model(config, checkpoint: str):
    from common import checkpoint as ckpt
    from common.models import create_model
    model = create_model(config.model.name, **{**config.model.kwargs.to_dict(), "dropout": 0.0})
    variables = ckpt.load_any(checkpoint)
    if "buffers" not in variables:
        raise ValueError(f"{checkpoint}: no positional-encoding buffer ('buffers/pe'); convert the official "
                         f"checkpoint with python -m cmt.convert")
    return model, {"params": variables["params"], "buffers": variables["buffers"]}


def run(config, checkpoint: str, out: str, controls: np.ndarray, *, C: float, seed: int,
        tempo: float | None = None, progress: bool = True, structureness: str = "auto") -> dict:
    controls = controls[controls[:, 2] != 1]           # gen_midi_conditional.py drops strength-1 rows
    model, variables = load_model(config, checkpoint)
    res = controlled_generation(Sampler(model, variables), controls, C, seed,
                                max_tokens=int(config.generate.max_tokens), progress=progress)
    words = res["words"]
    tracks = encoding.decode(words_to_raw(words), strict=False)
    follow = metrics.density_following(words, controls)
    report = {"tokens": int(len(words)), "notes": metrics.note_count(words),
              "notes_written": sum(len(v) for v in tracks.values()), "forced_tokens": res["forced"],
              **metrics.official_control_errors(res["err_strength"], res["err_density"]), **follow,
              **metrics.strength_following(tracks, controls), "time_error": metrics.time_error(words, controls),
              "matching_score": metrics.matching_score(words, controls),
              "pitch_class_entropy": metrics.pitch_class_entropy(tracks),
              "grooving_similarity": metrics.grooving_similarity(tracks), "C": C, "seed": seed}
    seconds = len(follow.get("achieved", [])) * 240.0 / (tempo or 120.0)
    if structureness == "on" or (structureness == "auto" and seconds <= SI_AUTO_SECONDS):
        report.update(metrics.structureness_indicator(tracks, tempo or 120.0))
    else:
        report["SI"] = f"skipped ({seconds:.0f} s of music; --structureness on computes it, O(frames^3))"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    encoding.write_midi(tracks, out, tempo_qpm=tempo)
    stem = os.path.splitext(out)[0]
    from common.pictures import save_png
    save_png(stem + ".png", piano_roll_picture(tracks, follow, f"{os.path.basename(out)}: C = {C}, "
                                                               f"density spearman {follow.get('spearman', float('nan')):.2f}"))
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1)
    np.save(stem + "_words.npy", words)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m cmt.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="config file[:preset], e.g. configs/cmt/cmt.py:demo")
    p.add_argument("--checkpoint", required=True, help="training workdir or converted checkpoint")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="a video file (decoded with OpenCV)")
    src.add_argument("--controls", help="an official control .npz (array 'input', rows of 6)")
    src.add_argument("--ramp", type=int, metavar="BARS", help="a synthetic density ramp 0..15 over BARS bars")
    p.add_argument("--beats_per_bar", type=int, default=0,
                   help="--ramp: visual beats per bar (random ticks, strengths 2..10; default 0: bar rows only)")
    p.add_argument("--out", required=True, help="output .mid (the .png / .json go beside it)")
    p.add_argument("--C", type=float, default=None, help="control degree (default: config.generate.control_degree)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--tempo", type=float, default=None, help="video tempo in bpm (default: estimated)")
    p.add_argument("--structureness", default="auto", choices=["auto", "on", "off"],
                   help="MusDr's structureness indicator (auto: for music up to 64 s; its scape plot is O(frames^3))")
    p.add_argument("--beats", default="simple", choices=["simple", "visbeat"],
                   help="visual beats: the simple directogram flux, or visbeat3's envelope and peak picking")
    p.add_argument("--percentiles", default="official", choices=["official", "clip"],
                   help="density thresholds: stat_mix.py's, or re-derived from the clip's own speeds")
    args = p.parse_args(argv)
    path, _, arg = args.config.partition(":")
    config = _load_config(path, arg or None)
    if args.video:
        v = video.video_controls(args.video, args.tempo, args.percentiles, args.beats)
        controls, tempo = v["input"], v["tempo"]
    elif args.controls:
        controls, tempo = video.load_controls(args.controls), args.tempo
    else:
        controls = video.synthetic_controls(args.ramp, args.tempo or 120.0, beats_per_bar=args.beats_per_bar)
        tempo = args.tempo
    controls = video.check_controls(controls, args.video or args.controls or "<ramp>")
    C = config.generate.control_degree if args.C is None else args.C
    seed = config.generate.seed if args.seed is None else args.seed
    report = run(config, args.checkpoint, args.out, controls, C=C, seed=seed, tempo=tempo,
                 structureness=args.structureness)
    print(json.dumps({k: v for k, v in report.items() if k not in ("requested", "achieved")}, indent=1))
    print("requested density per bar:", report.get("requested"))
    print("achieved  density per bar:", report.get("achieved"))
    if report.get("bars"):
        print(f"density following over {report['bars']} bars: Spearman {report['spearman']:.2f}, mean |achieved - "
              f"requested| {report['density_mae']:.2f} onset ticks per bar, error rate {report['density_error_rate']:.3f} "
              f"(/ 9.9; the paper's Table 4: 0.107), within +-1: {100 * report['within_1']:.0f} %; official online "
              f"density error {report['density_error']:.3f}, strength error {report['strength_error']:.3f}")
    return report


def _load_config(path: str, arg):
    import importlib.util
    spec = importlib.util.spec_from_file_location("cmt_generate_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


if __name__ == "__main__":
    main()
