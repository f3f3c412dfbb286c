"""Equivalence with the official code: logits of houqb/VisionPermutator's model (random
weights, tiny widths) recorded by make_golden.py, reproduced through our converter."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.convert import check_against
from permutator import create_model
from permutator.convert import convert_state_dict
from tests.permutator.make_golden import GOLDEN_CONFIGS, NUM_CLASSES

HERE = os.path.dirname(os.path.abspath(__file__))


def load_golden(name):
    data = np.load(os.path.join(HERE, f"golden_{name}.npz"))
    state_dict = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
    return state_dict, data["input_nchw"].transpose(0, 2, 3, 1), data["logits"]


@pytest.mark.parametrize("name", sorted(GOLDEN_CONFIGS))
def test_converted_official_weights_reproduce_official_logits(name):
    cfg = dict(GOLDEN_CONFIGS[name])
    image_size = cfg.pop("img_size")
    state_dict, images, want = load_golden(name)
    model = create_model("vip_s7", num_classes=NUM_CLASSES, **cfg)
    variables = convert_state_dict(state_dict)
    check_against(variables, nn.unbox(jax.eval_shape(
        model.init, jax.random.PRNGKey(0), jnp.zeros((1, image_size, image_size, 3)))))
    got = model.apply(variables, jnp.asarray(images))
    assert np.abs(want).max() > 0.5  # the fixture is not degenerate
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # train mode with drop-path 0 is the same function (no dropout anywhere in ViP)
    np.testing.assert_allclose(model.apply(variables, jnp.asarray(images), train=True), want,
                               rtol=1e-4, atol=1e-4)
