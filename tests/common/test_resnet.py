"""Shared ResNets: exact parameter counts and equality with torchvision given the same
random weights (eval mode)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.convert import convert_with_rules
from common.layers.resnet import TORCHVISION_IGNORE, resnet32, resnet50, resnext50_32x4d, torchvision_rules
from tests.conftest import require


def _count(model, size):
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nn.meta.unbox(v["params"])))


def test_parameter_counts():
    assert _count(resnext50_32x4d(), 224) == 25_028_904
    assert _count(resnet50(), 224) == 25_557_032
    assert _count(resnet32(10), 32) == 464_154
    assert _count(resnet32(100), 32) == 470_004


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d"])
def test_equal_to_torchvision(name):
    torch = require("torch")
    tv = require("torchvision")
    torch.manual_seed(0)
    ref = getattr(tv.models, name)(weights=None).eval()
    with torch.no_grad():   # non-trivial BN statistics and affines
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.1)
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
    sd = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    variables = convert_with_rules(sd, torchvision_rules(), TORCHVISION_IGNORE)
    ours = {"resnet50": resnet50, "resnext50_32x4d": resnext50_32x4d}[name]()
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    with jax.default_matmul_precision("highest"):
        got = np.asarray(jax.jit(ours.apply)(variables, x))
    scale = float(np.abs(want).max())
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, scale), (np.abs(got - want).max(), scale)
