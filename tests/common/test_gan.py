"""Adversarial losses: equal to torch's MSE / BCE-with-logits / hinge formulas, on single
and multiscale logits; the lookup; feature matching with no gradient through the real side."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import gan
from tests.conftest import require

RNG = np.random.default_rng(0)
REAL = [RNG.standard_normal((2, 8, 8, 1)).astype(np.float32), RNG.standard_normal((2, 4, 4, 1)).astype(np.float32)]
FAKE = [RNG.standard_normal((2, 8, 8, 1)).astype(np.float32), RNG.standard_normal((2, 4, 4, 1)).astype(np.float32)]


def _torch_losses(torch, kind, real, fake):
    F = torch.nn.functional
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    if kind == "lsgan":
        d = F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f))
        g = F.mse_loss(f, torch.ones_like(f))
    elif kind == "bce":
        d = (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
             + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))
        g = F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
    else:
        d = torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
        g = -f.mean()
    return float(d), float(g)


@pytest.mark.parametrize("kind", ["lsgan", "bce", "hinge"])
def test_losses_equal_torch_single_and_multiscale(kind):
    torch = require("torch")
    d_loss, g_loss = gan.gan_losses(kind)
    want = [_torch_losses(torch, kind, r, f) for r, f in zip(REAL, FAKE)]
    np.testing.assert_allclose(float(d_loss(REAL[0], FAKE[0])), want[0][0], rtol=1e-5)
    np.testing.assert_allclose(float(g_loss(FAKE[0])), want[0][1], rtol=1e-5)
    np.testing.assert_allclose(float(d_loss(REAL, FAKE)), want[0][0] + want[1][0], rtol=1e-5)
    np.testing.assert_allclose(float(g_loss(FAKE)), want[0][1] + want[1][1], rtol=1e-5)
    # a scale given as a list of intermediate outputs: its last entry is the logit map
    nested = [[np.ones((2, 3)), FAKE[0]], [np.ones((2, 3)), FAKE[1]]]
    np.testing.assert_allclose(float(g_loss(nested)), want[0][1] + want[1][1], rtol=1e-5)


def test_named_functions_and_unknown_kind():
    assert gan.gan_losses("lsgan") == (gan.lsgan_d_loss, gan.lsgan_g_loss)
    assert gan.gan_losses("hinge") == (gan.hinge_d_loss, gan.hinge_g_loss)
    assert gan.gan_losses("bce") == (gan.bce_d_loss, gan.bce_g_loss)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan.gan_losses("wgan")


def test_lsgan_values_by_hand():
    assert float(gan.lsgan_d_loss(jnp.ones(4), jnp.zeros(4))) == 0.0
    assert float(gan.lsgan_g_loss(jnp.zeros(4))) == 1.0
    assert float(gan.hinge_d_loss(jnp.full(3, 2.0), jnp.full(3, -2.0))) == 0.0


def test_feature_matching():
    real = [[jnp.ones((2, 4)), jnp.zeros((2, 2))], [jnp.full((2, 4), 2.0), jnp.zeros((2, 2))]]
    fake = [[jnp.zeros((2, 4)), jnp.ones((2, 2))], [jnp.zeros((2, 4)), jnp.ones((2, 2))]]
    assert float(gan.feature_matching_loss(real, fake)) == pytest.approx(1 + 1 + 2 + 1)
    assert float(gan.feature_matching_loss(real, fake, weight=0.5, skip_last=True)) == pytest.approx(0.5 * (1 + 2))
    g_real, g_fake = jax.grad(lambda r, f: gan.feature_matching_loss([r], [f]), argnums=(0, 1))(
        jnp.ones((3,)), jnp.zeros((3,)))
    assert float(jnp.abs(g_real).sum()) == 0.0 and float(jnp.abs(g_fake).sum()) > 0
    with pytest.raises(ValueError, match="feature maps"):
        gan.feature_matching_loss([jnp.ones(2)], [jnp.ones(2), jnp.ones(2)])
