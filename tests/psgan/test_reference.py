"""Equality with the official PSGAN code (fixtures from tests/psgan/make_golden.py, which
runs wtjiang98/PSGAN itself): PreProcess.process, the generator (γ̃, β̃ and the output,
through the converter from the official state_dict names), the SN discriminator (two
forwards with their power iterations) and the histogram loss."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psgan import convert, losses, preprocess
from psgan.model import Discriminator, create_model
from tests.psgan import golden

G = np.load(os.path.join(os.path.dirname(__file__), "golden.npz"))


def _official_state_dict():
    shapes = [tuple(s[:n]) for s, n in zip(G["g_shapes"], G["g_ndims"])]
    return golden.random_state_dict([str(n) for n in G["g_names"]], shapes, seed=1)


def _inputs():
    masks, diffs = zip(*[preprocess.process(G["seg"][i], G["lms"][i]) for i in range(2)])
    return np.stack(masks), np.stack(diffs)


def test_preprocess_equals_official():
    masks, diffs = _inputs()
    np.testing.assert_array_equal(masks, G["masks"].astype(np.float32))
    got = diffs[..., G["diff_channels"]].transpose(0, 1, 4, 2, 3)
    np.testing.assert_allclose(got, G["diffs"], rtol=0, atol=2e-7)


def test_generator_equals_official_through_the_converter():
    variables = convert.convert_generator(_official_state_dict(), "psgan")
    model = create_model("psgan")
    masks, diffs = _inputs()
    images = golden.random_images(2, 2, 256)
    x, y = images[:1], images[1:]
    args = (x, y, masks[:1], masks[1:], diffs[:1], diffs[1:])

    @jax.jit
    def run(v):
        gamma, beta = model.apply(v, *args, method=model.morph)
        return gamma, beta, model.apply(v, x, gamma, beta, method=model.apply_matrices), model.apply(v, *args)

    with jax.default_matmul_precision("highest"):
        gamma, beta, two_pass, one_pass = run(variables)
    np.testing.assert_allclose(gamma[0, ..., 0], G["gamma"], rtol=0, atol=1e-4 * np.abs(G["gamma"]).max())
    np.testing.assert_allclose(beta[0, ..., 0], G["beta"], rtol=0, atol=1e-4 * np.abs(G["beta"]).max())
    np.testing.assert_allclose(two_pass[0, ::2, ::2], G["out_stride2"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(one_pass, two_pass, rtol=0, atol=1e-6)
    assert float(G["one_vs_two_pass"]) == 0.0


def test_discriminator_equals_official_with_its_power_iterations():
    sd = {str(k): G["d/" + str(k)] for k in G["d_names"]}
    variables = convert.convert_discriminator(sd)
    d = Discriminator(conv_dim=4, repeat_num=3)
    x = G["d_in"].transpose(0, 2, 3, 1)
    with jax.default_matmul_precision("highest"):
        out1, upd = d.apply(variables, x, mutable=["spectral_stats"])
        out2, upd = d.apply({**variables, **upd}, x[:, :, ::-1], mutable=["spectral_stats"])
    np.testing.assert_allclose(out1, G["d_out1"].transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out2, G["d_out2"].transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(upd["spectral_stats"]["main_0"]["u"], G["d_u_after"], rtol=1e-5, atol=1e-6)
    assert out1.shape == (2, 6, 6, 1)


@pytest.mark.parametrize("indexing", ["intended", "released"])
def test_histogram_loss_equals_official(indexing):
    key = "his_loss" if indexing == "intended" else "his_loss_released"
    for a, b, ma, mb, want in zip(G["his_a"], G["his_b"], G["his_ma"], G["his_mb"], G[key]):
        got = losses.histogram_loss(jnp.asarray(a.transpose(0, 2, 3, 1)), jnp.asarray(b.transpose(0, 2, 3, 1)),
                                    jnp.asarray(ma[:, 0]), jnp.asarray(mb[:, 0]), indexing)
        np.testing.assert_allclose(float(got[0]), want, rtol=1e-5, atol=1e-7)
    assert np.all(G["his_loss"] > 5 * G["his_loss_released"])        # the released call reads the wrong pixels


def test_histogram_loss_has_no_gradient_through_the_target():
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(np.tanh(rng.standard_normal((1, 16, 16, 3))), jnp.float32) for _ in range(2))
    m = jnp.asarray(rng.uniform(size=(1, 16, 16)) < 0.5, jnp.float32)
    ga, gb = jax.grad(lambda a, b: losses.histogram_loss(a, b, m, m).sum(), argnums=(0, 1))(a, b)
    assert float(jnp.abs(gb).sum()) == 0.0 and float(jnp.abs(ga).sum()) > 0.0
    assert float(jnp.abs(ga * (1 - m[..., None])).sum()) == 0.0          # only masked pixels get gradient
