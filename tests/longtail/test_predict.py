"""common.predict on a Digits-LT model: each predicted class carries its many / medium / few
group (the task's class_groups), and post-hoc logit adjustment is applied as in evaluation."""
import json

import jax
import numpy as np
from PIL import Image

from common import checkpoint, predict
from common.data.sources import data_source
from common.runner import Run
from longtail import metrics
from tests.common.configs import load_config


def test_predictions_show_the_training_frequency_group(tmp_path, capsys):
    config = load_config("configs/longtail/digits_lt.py", "ce,test")
    run = Run(config)
    groups = run.task.class_groups()
    masks = metrics.shot_groups(run.task.train_counts, config.longtail.many_threshold, config.longtail.few_threshold)
    assert groups == [next(g for g, m in masks.items() if m[c]) for c in range(10)]
    assert sorted(groups.count(g) for g in ("many", "medium", "few")) == [3, 3, 4]
    net = run.init_state().model
    ckpt = checkpoint.save_variables(str(tmp_path / "ckpt"), jax.device_get({"params": net.params, **net.model_state}))

    src = data_source(config.data.name, config.data.eval_split, config.data.data_dir, config.data.builder)
    paths = []
    for i in (0, 150, 399):
        paths.append(str(tmp_path / f"digit_{i}.png"))
        Image.fromarray(src[i]["image"]).save(paths[-1])
    predictor = predict.Predictor(config, ckpt)
    results, code = predict.predict_files(predictor, paths, str(tmp_path / "out"), top_k=4)
    assert code == 0
    ranked = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert len(ranked) == 3 * 4 and all(line.endswith(("[many]", "[medium]", "[few]")) for line in ranked)
    for i in (0, 150, 399):
        record = json.loads((tmp_path / "out" / f"digit_{i}.json").read_text())
        assert [t["group"] for t in record["top_k"]] == [groups[t["class"]] for t in record["top_k"]]
        with Image.open(record["picture"]) as im:
            im.load()

    # post-hoc logit adjustment (the `posthoc_la` method) changes the probabilities as the eval step does
    adjusted = predict.Predictor(load_config("configs/longtail/digits_lt.py", "posthoc_la,test"), ckpt)
    prior = run.task.train_counts / run.task.train_counts.sum()
    for p, q in zip(results, adjusted.predict(paths)):
        want = np.log(p.probs) - np.log(prior)
        want = np.exp(want - want.max()) / np.exp(want - want.max()).sum()
        np.testing.assert_allclose(q.probs, want, rtol=1e-4, atol=1e-6)
