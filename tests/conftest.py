"""Test-suite setup: 8 fake CPU devices for sharding tests, and strict optional deps.

XLA_FLAGS must be set before jax is imported anywhere, which is why it lives here.
Single-device tests build a 1-device mesh explicitly.
"""
import importlib
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
