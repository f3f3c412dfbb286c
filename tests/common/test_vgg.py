"""torchvision-layout VGG-16 / VGG-19 features: exact parameter counts, equality with
torchvision given the same random weights at taps named by index and by relu name, the
stop-after-last-tap init, and the converter CLI."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import checkpoint, convert
from common.layers import vgg
from tests.conftest import require

X = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)


def _count(model, features=None):
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), features=features))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(v["params"]))


def test_parameter_counts_and_names():
    assert _count(vgg.vgg16()) == 14_714_688
    assert _count(vgg.vgg19()) == 20_024_384
    assert _count(vgg.vgg16(), features=("relu1_1",)) == 1_792          # stops after the tap
    names = vgg.layer_names("vgg16")
    assert len(names) == 31 and names[17] == "conv4_1" and names[18] == "relu4_1" and names[30] == "pool5"
    assert len(vgg.layer_names("vgg19")) == 37 and vgg.layer_names("vgg19")[36] == "pool5"


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_equal_to_torchvision_through_the_cli(arch, tmp_path):
    torch = require("torch")
    tv = require("torchvision")
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(0)
    features = make_layers(cfgs["D" if arch == "vgg16" else "E"]).eval()   # torchvision's VGG.features
    src, out = str(tmp_path / f"{arch}.pth"), str(tmp_path / "converted")
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 3)        # a whole-model state_dict: classifier ignored
    torch.save(state, src)
    convert.main(["torchvision", src, out, "--arch", arch])
    variables = checkpoint.load_variables(out)
    taps = (3, "relu2_2", 17, "relu4_1", len(vgg.layer_names(arch)) - 1)
    with torch.no_grad():
        h = torch.from_numpy(X.transpose(0, 3, 1, 2).copy())
        want = {}
        for i, layer in enumerate(features):
            h = layer(h)
            want[i] = h.numpy().transpose(0, 2, 3, 1).copy()       # torchvision's ReLUs are in place
    with jax.default_matmul_precision("highest"):
        got = jax.jit(lambda v, x: vgg.ARCHS[arch]().apply(v, x, features=taps))(variables, X)
        full = jax.jit(vgg.ARCHS[arch]().apply)(variables, X)
    names = vgg.layer_names(arch)
    for t in taps:
        name = names[t] if isinstance(t, int) else t
        idx = t if isinstance(t, int) else names.index(t)
        scale = max(1.0, float(np.abs(want[idx]).max()))
        assert np.abs(np.asarray(got[name]) - want[idx]).max() <= 1e-5 * scale, name
    np.testing.assert_allclose(full, want[len(names) - 1], rtol=1e-5, atol=1e-5 * scale)


def test_converter_rejects_the_wrong_arch_and_unknown_taps(tmp_path):
    torch = require("torch")
    tv = require("torchvision")
    from torchvision.models.vgg import cfgs, make_layers
    src = str(tmp_path / "vgg16.pth")
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, src)
    with pytest.raises(SystemExit):          # one line naming the file, exit status 2
        convert.main(["torchvision", src, str(tmp_path / "out"), "--arch", "vgg19"])
    assert not os.path.exists(tmp_path / "out")
    with pytest.raises(ValueError, match="unknown feature"):
        vgg.vgg16().init(jax.random.PRNGKey(0), X, features=("relu9_9",))


def test_imagenet_normalize():
    x = jnp.zeros((1, 1, 1, 3))
    np.testing.assert_allclose(vgg.imagenet_normalize(x)[0, 0, 0],
                               (0.5 - np.array(vgg.IMAGENET_MEAN)) / np.array(vgg.IMAGENET_STD), rtol=1e-6)
