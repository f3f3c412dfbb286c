"""The ViP configs: full presets build the paper's models with the official recipe; the
test/demo presets build valid tiny models (segment_dim fits their token grids)."""
import importlib.util
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import models, optim
from tests.permutator.test_model import OFFICIAL_PARAMS

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "permutator")


def get_config(variant, arg=None):
    spec = importlib.util.spec_from_file_location(variant, os.path.join(CONFIG_DIR, f"{variant}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def param_count(config):
    model = models.create_model(config.model.name, num_classes=config.model.num_classes,
                                **config.model.kwargs.to_dict())
    s = config.data.image_size
    tree = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, s, s, 3)))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(tree)))


@pytest.mark.parametrize("variant", sorted(OFFICIAL_PARAMS))
def test_full_preset_builds_the_official_model(variant):
    c = get_config(variant)
    assert c.model.name == f"permutator:{variant}" and c.data.image_size == 224
    assert param_count(c) == OFFICIAL_PARAMS[variant]
    assert (c.batch_size, c.optim.lr, c.optim.weight_decay) == (2048, 2e-3, 0.05)
    assert c.data.crop_pct == (0.875 if variant == "vip_l7" else 0.9)


@pytest.mark.parametrize("arg", ["test", "demo"])
def test_small_presets_build(arg):
    c = get_config("vip_s7", arg)
    assert c.data.name == "digits"
    assert param_count(c) > 0   # raises if segment_dim does not fit the token grid


def test_lr_schedule_matches_official_epochs():
    """timm CosineLRScheduler as main.py runs it: warmup 20 epochs from 1e-6 inside the
    300-epoch cosine, then 10 cooldown epochs at min_lr (evaluated at whole epochs)."""
    c = get_config("vip_s7")
    lr = optim.make_schedule(c.schedule, c.optim.lr, c.num_epochs, steps_per_epoch=10.0)
    peak, low = 2e-3, 1e-5

    def cosine(t):
        return low + 0.5 * (peak - low) * (1 + np.cos(np.pi * t / 300))

    want = {0: 1e-6, 19: 1e-6 + 19 * (peak - 1e-6) / 20, 20: cosine(20), 150: cosine(150),
            299: cosine(299), 300: low, 309: low}
    for epoch, value in want.items():
        assert float(lr(epoch * 10)) == pytest.approx(value, rel=1e-5), epoch
