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
