"""The command line shared by the post-training stages that write new variables and then
evaluate them (NCM centroids, SADE's test-time aggregation weights)."""
import json
import logging

from absl import app, flags
from ml_collections import config_flags


def fit_and_evaluate_main(fit, config_help: str, checkpoint_help: str, out_help: str,
                          log_level: int = logging.WARNING) -> None:
    """`--config --checkpoint --out`: `fit(config, checkpoint, out)` writes a variables directory
    and returns its path; its metrics are printed as one JSON line. Flags are defined here, at
    call time, so importing a stage module defines none."""
    config = config_flags.DEFINE_config_file("config", None, config_help, lock_config=True)
    ckpt = flags.DEFINE_string("checkpoint", None, checkpoint_help)
    out = flags.DEFINE_string("out", None, out_help)
    flags.mark_flags_as_required(["config", "checkpoint", "out"])

    def run(argv):
        del argv
        logging.basicConfig(level=log_level)
        from common.runner import evaluate_checkpoint
        path = fit(config.value, ckpt.value, out.value)
        print(json.dumps(evaluate_checkpoint(config.value, path, progress=False)))

    app.run(run)
