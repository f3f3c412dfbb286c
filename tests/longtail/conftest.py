"""Digits-LT is prepared once, under a file lock, before the longtail tests run: pytest-xdist
workers inherit the controller's TFDS_DATA_DIR, and two workers preparing the same dataset at
once collide on tfds's final rename."""
import fcntl
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def digits_lt_prepared():
    from common.data import sources
    data_dir = sources._data_dir("")
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, ".digits_lt.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sources.data_source("digits_lt", "train")
        fcntl.flock(lock, fcntl.LOCK_UN)
