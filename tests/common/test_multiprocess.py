"""Two local processes (jax.distributed over 127.0.0.1, gloo CPU collectives), 2 CPU
devices each, train exactly as one process with all 4 devices: each reads its own rows
of every global batch, and the logged losses and eval are identical."""
import os
import socket
import subprocess
import sys

import numpy as np

from common import train
from common.metrics_writer import read_metrics
from tests.common.configs import ROOT, tiny_config

_WORKER = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
from tests.conftest import *  # noqa: F401,F403
from common import distributed, train
from tests.common.configs import tiny_config
distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
import jax
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
train.train_and_evaluate(tiny_config(num_train_steps=4), sys.argv[3], progress=False)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(workdir):
    addr = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, addr, str(i), workdir], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    return all(p.returncode == 0 for p in procs), outs


def test_two_processes_equal_one_process(tmp_path):
    single = str(tmp_path / "single")
    import jax
    train.train_and_evaluate(tiny_config(num_train_steps=4), single, progress=False, devices=jax.devices()[:4])

    multi = str(tmp_path / "multi")
    ok, outs = _run_two_processes(multi)
    if not ok and any("Gloo context initialization failed" in o for o in outs):
        # gloo's fixed connect timeout can expire when the two processes reach their first
        # collective far apart (a loaded 2-core machine); that is the transport, not the
        # code under test, so try once more from scratch
        import shutil
        shutil.rmtree(multi, ignore_errors=True)
        ok, outs = _run_two_processes(multi)
    assert ok, "\n\n".join(o[-3000:] for o in outs)

    def summary(workdir):
        rows = read_metrics(workdir)
        return ([(r["step"], r["train/loss"]) for r in rows if "train/loss" in r],
                [r["eval/top1"] for r in rows if "eval/top1" in r])

    (l1, e1), (l2, e2) = summary(single), summary(multi)
    assert [s for s, _ in l2] == [1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in l2], [v for _, v in l1], rtol=2e-5)
    np.testing.assert_allclose(e2, e1, atol=1e-6)


def _two_processes(script, *args, timeout=400):
    addr = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, "-c", script, addr, str(i), *args], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [p.returncode for p in procs], outs


def test_processes_with_different_configs_refuse_to_start(tmp_path):
    script = _WORKER.replace("tiny_config(num_train_steps=4)",
                             "tiny_config(num_train_steps=4 + int(sys.argv[2]))")
    codes, outs = _two_processes(script, str(tmp_path))
    assert all(c != 0 for c in codes)
    assert any("was started with a different config" in o for o in outs)


def test_processes_with_different_workdirs_refuse_to_start(tmp_path):
    # each would wait for the other at its first checkpoint, forever
    script = _WORKER.replace("sys.argv[3]", "sys.argv[3] + sys.argv[2]")
    codes, outs = _two_processes(script, str(tmp_path / "w"), timeout=300)
    assert all(c != 0 for c in codes), outs
    assert all("every process must write the same workdir" in o for o in outs), outs
    assert not os.path.exists(str(tmp_path / "w0")) and not os.path.exists(str(tmp_path / "w1"))


_LATE = """
import sys, time
from tests.conftest import *  # noqa: F401,F403
from common import distributed
distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
if sys.argv[2] == "1":
    time.sleep(20)       # alive, but never reaches the agreement
else:
    try:
        distributed.agree("run", "x", timeout_s=3)
    except TimeoutError as e:
        print("TIMEOUT:", e, flush=True)
"""


def test_a_process_that_never_arrives_is_named_after_a_timeout():
    codes, outs = _two_processes(_LATE, timeout=120)
    assert "TIMEOUT: process 0 waited 3 s for process 1 to report its run settings" in outs[0], outs
