"""Spectral norm equals torch.nn.utils.spectral_norm: conv and linear, train mode (power
iteration, updated u/v, gradient) and eval mode, loaded from weight_orig/weight_u/weight_v."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.layers import spectral_norm as sn
from tests.conftest import require


def _torch_sn_conv(torch, stride=2, padding=1):
    torch.manual_seed(0)
    return torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 5, 4, stride, padding))


def _vars(m):
    return sn.from_torch(m.weight_orig.detach().numpy(), m.weight_u.numpy(), m.weight_v.numpy(),
                         None if m.bias is None else m.bias.detach().numpy())


X = np.random.default_rng(0).standard_normal((2, 9, 9, 3)).astype(np.float32)


def test_conv_train_and_eval_equal_torch():
    torch = require("torch")
    ref = _torch_sn_conv(torch)
    ours = sn.SNConv(5, (4, 4), (2, 2), 1)
    variables = _vars(ref)
    xt = torch.from_numpy(X.transpose(0, 3, 1, 2).copy())
    # eval: the stored u, v as they are
    ref.eval()
    with torch.no_grad():
        want = ref(xt).numpy().transpose(0, 2, 3, 1)
    got = ours.apply(variables, X, update_stats=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # train: two forwards, u and v updated each time
    ref.train()
    for _ in range(2):
        with torch.no_grad():
            want = ref(xt).numpy().transpose(0, 2, 3, 1)
        got, upd = ours.apply(variables, X, update_stats=True, mutable=[sn.COLLECTION])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        variables = {**variables, **upd}
        np.testing.assert_allclose(variables[sn.COLLECTION]["u"], ref.weight_u.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(variables[sn.COLLECTION]["v"], ref.weight_v.numpy(), rtol=1e-5, atol=1e-6)


def test_gradient_equals_torch():
    torch = require("torch")
    ref = _torch_sn_conv(torch, stride=1, padding=0)
    variables = _vars(ref)
    xt = torch.from_numpy(X.transpose(0, 3, 1, 2).copy())
    ref.train()
    ref(xt).pow(2).sum().backward()
    ours = sn.SNConv(5, (4, 4), (1, 1), 0)

    def loss(params):
        y, _ = ours.apply({**variables, "params": params}, X, update_stats=True, mutable=[sn.COLLECTION])
        return jnp.sum(y ** 2)
    g = jax.grad(loss)(variables["params"])
    np.testing.assert_allclose(g["kernel"], ref.weight_orig.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g["bias"], ref.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_dense_equals_torch_and_stats_stay_out_of_params():
    torch = require("torch")
    torch.manual_seed(1)
    ref = torch.nn.utils.spectral_norm(torch.nn.Linear(7, 4))
    x = np.random.default_rng(1).standard_normal((3, 7)).astype(np.float32)
    ref.train()
    with torch.no_grad():
        u0 = ref.weight_u.numpy().copy()
        v0 = ref.weight_v.numpy().copy()
        variables = sn.from_torch(ref.weight_orig.detach().numpy(), u0, v0, ref.bias.detach().numpy())
        want = ref(torch.from_numpy(x)).numpy()
    got, _ = sn.SNDense(4).apply(variables, x, mutable=[sn.COLLECTION])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    init = sn.SNDense(4).init(jax.random.PRNGKey(0), x)
    assert set(init) == {"params", sn.COLLECTION}
    assert init[sn.COLLECTION]["u"].shape == (4,) and init[sn.COLLECTION]["v"].shape == (7,)
    np.testing.assert_allclose(np.linalg.norm(init[sn.COLLECTION]["u"]), 1.0, rtol=1e-6)


def test_normalised_kernel_has_unit_spectral_norm_after_iterations():
    x = jnp.ones((1, 6, 6, 4))
    m = sn.SNConv(8, (3, 3), padding=1, n_power_iterations=30, use_bias=False)
    v = m.init(jax.random.PRNGKey(0), x)
    k = v["params"]["kernel"]
    w = np.transpose(np.asarray(k), (3, 2, 0, 1)).reshape(8, -1)
    y, upd = m.apply(v, x, mutable=[sn.COLLECTION])
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False)[0] / np.linalg.svd(
        w / (np.linalg.svd(w, compute_uv=False)[0]), compute_uv=False)[0], np.linalg.svd(w, compute_uv=False)[0])
    sigma = float(upd[sn.COLLECTION]["u"] @ (w @ upd[sn.COLLECTION]["v"]))
    np.testing.assert_allclose(sigma, np.linalg.svd(w, compute_uv=False)[0], rtol=1e-4)
    with pytest.raises(ValueError, match="normalize"):
        sn.SNConv(2, normalize="bad").init(jax.random.PRNGKey(0), x)


def test_add_eps_form_equals_the_hand_written_form():
    """The older x / (|x| + eps) form, power iteration from un-normalised initial u."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    u = rng.standard_normal(5).astype(np.float32)
    v = rng.standard_normal(48).astype(np.float32)
    wm = w.reshape(5, -1).astype(np.float64)
    v1 = wm.T @ u / (np.linalg.norm(wm.T @ u) + 1e-12)
    u1 = wm @ v1 / (np.linalg.norm(wm @ v1) + 1e-12)
    kernel_want = (w / (u1 @ wm @ v1)).transpose(2, 3, 1, 0)
    m = sn.SNConv(5, (4, 4), use_bias=False, normalize="add")
    variables = sn.from_torch(w, u, v)
    x = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)
    got, upd = m.apply(variables, x, mutable=[sn.COLLECTION])
    np.testing.assert_allclose(got.reshape(-1), np.einsum("hwio,hwi->o", kernel_want, x[0]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(upd[sn.COLLECTION]["u"], u1, rtol=1e-5)
