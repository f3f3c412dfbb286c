"""The longtail task end to end on Digits-LT: stage 1, decoupled stage 2 (cRT) that only
moves the classifier, and the survey's metrics from common.evaluate."""
import json
import os
import subprocess
import sys

import numpy as np

from common import checkpoint, train
from tests.common.configs import ROOT, load_config


def test_stage1_then_crt_moves_only_the_classifier(tmp_path):
    stage1 = str(tmp_path / "stage1")
    m = train.train_and_evaluate(load_config("configs/longtail/digits_lt.py", "ce,test"), stage1, progress=False)["eval"]
    assert {"top1", "many", "medium", "few", "loss"} <= set(m)
    c = load_config("configs/longtail/digits_lt.py", "crt,test")
    c.init_from = stage1
    stage2 = str(tmp_path / "stage2")
    train.train_and_evaluate(c, stage2, progress=False)
    before = checkpoint.load_any(stage1)["params"]
    after = checkpoint.load_any(stage2)["params"]
    np.testing.assert_array_equal(after["conv1"]["kernel"], before["conv1"]["kernel"])
    np.testing.assert_array_equal(after["layer3_0"]["conv2"]["kernel"], before["layer3_0"]["conv2"]["kernel"])
    assert not np.allclose(after["linear"]["kernel"], before["linear"]["kernel"])


def test_evaluate_prints_many_medium_few_and_relative_accuracy(tmp_path):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(load_config("configs/longtail/digits_lt.py", "ce,test"), workdir, progress=False)
    out = subprocess.run([sys.executable, "-m", "common.evaluate", "--config=configs/longtail/digits_lt.py:ce",
                          f"--checkpoint={workdir}", "--config.longtail.upper_accuracy=90.0",
                          "--config.longtail.tau_norm=1.0"],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])["eval"]
    assert m["relative_accuracy"] == np.float64(100.0 * m["top1"] / 90.0)
    assert all(0.0 <= m[k] <= 100.0 for k in ("many", "medium", "few"))
