"""common.predict on the demo's digits model: the top-1 of the eval step, JSON and pictures
that decode, a corrupt input reported and skipped, a checkpoint that does not fit, the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from common import pictures, predict, sharding, train
from common.data.sources import data_source
from tests.common.configs import ROOT, tiny_config

NUM_IMAGES = 8


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A tiny demo model trained for a few steps, and eight validation digits saved as PNG
    beside a corrupt PNG."""
    config = tiny_config(checkpoint_every_steps=8)    # test_train's run (shared compile cache), one save
    workdir = str(tmp_path_factory.mktemp("digits_run"))
    train.train_and_evaluate(config, workdir, progress=False)
    src = data_source(config.data.name, config.data.eval_split, config.data.data_dir, config.data.builder)
    records = [src[i] for i in range(NUM_IMAGES)]
    folder = tmp_path_factory.mktemp("images")
    for i, r in enumerate(records):
        Image.fromarray(r["image"]).save(folder / f"digit_{i}.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "notes.txt").write_text("not an image; a folder gives only image files")
    return config, workdir, records, str(folder)


def test_predict_gives_the_eval_steps_top1_and_writes_pictures(digits_run, tmp_path, capsys):
    config, workdir, records, folder = digits_run
    predictor = predict.Predictor(config, workdir)
    assert predictor.names == [str(i) for i in range(10)]           # the tfds ClassLabel's names
    out = tmp_path / "out"
    # batch 8 over the 8 test devices: one image per device, as in the eval batch below
    results, code = predict.predict_files(predictor, [folder], str(out), top_k=3, batch_size=NUM_IMAGES)
    assert code == 1
    printed = capsys.readouterr()
    assert "corrupt.png" in printed.err and "1 of 9 inputs failed" in printed.err
    assert "corrupt.png" not in printed.out and "digit_7.png" in printed.out
    by_name = {os.path.basename(p.path): p for p in results}
    assert sorted(by_name) == ["corrupt.png"] + [f"digit_{i}.png" for i in range(NUM_IMAGES)]
    assert "cannot identify image file" in by_name["corrupt.png"].error
    top1 = np.array([by_name[f"digit_{i}.png"].top(1)[0][0] for i in range(NUM_IMAGES)])

    # The run's own eval step on the same images, labelled with predict's top-1: all correct.
    task, run = predictor.task, predictor.run
    images = np.stack([task.eval_element(r)["image"] for r in records])
    step = run.jit_eval_step(run.eval_passes()[0])
    for labels, want in ((top1, NUM_IMAGES), (np.array([r["label"] for r in records]), None)):
        batch = {"image": images, "label": labels.astype(np.int32), "mask": np.ones(NUM_IMAGES, np.float32)}
        sums = step(predictor.state, sharding.global_batch(batch, run.mesh))
        assert int(sums["correct"]) == (want if want is not None else int(np.sum(top1 == labels)))

    for i in range(NUM_IMAGES):
        record = json.loads((out / f"digit_{i}.json").read_text())
        probs = [t["prob"] for t in record["top_k"]]
        assert record["top_k"][0]["class"] == top1[i] and len(probs) == 3
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert record["top_k"][0]["label"] == str(top1[i]) and (record["height"], record["width"]) == (32, 32)
        with Image.open(record["picture"]) as im:
            im.load()
            assert im.size[0] > 160 + 200 and im.size[1] >= 160       # the enlarged digit beside its bars
    assert json.loads((out / "corrupt.json").read_text())["error"].startswith("UnidentifiedImageError")
    assert not (out / "corrupt.png").exists() and not (out / "notes.json").exists()


def test_a_checkpoint_that_does_not_fit_names_itself(digits_run):
    config, workdir, _, _ = digits_run
    config = tiny_config(**{"model.num_classes": 5})
    with pytest.raises(predict.CheckpointMismatch, match=f"checkpoint {workdir} does not fit.*head"):
        predict.Predictor(config, workdir)
    with pytest.raises(predict.LabelsMismatch):
        predict.Predictor(config, workdir, labels=["a", "b"])


def test_bar_chart_and_side_by_side():
    bars = pictures.bar_chart(["cat", "a very long class name " * 4], [0.75, 0.25], [(255, 0, 0)], width=300)
    assert bars.shape == (2 * 18 + 4, 300, 3)
    red = [int((bars[2 + 18 * i + 9] == (255, 0, 0)).all(-1).sum()) for i in range(2)]   # bar middles
    assert red[1] > 0 and red[0] == pytest.approx(3 * red[1], abs=3)
    both = pictures.side_by_side([np.zeros((50, 20, 3), np.uint8), bars])
    assert both.shape == (50 + 12, 20 + 300 + 18, 3)
    assert pictures.fit_for_display(np.zeros((32, 32, 3), np.uint8)).shape == (160, 160, 3)
    assert pictures.fit_for_display(np.zeros((1000, 500, 3), np.uint8)).shape == (384, 192, 3)


def test_the_command_line(digits_run, tmp_path):
    config, workdir, _, folder = digits_run
    overrides = [f"--config.model.kwargs.dims={tuple(config.model.kwargs.dims)}"]
    cmd = [sys.executable, "-m", "common.predict", "--config=configs/demo.py:test", *overrides,
           f"--checkpoint={workdir}", os.path.join(folder, "digit_0.png"), os.path.join(folder, "missing.jpg"),
           "--top_k", "2", "--out", str(tmp_path / "cli")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: " + os.path.join(folder, "missing.jpg") + ": no such file or folder" in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].endswith("digit_0.png") and len(lines) == 3 and lines[1].lstrip().startswith("1.")
    assert (tmp_path / "cli" / "digit_0.png").exists()
