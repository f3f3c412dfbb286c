"""Shared ResNets: exact parameter counts and equality with torchvision given the same
random weights (eval mode); the detection backbone options (FrozenBatchNorm, dilation,
frozen stages) and the torchvision converter CLI."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import checkpoint, convert
from common.layers import resnet
from common.layers.resnet import FrozenBatchNorm, resnet18, resnet32, resnet50, resnext50_32x4d
from tests.common.test_features import random_variables
from tests.conftest import require

LAYERS = ("layer1", "layer2", "layer3", "layer4")


def _count(model, size, collection="params"):
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nn.meta.unbox(v.get(collection, {}))))


def test_parameter_counts():
    assert _count(resnext50_32x4d(), 224) == 25_028_904
    assert _count(resnet50(), 224) == 25_557_032
    assert _count(resnet.resnet101(), 224) == 44_549_160
    assert _count(resnet18(), 224) == 11_689_512
    assert _count(resnet.resnet34(), 224) == 21_797_672
    assert _count(resnet32(10), 32) == 464_154
    assert _count(resnet32(100), 32) == 470_004


def test_frozen_batchnorm_keeps_its_four_arrays_out_of_params():
    batch, frozen = resnet50(), resnet50(norm="frozen")
    bn_affine = _count(batch, 64, "batch_stats")          # running mean + var: as many as scale + bias
    assert _count(frozen, 64) == _count(batch, 64) - bn_affine
    assert _count(frozen, 64, "batch_stats") == 2 * bn_affine
    v = nn.meta.unbox(jax.eval_shape(lambda: frozen.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)))))
    assert set(v["batch_stats"]["stem"]["bn1"]) == {"scale", "bias", "mean", "var"}
    # PnP-DETR's frozen conv1 + layer1 (stem + res2): 222,400 parameters
    assert sum(int(np.prod(x.shape)) for k, p in v["params"].items() if k == "stem" or k.startswith("layer1_")
               for x in jax.tree_util.tree_leaves(p)) == 222_400


def _randomise_norms(model, torch):
    """Non-trivial statistics and affines in every (Frozen)BatchNorm of a torchvision model."""
    from torchvision.ops.misc import FrozenBatchNorm2d
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d)):
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.1)
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
    return model.eval()


def _state_dict(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _nchw(x, torch):
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def _assert_close(got, want):
    scale = float(np.abs(want).max())
    assert np.abs(np.asarray(got) - want).max() <= 1e-5 * max(1.0, scale), (np.abs(got - want).max(), scale)


IMAGES = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_equal_to_torchvision(name):
    torch = require("torch")
    tv = require("torchvision")
    torch.manual_seed(0)
    ref = _randomise_norms(getattr(tv.models, name)(weights=None), torch)
    variables = resnet.convert_torchvision(_state_dict(ref), name)
    with torch.no_grad():
        want = ref(_nchw(IMAGES, torch)).numpy()
    with jax.default_matmul_precision("highest"):
        got = np.asarray(jax.jit(resnet.TORCHVISION[name]().apply)(variables, IMAGES))
    _assert_close(got, want)


def test_frozen_batchnorm_equals_torchvision():
    torch = require("torch")
    from torchvision.ops.misc import FrozenBatchNorm2d
    torch.manual_seed(0)
    ref = FrozenBatchNorm2d(6)
    _randomise_norms(torch.nn.Sequential(ref), torch)
    x = np.random.default_rng(1).standard_normal((2, 5, 5, 6)).astype(np.float32)
    stats = {"scale": ref.weight, "bias": ref.bias, "mean": ref.running_mean, "var": ref.running_var}
    variables = {"batch_stats": {k: v.numpy() for k, v in stats.items()}}
    assert set(FrozenBatchNorm().init(jax.random.PRNGKey(0), x)) == {"batch_stats"}
    with torch.no_grad():
        want = ref(_nchw(x, torch)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(FrozenBatchNorm().apply(variables, x), want, rtol=1e-6, atol=1e-6)


def test_detr_backbone_through_the_cli_equals_intermediate_layer_getter(tmp_path):
    """DETR's backbone: ResNet-50, FrozenBatchNorm2d, DC5 (dilated layer4), the stage maps
    of torchvision's IntermediateLayerGetter; the weights go through `python -m common.convert`."""
    torch = require("torch")
    tv = require("torchvision")
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.ops.misc import FrozenBatchNorm2d
    torch.manual_seed(0)
    ref = _randomise_norms(tv.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d,
                                              replace_stride_with_dilation=[False, False, True]), torch)
    src, out = str(tmp_path / "resnet50.pth"), str(tmp_path / "converted")
    torch.save(ref.state_dict(), src)
    convert.main(["torchvision", src, out, "--arch", "resnet50", "--norm", "frozen"])
    variables = checkpoint.load_variables(out)
    assert "scale" not in variables["params"]["stem"].get("bn1", {})
    ours = resnet50(norm="frozen", replace_stride_with_dilation=(False, False, True))
    with torch.no_grad():
        want = IntermediateLayerGetter(ref, {name: name for name in LAYERS})(_nchw(IMAGES, torch))
    with jax.default_matmul_precision("highest"):
        got = jax.jit(lambda v, x: ours.apply(v, x, features=LAYERS))(variables, IMAGES)
    assert [got[k].shape[1] for k in LAYERS] == [16, 8, 4, 4]            # layer4 at stride 16
    for name in LAYERS:
        _assert_close(got[name], want[name].numpy().transpose(0, 2, 3, 1))


def test_dilation_equals_torchvision():
    """Dilated layer3 and layer4: the first block of a dilated stage keeps the previous dilation."""
    torch = require("torch")
    tv = require("torchvision")
    torch.manual_seed(0)
    ref = _randomise_norms(tv.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True]), torch)
    variables = resnet.convert_torchvision(_state_dict(ref), "resnet50")
    ours = resnet50(replace_stride_with_dilation=(False, True, True))
    with torch.no_grad():
        want = ref(_nchw(IMAGES, torch)).numpy()
    with jax.default_matmul_precision("highest"):
        got = jax.jit(ours.apply)(variables, IMAGES)
    _assert_close(got, want)


def test_frozen_stages_get_no_gradient_and_keep_their_statistics():
    model = resnet.ResNet((1, 1, 1, 1), planes=(8, 8, 16, 16), num_classes=3, block="basic", frozen_stages=2)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
    variables = random_variables(model, x)

    def loss(params):
        out, updates = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"],
                                   features=("stem", "layer1", "head"))    # taps of frozen stages too
        return sum(jnp.sum(v ** 2) for v in out.values()), updates

    grads, updates = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    norms = {k: float(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(v))) for k, v in grads.items()}
    frozen = [k for k in norms if k == "stem" or k.startswith(("layer1_", "layer2_"))]
    assert frozen and all(norms[k] == 0.0 for k in frozen), norms
    assert all(norms[k] > 0.0 for k in norms if k not in frozen), norms
    stats = updates["batch_stats"]
    np.testing.assert_array_equal(stats["layer2_0"]["bn1"]["mean"], variables["batch_stats"]["layer2_0"]["bn1"]["mean"])
    assert not np.allclose(stats["layer3_0"]["bn1"]["mean"], variables["batch_stats"]["layer3_0"]["bn1"]["mean"])


def test_converter_rejects_a_mismatched_architecture(tmp_path):
    torch = require("torch")
    tv = require("torchvision")
    src = str(tmp_path / "resnet18.pth")
    torch.save(tv.models.resnet18(weights=None).state_dict(), src)
    with pytest.raises(ValueError, match="does not fit"):
        convert.main(["torchvision", src, str(tmp_path / "out"), "--arch", "resnet34"])
