import glob
import os
import subprocess
import sys

import pytest

from tests.common.configs import ROOT, load_config


def test_presets_load_and_are_locked():
    c = load_config("configs/demo.py")
    assert c.model.name == "metaformer:poolformer_s12" and c.data.name == "digits"
    with pytest.raises(AttributeError):
        c.optim.lr_peak = 1.0          # a misspelt key is an error, not a new field


@pytest.mark.parametrize("path", sorted(os.path.relpath(p, ROOT) for p in glob.glob(
    os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)
    if not os.path.basename(p).startswith("_")))      # _name.py: a recipe shared by the configs beside it
def test_every_config_has_test_and_demo_presets_on_embedded_data(path):
    """`:test` and `:demo` run anywhere: small data that needs no download (a builder that
    prepares itself: generated or shipped with a package), bounded lengths, valid values;
    any other preset is an error."""
    from common.config import validate
    from common.data import sources
    for preset in ("test", "demo"):
        c = load_config(path, preset)
        validate(c)
        builder = sources.tfds_builder(c.data.name, "/nonexistent", c.data.builder)
        assert getattr(type(builder), "PREPARES_ITSELF", False), (path, preset, c.data.name)
        if preset == "test":
            assert 0 < c.num_train_steps <= 50, (path, c.num_train_steps)
    for bad in ("nonsense", "TEST"):
        with pytest.raises(ValueError, match="unknown|nonsense|TEST"):
            load_config(path, bad)


def test_full_recipe_matches_paper():
    c = load_config("configs/metaformer/poolformer_s12.py")
    assert c.batch_size == 4096 and c.optim.lr == pytest.approx(4e-3)
    assert c.optim.weight_decay == 0.05 and c.model.kwargs.drop_path_rate == 0.1
    assert load_config("configs/metaformer/poolformer_m48.py").model.kwargs.drop_path_rate == 0.4


def test_unknown_override_flag_is_rejected(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "common.train", "--config=configs/demo.py:test",
         f"--workdir={tmp_path}", "--config.optim.lr_peak=1.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "lr_peak" in out.stderr


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match="unknown preset"):
        load_config("configs/metaformer/poolformer_s12.py", "tset")
