"""What a user hits first when a run, a workdir or a file is wrong (one test per case of the
reliability issue): nothing is deleted or erased that the user did not ask to delete, a
wrong workdir or config is refused with what differs, and every error names the file or
field and says what to do."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from common import checkpoint, train
from common.config import ConfigError, validate
from common.convert import NotAModelCheckpoint, load_state_dict
from common.metrics_writer import read_metrics
from common.runner import Run, checkpoint_run
from tests.common.configs import ROOT, load_config, tiny_config
from tests.conftest import require

STEPS = 4      # checkpoints at 2 and 4


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run of STEPS steps; tests copy its workdir before changing anything."""
    workdir = str(tmp_path_factory.mktemp("finished"))
    metrics = train.train_and_evaluate(tiny_config(num_train_steps=STEPS), workdir, progress=False)
    return workdir, metrics


def _copy(run, tmp_path, name="run"):
    dst = str(tmp_path / name)
    shutil.copytree(run[0], dst)
    return dst


def _tree_listing(path):
    return sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)


# ---------------------------------------------------------------- 1, 12: configs
@pytest.mark.parametrize("preset", ["nonsense", "TEST", "Demo"])
def test_unknown_preset_of_the_demo_config_is_an_error(preset):
    with pytest.raises(ConfigError, match=f"unknown preset '{preset}'"):
        load_config("configs/demo.py", preset)


@pytest.mark.parametrize("key", ["batch_size", "eval_batch_size", "checkpoint_every_steps",
                                 "eval_every_steps", "log_every_steps"])
def test_zero_batch_or_cadence_fails_at_load_naming_the_field(key):
    with pytest.raises(ConfigError, match=f"config.{key} must be a positive integer, got 0"):
        validate(tiny_config(**{key: 0}))


def test_a_batch_that_does_not_split_over_the_mesh_is_a_config_error():
    from common import sharding
    from common.runner import check_batch_splits
    mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "model": 1}, jax.devices())
    check_batch_splits(tiny_config(batch_size=16), mesh)
    with pytest.raises(ConfigError, match=r"config.batch_size=12 does not split over the 8 devices"):
        check_batch_splits(tiny_config(batch_size=12), mesh)


def test_bad_values_are_one_line_on_the_command_line(tmp_path):
    for flag, message in [("--config.optim.lr_peak=1.0", "unknown config key 'optim.lr_peak' in "
                           "--config.optim.lr_peak (did you mean optim.lr?)"),
                          ("--config.batch_size=0", "config.batch_size must be a positive integer, got 0")]:
        out = subprocess.run([sys.executable, "-m", "common.train", "--config=configs/demo.py:test",
                              f"--workdir={tmp_path}", flag], cwd=ROOT, capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 2
        assert out.stderr.strip() == f"error: {message}", out.stderr[-2000:]


# ---------------------------------------------------------------- 2, 3: the workdir remembers its run
def test_rerun_with_another_model_width_is_refused_and_nothing_moves(finished_run, tmp_path):
    workdir = _copy(finished_run, tmp_path)
    before = (_tree_listing(workdir), open(os.path.join(workdir, "metrics.jsonl")).read())
    with pytest.raises(ConfigError, match=r"(?s)another config.*model\.kwargs\.dims: \[8, 16, 16, 32\] -> "
                                          r"\[8, 16, 16, 64\].*allow_resume_with_changes=model.kwargs.dims"):
        train.train_and_evaluate(tiny_config(num_train_steps=STEPS, **{"model.kwargs.dims": (8, 16, 16, 64)}),
                                 workdir, progress=False)
    assert (_tree_listing(workdir), open(os.path.join(workdir, "metrics.jsonl")).read()) == before
    # even when the change is allowed, other shapes are an error naming the array, not corruption
    with pytest.raises(checkpoint.CheckpointMismatch, match=r"another model or config: .* is \(32, 10\) there, "
                                                            r"the model wants \(64, 10\)"):
        train.train_and_evaluate(tiny_config(num_train_steps=STEPS, allow_resume_with_changes="*",
                                             **{"model.kwargs.dims": (8, 16, 16, 64)}), workdir, progress=False)
    assert not os.path.exists(os.path.join(workdir, "checkpoints_corrupt"))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
    # the workdir still describes the run its checkpoints hold
    assert json.load(open(os.path.join(workdir, "config.json")))["model.kwargs.dims"] == [8, 16, 16, 32]
    assert not os.path.exists(os.path.join(workdir, "config_changes.jsonl"))


def test_rerun_with_other_hyperparameters_is_refused_unless_allowed(finished_run, tmp_path):
    workdir = _copy(finished_run, tmp_path)
    longer = {"num_train_steps": STEPS + 2, "optim.lr": 1e-3}
    with pytest.raises(ConfigError, match=r"(?s)num_train_steps: 4 -> 6\n  optim.lr: 0.002 -> 0.001"):
        train.train_and_evaluate(tiny_config(**longer), workdir, progress=False)
    # safe keys (cadence, data threads) never need permission
    train.train_and_evaluate(tiny_config(num_train_steps=STEPS, log_every_steps=2), workdir, progress=False)
    train.train_and_evaluate(tiny_config(**longer, allow_resume_with_changes="num_train_steps,optim.lr"),
                             workdir, progress=False)
    assert [r["step"] for r in read_metrics(workdir) if "train/loss" in r][-2:] == [5, 6]
    with open(os.path.join(workdir, "config_changes.jsonl")) as f:
        change = json.loads(f.readlines()[-1])
    assert change["step"] == STEPS and change["changes"]["optim.lr"] == [0.002, 0.001]
    assert json.load(open(os.path.join(workdir, "config.json")))["optim.lr"] == 0.001


def test_moving_unreadable_checkpoints_aside_never_nests(tmp_path):
    aside = str(tmp_path / "checkpoints_corrupt")
    for _ in range(3):
        os.makedirs(tmp_path / "checkpoints" / "12" / "state", exist_ok=True)
        checkpoint._move_aside(str(tmp_path / "checkpoints" / "12"), aside)
    assert sorted(os.listdir(aside)) == ["12", "12.1", "12.2"]
    assert os.listdir(os.path.join(aside, "12.2")) == ["state"]


def test_a_restart_from_scratch_keeps_the_old_metrics(finished_run, tmp_path):
    workdir = _copy(finished_run, tmp_path)
    old = open(os.path.join(workdir, "metrics.jsonl")).read()
    for step in ("2", "4"):           # every checkpoint unreadable: the run starts over
        for root, _, files in os.walk(os.path.join(workdir, "checkpoints", step, "state")):
            for f in files:
                open(os.path.join(root, f), "wb").close()
    train.train_and_evaluate(tiny_config(num_train_steps=STEPS), workdir, progress=False)
    assert open(os.path.join(workdir, "metrics.before_restart.jsonl")).read() == old
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints_corrupt"))) == ["2", "4"]
    assert [r["step"] for r in read_metrics(workdir) if "train/loss" in r] == [1, 2, 3, 4]


# ---------------------------------------------------------------- 4: nothing deleted
def test_save_variables_never_deletes_what_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    variables = {"params": {"w": np.ones((2, 3), np.float32)}}
    with pytest.raises(FileExistsError, match="not a checkpoint.*notes.txt.*nothing was written"):
        checkpoint.save_variables(str(out), variables, overwrite=True)
    assert os.listdir(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    ckpt = str(tmp_path / "ckpt")
    checkpoint.save_variables(ckpt, variables)
    with pytest.raises(FileExistsError, match="already holds a checkpoint; choose another output folder, or pass --overwrite"):
        checkpoint.save_variables(ckpt, {"params": {"w": np.zeros((2, 3), np.float32)}})
    checkpoint.save_variables(ckpt, {"params": {"w": np.zeros((2, 3), np.float32)}}, overwrite=True)
    np.testing.assert_array_equal(checkpoint.load_variables(ckpt)["params"]["w"], 0.0)
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "out"]          # no temporary folders left


def test_converter_cli_refuses_a_folder_with_other_files(tmp_path, capsys):
    from common.convert import convert_main
    from metaformer.convert import convert_state_dict
    src = str(tmp_path / "poolformer.safetensors")
    from safetensors.numpy import save_file
    save_file({"blocks.0.attn.qkv.weight": np.zeros((12, 4), np.float32)}, src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as e:
        convert_main(convert_state_dict, [src, str(out)])
    assert e.value.code == 2 and os.listdir(out) == ["keep.txt"]
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {src}: no tensor of this model's checkpoint found") and "\n" not in err


# ---------------------------------------------------------------- 6: verified checkpoints
def test_flipped_bytes_in_a_checkpoint_are_a_read_failure(finished_run, tmp_path, caplog):
    workdir = _copy(finished_run, tmp_path)
    ckpt = checkpoint.Checkpointer(workdir)
    abstract = Run(tiny_config(num_train_steps=STEPS)).abstract_state
    step, state, meta = ckpt.restore_latest(abstract)
    assert step == STEPS and meta["fingerprint"]
    checkpoint.verify(state, meta["fingerprint"], "checkpoint 4")       # as written
    leaves, treedef = jax.tree_util.tree_flatten(state)
    flipped = [x for x in leaves]
    bits = np.asarray(flipped[-1]).copy()
    bits.reshape(-1).view(np.uint32)[0] ^= 1 << 20                       # one bit of one value
    flipped[-1] = bits
    with pytest.raises(checkpoint.UnreadableCheckpoint, match="differ from the fingerprint"):
        checkpoint.verify(jax.tree_util.tree_unflatten(treedef, flipped), meta["fingerprint"], "checkpoint 4")
    ckpt.close()
    # on disk: flip bytes in the middle of the latest checkpoint's data, size unchanged
    data_files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(workdir, "checkpoints", "4", "state"))
                  for f in fs if os.path.getsize(os.path.join(r, f)) > 1000]
    for path in data_files:
        with open(path, "r+b") as f:
            size = os.path.getsize(path)
            f.seek(size // 2)
            chunk = bytearray(f.read(64))
            f.seek(size // 2)
            f.write(bytes(b ^ 0xFF for b in chunk))
    with caplog.at_level("WARNING"):
        train.train_and_evaluate(tiny_config(num_train_steps=STEPS + 2, allow_resume_with_changes="num_train_steps"),
                                 workdir, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "checkpoint 4 cannot be restored" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert os.path.isdir(os.path.join(workdir, "checkpoints_corrupt", "4"))
    assert [r["step"] for r in read_metrics(workdir) if "train/loss" in r][-4:] == [3, 4, 5, 6]


# ---------------------------------------------------------------- 7, 8, 9: evaluate is as safe as train
def _partial_checkpoint(tmp_path, finished_run):
    nets = checkpoint.load_nets(finished_run[0])
    params = dict(nets["model"]["params"])
    params.pop("head")
    return checkpoint.save_variables(str(tmp_path / "partial"), {**nets["model"], "params": params})


def test_evaluate_never_scores_random_weights_unless_asked(finished_run, tmp_path):
    path = _partial_checkpoint(tmp_path, finished_run)
    config = tiny_config(init_keep_missing=True)      # the hint a user may have followed
    run = checkpoint_run(config, path)
    with pytest.raises(checkpoint.CheckpointMismatch, match=r"it has no params/head/.*--allow_fresh_init"):
        run.init_state()
    run = checkpoint_run(tiny_config(), path, allow_fresh_init=True)
    run.init_state()
    assert sorted(run.fresh_leaves) == ["params/head/bias", "params/head/kernel"]


def test_evaluate_cli_echoes_fresh_leaves(finished_run, tmp_path):
    path = _partial_checkpoint(tmp_path, finished_run)
    out = subprocess.run([sys.executable, "-m", "common.evaluate", "--config=configs/demo.py:test",
                          f"--checkpoint={path}", "--config.model.kwargs.dims=(8,16,16,32)"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("error: ") and "params/head/" in last, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "error" not in out.stderr.replace(last, "").lower()


def test_evaluate_falls_back_past_an_unreadable_checkpoint(finished_run, tmp_path, caplog):
    workdir = _copy(finished_run, tmp_path)
    for root, _, files in os.walk(os.path.join(workdir, "checkpoints", "4", "state")):
        for f in files:
            with open(os.path.join(root, f), "r+b") as fh:
                fh.truncate(os.path.getsize(os.path.join(root, f)) // 3)
    with caplog.at_level("WARNING"):
        nets = checkpoint.load_nets(workdir)
    assert "checkpoint 4" in caplog.text and "trying the previous one" in caplog.text
    want = checkpoint.load_nets(os.path.join(finished_run[0], "checkpoints", "2"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, nets, want)
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "4"))     # evaluate moves nothing
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint yet"):
        checkpoint.load_nets(str(empty))


def test_evaluate_reads_no_optimizer_state(finished_run):
    nets = checkpoint.load_nets(finished_run[0])
    assert set(nets) == {"model"} and "params" in nets["model"]
    assert not any("opt_state" in str(p) or "mu" == getattr(p[-1], "key", None)
                   for p, _ in jax.tree_util.tree_flatten_with_path(nets)[0])


def test_evaluate_with_another_models_checkpoint_says_so(finished_run):
    other = tiny_config(**{"model.kwargs.dims": (16, 32, 32, 64)})
    run = checkpoint_run(other, finished_run[0])
    with pytest.raises(checkpoint.CheckpointMismatch) as e:
        run.init_state()
    assert "is not a checkpoint of this model" in str(e.value) and "init_reset_head" not in str(e.value)
    assert " is (" in str(e.value) and "the model wants (" in str(e.value)


# ---------------------------------------------------------------- 10: data checked first, saved before eval
def test_truncated_eval_split_fails_before_training(tmp_path):
    from common.data import sources
    data_dir = str(tmp_path / "tfds")
    config = tiny_config()
    sources.prepare(config.data.name, data_dir, builder=config.data.builder)
    split_file = next(os.path.join(r, f) for r, _, fs in os.walk(data_dir) for f in fs
                      if "validation.array_record" in f)
    with open(split_file, "r+b") as f:
        f.truncate(os.path.getsize(split_file) // 2)
    workdir = str(tmp_path / "run")
    with pytest.raises(Exception, match="eval split 'validation' of dataset 'digits' cannot be read "
                                        r"\(checked before training\)"):
        train.train_and_evaluate(tiny_config(**{"data.data_dir": data_dir}), workdir, progress=False)
    assert not os.path.exists(os.path.join(workdir, "checkpoints")) or not os.listdir(
        os.path.join(workdir, "checkpoints"))


def test_final_checkpoint_is_saved_before_the_final_eval(tmp_path, monkeypatch):
    workdir = str(tmp_path)

    def crash(self, state, *a, **k):
        raise RuntimeError("eval crashed")
    monkeypatch.setattr(Run, "evaluate", crash)
    with pytest.raises(RuntimeError, match="eval crashed"):
        train.train_and_evaluate(tiny_config(num_train_steps=2, eval_every_steps=100), workdir, progress=False)
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["2"]


# ---------------------------------------------------------------- 11: processes, signals
_SECOND_SIGNAL = """
import os, signal, sys, time
from common.train import _Stop
stop = _Stop()
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
assert stop.requested
print("first signal: stop requested", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
print("still running", flush=True)
"""


def test_a_second_sigterm_stops_at_once():
    out = subprocess.run([sys.executable, "-c", _SECOND_SIGNAL], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == -signal.SIGTERM, out.stderr[-2000:]
    assert "stop requested" in out.stdout and "still running" not in out.stdout


# ---------------------------------------------------------------- 13: converters recognise their input
def test_converters_recognise_what_is_not_a_checkpoint(tmp_path):
    torch = require("torch")
    cases = {"random.pth": os.urandom(4096), "text.pth": b"hello, this is a text file\n" * 20, "empty.pth": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "random.safetensors").write_bytes(os.urandom(4096))
    with open(tmp_path / "pickled_list.pth", "wb") as f:
        pickle.dump([1, 2, 3], f)
    torch.save([torch.zeros(2)], tmp_path / "torch_list.pth")
    for name, match in [("random.pth", "is not a PyTorch or safetensors checkpoint"),
                        ("text.pth", "is not a PyTorch or safetensors checkpoint"),
                        ("empty.pth", "is empty"),
                        ("random.safetensors", "is not a PyTorch or safetensors checkpoint"),
                        ("pickled_list.pth", "holds a list|is not a PyTorch"),
                        ("torch_list.pth", "holds a list, not a state_dict")]:
        with pytest.raises(NotAModelCheckpoint, match=match):
            load_state_dict(str(tmp_path / name))
    from metaformer.convert import convert_state_dict
    other = {"network.0.0.attn.q.weight": np.zeros((4, 4), np.float32), "head.weight": np.zeros((2, 4))}
    with pytest.raises(NotAModelCheckpoint, match=r"tensors match none of this model's names|"
                                                  r"no tensor of this model's checkpoint found"):
        convert_state_dict(other)
    with pytest.raises(NotAModelCheckpoint, match=r"no tensor of this model's checkpoint found; the file "
                                                  r"holds 1 tensors such as blocks.0.attn.qkv.weight"):
        convert_state_dict({"blocks.0.attn.qkv.weight": np.zeros((12, 4), np.float32)})


# ---------------------------------------------------------------- 14: SIGTERM at the last step
def test_sigterm_at_the_last_step_is_a_normal_end_and_a_rerun_prints_the_final_eval(tmp_path, monkeypatch):
    workdir = str(tmp_path)
    calls = {"n": 0}
    real = train.sharding.global_batch

    def batch_then_signal_at_the_last_step(local, mesh):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(local, mesh)
    monkeypatch.setattr(train.sharding, "global_batch", batch_then_signal_at_the_last_step)
    metrics = train.train_and_evaluate(tiny_config(num_train_steps=2), workdir, progress=False)
    assert "top1" in metrics["eval"]
    monkeypatch.setattr(train.sharding, "global_batch", real)
    again = train.train_and_evaluate(tiny_config(num_train_steps=2), workdir, progress=False)
    assert again["eval"]["top1"] == metrics["eval"]["top1"]
    assert sum(1 for r in read_metrics(workdir) if "eval/top1" in r) == 1
