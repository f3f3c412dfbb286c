"""A workdir remembers the run it holds: WORKDIR/config.json is the resolved config the
checkpoints were trained with. Resuming with another config would silently mix two runs,
so it is refused with the keys that differ, unless they are listed in
`config.allow_resume_with_changes` (then each accepted change is appended to
WORKDIR/config_changes.jsonl with the step it applies from)."""
import json
import logging
import os

import jax

from common.config import RESUME_SAFE_KEYS, ConfigError, config_changes, flat_config, matches_any

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def check_resume(workdir: str, config, step: int) -> dict:
    """Before resuming from checkpoint `step`: refuse a config that differs from the one the
    workdir was trained with (except in safe or explicitly allowed keys). Returns the
    accepted changes, for `record` once the checkpoint has been restored."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        log.info("%s has no %s (written before workdirs kept their config); recording this one",
                 workdir, CONFIG_FILE)
        return {}
    with open(path) as f:
        old = json.load(f)
    new = flat_config(config)
    changes = {k: v for k, v in config_changes(old, new).items() if not matches_any(k, RESUME_SAFE_KEYS)}
    allowed = [p.strip() for p in str(config.get("allow_resume_with_changes", "")).split(",") if p.strip()]
    refused = {k: v for k, v in changes.items() if not matches_any(k, allowed)}
    if refused:
        lines = "\n".join(f"  {k}: {old_v!r} -> {new_v!r}" for k, (old_v, new_v) in refused.items())
        raise ConfigError(
            f"{workdir} holds a run trained with another config (checkpoint {step}); resuming would mix "
            f"the two:\n{lines}\nto continue from step {step} with the new values pass "
            f"--config.allow_resume_with_changes={','.join(refused)} ; to start over use a fresh --workdir")
    return changes


def record(workdir: str, config, changes: dict | None = None, step: int = 0) -> None:
    """Write WORKDIR/config.json (atomically; process 0 only), and append the accepted
    `changes` of a resume from `step` to config_changes.jsonl."""
    if changes:
        log.warning("resumed from step %d with changed %s", step,
                    ", ".join(f"{k}={new_v!r} (was {old_v!r})" for k, (old_v, new_v) in changes.items()))
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    if changes:
        with open(os.path.join(workdir, "config_changes.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, "changes": {k: list(v) for k, v in changes.items()}}) + "\n")
    path = os.path.join(workdir, CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(flat_config(config), f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
