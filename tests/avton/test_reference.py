"""Given the same weights, our modules compute what the official ones compute: fixtures
made by tests/avton/make_golden.py from sergeywong/cp-vton (GMM, FeatureCorrelation,
TpsGridGen, UnetGenerator, grid_sample with align_corners=True) and ACGPN (Refine,
MultiscaleDiscriminator, BoundedGridLocNet's grid terms, TPSGridGen). The weights are
regenerated with numpy and go through avton.convert, so the converter is tested too."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avton import convert, tps
from avton import model as M
from tests.avton import golden as G

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def cp():
    return dict(np.load(os.path.join(HERE, "golden_cpvton.npz")))


@pytest.fixture(scope="module")
def ac():
    return dict(np.load(os.path.join(HERE, "golden_acgpn.npz")))


def _sd(fix, prefix):
    shapes = [tuple(int(v) for v in s.split(",")) if s else () for s in fix[prefix + "_shapes"]]
    return G.random_state_dict(fix[prefix + "_names"], shapes)


def _nhwc(x):
    return jnp.asarray(x.transpose(0, 2, 3, 1))


def test_gmm_equals_cpvton_in_eval_and_train_mode(cp):
    h, w = G.GMM_SIZE
    a = G.inputs("agnostic", (G.GMM_BATCH, 22, h, w))
    c = G.inputs("cloth", (G.GMM_BATCH, 3, h, w))
    model = M.create_model("gmm")
    variables = convert.convert("gmm", _sd(cp, "gmm"), convert.template("gmm", 22))
    fn = jax.jit(lambda v, a, c: model.apply(v, a, c, train=False))
    grid, theta = fn(variables, _nhwc(a), _nhwc(c))
    np.testing.assert_allclose(theta, cp["gmm_eval_theta"], atol=2e-5)
    np.testing.assert_allclose(grid[:, ::8, ::8], cp["gmm_eval_grid"], atol=5e-5)
    # the grids differ by <= 8e-6 (float32 sums of the reference's TpsGridGen), i.e. 1e-3 px;
    # on a noise image (neighbours up to 2 apart) that moves a sample by <= 2e-3
    warped = tps.grid_sample(_nhwc(c), grid, "border")
    np.testing.assert_allclose(warped[:, ::8, ::8], cp["gmm_eval_warped"], atol=3e-3)
    (grid, theta), _ = jax.jit(lambda v, a, c: model.apply(v, a, c, train=True, mutable=["batch_stats"]))(
        variables, _nhwc(a), _nhwc(c))
    np.testing.assert_allclose(theta, cp["gmm_train_theta"], atol=5e-5)
    np.testing.assert_allclose(grid[:, ::8, ::8], cp["gmm_train_grid"], atol=1e-4)


def test_correlation_channel_order(cp):
    fa, fb = G.inputs("corr_a", (2, 5, 4, 3)), G.inputs("corr_b", (2, 5, 4, 3))
    out = M.correlation(_nhwc(fa), _nhwc(fb))
    np.testing.assert_allclose(out, cp["corr"], atol=1e-6)
    # and the definition: channel k = x * H + y of A's positions
    a, b = np.asarray(_nhwc(fa)), np.asarray(_nhwc(fb))
    direct = np.einsum("bijc,byxc->bijxy", b, a).reshape(2, 4, 3, 12)
    np.testing.assert_allclose(out, direct, atol=1e-6)


def test_tps_grids_equal_both_references(cp, ac):
    h, w = G.GMM_SIZE
    ours = tps.TpsGrid(h, w, 5, "tps_cpvton")(G.random_theta(2))
    np.testing.assert_allclose(ours[:, ::4, ::4], cp["tps_cpvton_grid"], atol=2e-5)
    gen = tps.TpsGrid(h, w, 5, "tps_acgpn", layout="acgpn", extent=0.9)
    src = ac["tps_acgpn_source"]
    theta = (src - gen.points[None]).transpose(0, 2, 1).reshape(1, 50)
    np.testing.assert_allclose(gen(theta)[:, ::4, ::4], ac["tps_acgpn_grid"], atol=2e-5)


def test_grid_sample_equals_torch_align_corners_true(cp):
    img = _nhwc(G.inputs("sample_img", (2, 3) + G.SAMPLE_SIZE))
    grid = jnp.asarray(1.3 * G.inputs("sample_grid", (2,) + G.SAMPLE_OUT + (2,)))
    for padding in ("zeros", "border"):
        np.testing.assert_allclose(tps.grid_sample(img, grid, padding), cp["sample_" + padding], atol=1e-6)


def test_tom_equals_cpvton_unet(cp):
    model = M.create_model("tom", ngf=G.TOM_NGF)
    variables = convert.convert("unet", _sd(cp, "tom"), convert.template("tom", 25, *G.TOM_SIZE, ngf=G.TOM_NGF))
    y = model.apply(variables, _nhwc(G.inputs("tom", (1, 25) + G.TOM_SIZE)))
    np.testing.assert_allclose(y, cp["tom_out"], atol=2e-5)


def test_refine_and_discriminator_equal_acgpn(ac):
    model = M.create_model("refine", out_ch=G.REFINE_OUT)
    variables = convert.convert("refine", _sd(ac, "refine"),
                                convert.template("refine", G.REFINE_IN, *G.REFINE_SIZE, out_ch=G.REFINE_OUT))
    y = jax.jit(model.apply)(variables, _nhwc(G.inputs("refine", (1, G.REFINE_IN) + G.REFINE_SIZE)))
    np.testing.assert_allclose(y, ac["refine_out"], atol=2e-4)   # IN over 2 x 2 at the bottleneck amplifies float32 sums
    d = M.create_model("disc", ndf=G.D_NDF)
    variables = convert.convert("disc", _sd(ac, "disc"), convert.template("disc", G.D_IN, *G.D_SIZE, ndf=G.D_NDF))
    feats = d.apply(variables, _nhwc(G.inputs("disc", (1, G.D_IN) + G.D_SIZE)))
    for i, scale in enumerate(feats):
        assert len(scale) == 5
        for j, f in enumerate(scale):
            np.testing.assert_allclose(f, ac[f"disc_out_{i}_{j}"], atol=2e-5)


def test_grid_constraint_equals_acgpn_terms(ac):
    for pts, want in zip(ac["grid_points"], ac["grid_terms"]):
        total, terms = tps.grid_constraint_acgpn(jnp.asarray(pts[None]))
        got = [float(terms[k]) for k in ("rx", "ry", "cx", "cy", "rg", "cg")]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert float(total) == pytest.approx(sum(want), rel=1e-5)
    floors = 0.1 * np.array([0.08] * 4 + [0.02] * 2)
    np.testing.assert_allclose(ac["grid_terms"][0], floors, rtol=1e-5)     # regular grid: all at the floor
    assert (ac["grid_terms"][2] > floors + 1e-4).all()                     # strong warp: none is
