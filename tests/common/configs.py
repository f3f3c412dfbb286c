"""Small configs for the platform tests (the demo's `test` preset, trimmed further)."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_config(path: str, arg: str | None = None):
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


def tiny_config(**overrides):
    c = load_config("configs/demo.py", "test")
    c.model.kwargs.dims = (8, 16, 16, 32)
    c.data.randaugment = ""
    c.data.num_threads = 1
    c.batch_size, c.eval_batch_size = 16, 64
    c.num_train_steps = 8
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 8, 2
    c.keep_checkpoints = 10
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


CHILD_RUN = """
import jax
from common import train
from tests.common.configs import load_config
train.train_and_evaluate(load_config({config!r}, {preset!r}), {workdir!r}, progress=False, devices=jax.devices()[:1])
"""


def killed_run(config: str, workdir: str, preset: str = "test", checkpoint_step: int = 2, logged_step: int = 4,
               timeout: float = 900.0) -> int:
    """Train CONFIG:PRESET in a child process on one device and SIGKILL it once step
    `logged_step` is in metrics.jsonl and checkpoint `checkpoint_step` is complete (it is then
    evaluating or writing the next one). Returns the child's exit code: -SIGKILL when killed."""
    import signal
    import subprocess
    import sys
    import time
    from common.metrics_writer import read_metrics

    def ready():
        return (os.path.isdir(os.path.join(workdir, "checkpoints", str(checkpoint_step)))
                and os.path.exists(os.path.join(workdir, "metrics.jsonl"))
                and any(r["step"] == logged_step and "train/loss" in r for r in read_metrics(workdir)))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", CHILD_RUN.format(config=config, preset=preset, workdir=workdir)],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.time()
    try:
        while not ready():
            if child.poll() is not None:
                raise AssertionError(f"the child run ended early: {child.stderr.read().decode()[-3000:]}")
            if time.time() - start > timeout:
                raise AssertionError(f"the child run did not reach step {logged_step} in {timeout:.0f} s")
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    return child.returncode
