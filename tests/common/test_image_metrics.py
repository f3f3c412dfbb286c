"""LPIPS, the FID Inception-v3 and the FID / IS formulas (common/image_metrics.py,
common/layers/inception.py, common/layers/alexnet.py).

Equality with the references on seeded random weights: golden fixtures made once by
make_image_metrics_golden.py with the lpips and pytorch-fid packages (not test
dependencies); the weights are regenerated here from the stored names and shapes and go
through our converters. torchvision's AlexNet trunk and torch's bilinear resize are run
directly (torch is a test dependency)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from common import checkpoint, image_metrics as im
from common.convert import NotAModelCheckpoint
from common.errors import ConfigError
from common.layers import alexnet, inception
from tests.common.image_metrics_golden import seeded_state_dict
from tests.conftest import require

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden_image_metrics.npz"))


def golden_state_dict(prefix):
    shapes = [tuple(int(x) for x in s.split(",") if x) for s in GOLDEN[f"{prefix}_shapes"]]
    return seeded_state_dict([str(k) for k in GOLDEN[f"{prefix}_keys"]], shapes, int(GOLDEN[f"{prefix}_seed"]))


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def test_parameter_counts():
    z = jnp.zeros((1, 75, 75, 3))
    v = jax.eval_shape(lambda: inception.InceptionV3(resize_input=False).init(jax.random.PRNGKey(0), z))
    assert _count(v["params"]) == 23_850_960            # pytorch-fid's fid_inception_v3, counted in torch
    z = jnp.zeros((1, 64, 64, 3))
    v = jax.eval_shape(lambda: im.LPIPS("alex").init(jax.random.PRNGKey(0), z, z))
    assert _count(v["params"]["net"]) == 2_469_696      # torchvision alexnet.features
    assert _count({k: v["params"][k] for k in v["params"] if k.startswith("lin")}) == 1_152   # 64+192+384+256+256


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package(net):
    sd = golden_state_dict(f"lpips_{net}")              # a whole LPIPS state_dict (net.slice*, lin*, lins.*)
    got = im.LPIPS(net).apply(im.convert_lpips([sd], net), GOLDEN[f"lpips_{net}_a"], GOLDEN[f"lpips_{net}_b"])
    np.testing.assert_allclose(np.asarray(got), GOLDEN[f"lpips_{net}_out"], rtol=1e-4, atol=1e-8)
    same = im.LPIPS(net).apply(im.convert_lpips([sd], net), GOLDEN[f"lpips_{net}_a"], GOLDEN[f"lpips_{net}_a"])
    np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-7)


def test_alexnet_trunk_equals_torchvision_and_lpips_cli(tmp_path):
    torch = require("torch")
    require("torchvision")
    from torchvision.models import alexnet as tv_alexnet
    torch.manual_seed(0)
    features = tv_alexnet().features.eval()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 67, 67, 3)).astype(np.float32)
    with torch.no_grad():
        want = features[:12](torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    # the two files a user has: lpips' lin weights and torchvision's whole AlexNet
    lin = {k: v for k, v in golden_state_dict("lpips_alex").items() if k.startswith("lin")}
    torch.save({k: torch.from_numpy(v) for k, v in lin.items()}, tmp_path / "alex.pth")
    tv_sd = {f"features.{k}": v for k, v in features.state_dict().items()}
    tv_sd["classifier.1.weight"] = torch.zeros(3, 2)
    torch.save(tv_sd, tmp_path / "alexnet.pth")
    im.main(["lpips", str(tmp_path / "alex.pth"), str(tmp_path / "alexnet.pth"), str(tmp_path / "out")])
    variables = checkpoint.load_variables(str(tmp_path / "out"))
    got = alexnet.AlexNetFeatures().apply({"params": variables["params"]["net"]}, x, features=("relu5",))["relu5"]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
    with pytest.raises(NotAModelCheckpoint, match="weights/v0.1/alex.pth"):
        im.convert_lpips([{k: v.numpy() for k, v in tv_sd.items()}], "alex")
    # an evaluation with the converted weights names the metric plainly; a wrong path names itself
    nets = im.QualityNetworks("alex", lpips_checkpoint=str(tmp_path / "out"), inception_size=75)
    assert nets.name("lpips_alex", nets.lpips_real) == "lpips_alex"
    assert nets.name("fid", nets.inception_real) == "fid_stand_in"
    y = np.random.default_rng(1).uniform(-1, 1, (2, 64, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(nets.lpips_distance(y, y[::-1]), im.LPIPS("alex").apply(variables, y, y[::-1]),
                               rtol=1e-6)
    with pytest.raises(ConfigError, match="nowhere/lpips"):
        im.QualityNetworks("alex", lpips_checkpoint=str(tmp_path / "nowhere" / "lpips"))


def test_fid_inception_equals_pytorch_fid_and_cli(tmp_path):
    torch = require("torch")
    sd = golden_state_dict("inception")
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "pt_inception.pth")
    im.main(["inception", str(tmp_path / "pt_inception.pth"), str(tmp_path / "out")])
    variables = checkpoint.load_variables(str(tmp_path / "out"))
    out = jax.jit(lambda v, x: inception.InceptionV3(resize_input=False).apply(v, x))(variables, GOLDEN["inception_x"])
    np.testing.assert_allclose(np.asarray(out["pool3"]), GOLDEN["inception_pool3"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["logits"]), GOLDEN["inception_logits"], rtol=1e-4, atol=1e-4)
    bias = variables["params"]["fc"]["bias"]
    np.testing.assert_allclose(np.asarray(out["logits_unbiased"]), GOLDEN["inception_logits"] - bias, atol=1e-4)


def test_torchvision_inception_for_the_inception_score_equals_torchvision(tmp_path):
    """inception-score-pytorch's network: torchvision's own Inception3 (pools count the
    padding, Mixed_7c average-pools, 1000 classes), seeded weights through the CLI."""
    torch = require("torch")
    require("torchvision")
    from torchvision.models import inception_v3
    ref = inception_v3(weights=None, aux_logits=False, init_weights=False).eval()
    keys = list(ref.state_dict())
    sd = seeded_state_dict(keys, [tuple(ref.state_dict()[k].shape) for k in keys], 4)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "inception_v3_google.pth")
    im.main(["inception", str(tmp_path / "inception_v3_google.pth"), str(tmp_path / "out"), "--blocks", "torchvision"])
    variables = checkpoint.load_variables(str(tmp_path / "out"))
    x = np.random.default_rng(5).uniform(-1, 1, (2, 80, 80, 3)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    net = inception.InceptionV3(resize_input=False, normalize_input=False, blocks="torchvision", num_classes=1000)
    got = jax.jit(net.apply)(variables, x)["logits"]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
    nets = im.QualityNetworks(is_network="torchvision", is_checkpoint=str(tmp_path / "out"))
    assert nets.name("is", nets.is_real) == "is" and nets.name("fid", nets.inception_real) == "fid_stand_in"
    with pytest.raises(ConfigError, match="unknown IS network"):
        im.QualityNetworks(is_network="tf")


def test_resize_equals_torch_interpolate():
    torch = require("torch")
    x = np.random.default_rng(1).standard_normal((2, 13, 7, 3)).astype(np.float32)
    for h, w in ((29, 29), (5, 4), (13, 20)):           # up, down, mixed
        want = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), size=(h, w),
                                               mode="bilinear", align_corners=False).numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(np.asarray(inception.resize_bilinear(x, h, w)), want, atol=1e-5)


def test_frechet_distance_and_inception_score():
    assert im.fid(GOLDEN["fid_a"], GOLDEN["fid_b"]) == pytest.approx(float(GOLDEN["fid_out"]), rel=1e-9)
    for method in im.FID_METHODS:
        assert im.fid(GOLDEN["fid_a"], GOLDEN["fid_b"], method) == pytest.approx(float(GOLDEN["fid_out"]), rel=1e-9)
    a = np.random.default_rng(0).standard_normal((50, 4))
    assert im.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert im.fid(a, a + 2.0) == pytest.approx(16.0, rel=1e-6)      # a shift of 2 in 4 dims: |mu|^2
    few = np.random.default_rng(3).standard_normal((6, 40))           # fewer images than dimensions
    assert im.fid(few, few, "lowrank") == pytest.approx(0.0, abs=1e-9)
    assert im.fid(few, few + 1.0, "lowrank") == pytest.approx(40.0, rel=1e-9)
    assert im.inception_score(np.zeros((20, 7)), splits=10) == pytest.approx((1.0, 0.0))   # p(y|x) = p(y)
    one_hot = np.eye(10) * 50.0                                         # 10 confident, distinct classes
    assert im.inception_score(one_hot, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert im.inception_score(one_hot, splits=2)[0] == pytest.approx(5.0, rel=1e-6)
    logits = np.random.default_rng(2).standard_normal((30, 5)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    want = [np.exp(np.mean([stats.entropy(r, p[k * 10:(k + 1) * 10].mean(0)) for r in p[k * 10:(k + 1) * 10]]))
            for k in range(3)]                                        # inception-score-pytorch's loop
    assert im.inception_score(logits, splits=3) == pytest.approx((np.mean(want), np.std(want)), rel=1e-9)
    with pytest.raises(ValueError, match="at least 10 images"):
        im.inception_score(np.zeros((5, 3)))


def test_quality_evaluator_with_stand_ins():
    from common.evaluators import SumEvaluator
    nets = im.QualityNetworks("alex", inception_size=75)
    ev = im.QualityEvaluator(nets, inner=SumEvaluator(lambda s: {"n": float(s["n"])}), is_splits=2,
                             fid_method="lowrank")
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (4, 64, 48, 3)).astype(np.float32)
    for mask in ([1, 1, 1, 1], [1, 1, 0, 0]):
        fake = np.clip(real + 0.2 * rng.standard_normal(real.shape), -1, 1).astype(np.float32)
        ev.add({"fake": fake, "real": real, "mask": np.asarray(mask, np.float32), "n": np.float32(sum(mask))})
    out = ev.compute()
    assert set(out) == {"n", "lpips_alex_stand_in", "fid_stand_in", "is_stand_in", "is_std_stand_in"}
    assert out["n"] == 6 and len(ev._fake[1]) == 2                      # masked rows dropped
    assert out["lpips_alex_stand_in"] > 0 and out["fid_stand_in"] > 0 and out["is_stand_in"] >= 1.0
    same = im.QualityEvaluator(nets, lpips=True, fid_is=False)
    same.add({"fake": real, "real": real})
    assert same.compute() == {"lpips_alex_stand_in": pytest.approx(0.0, abs=1e-7)}
