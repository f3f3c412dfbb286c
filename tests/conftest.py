"""Test-suite setup: 8 fake CPU devices for sharding tests, and strict optional deps.

XLA_FLAGS must be set before jax is imported anywhere, which is why it lives here.
Single-device tests build a 1-device mesh explicitly.
"""
import importlib
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One tfds data_dir per test process: pytest-xdist workers prepare the same small datasets
# (digits, digits_lt) concurrently and would collide on tfds's final rename. Workers inherit
# the controller's environment, so the marker tells them the directory is the suite's own.
import tempfile  # noqa: E402

if "TFDS_DATA_DIR" not in os.environ or os.environ.get("TESTS_OWN_TFDS_DATA_DIR"):
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix=f"tfds_test_{_worker}_")
    os.environ["TESTS_OWN_TFDS_DATA_DIR"] = "1"
# Runs of the same tiny model recompile identical programs: share XLA's compilation cache
# between tests and between pytest-xdist workers (and the subprocesses they start).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jax_test_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402


def require(module: str):
    """Import an optional test dependency (torch, timm, ...).

    Outside CI a missing one skips the test; with CI=true it fails, so CI can never
    pass by silently skipping the reference comparisons.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"test dependency {module!r} is missing in CI: pip install '.[test]'")
        pytest.skip(f"{module} is not installed")
