"""TPS grid generators for every kernel: identity at zero offsets, interpolation of the
control points, the Wendland kernels' values at 0 and a, a float64 NumPy solve, cond(L)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avton import tps

H, W = 32, 24


@pytest.mark.parametrize("kernel", tps.KERNELS)
def test_zero_offsets_give_the_identity_grid(kernel):
    grid = tps.TpsGrid(H, W, 5, kernel)(jnp.zeros((2, 50)))
    np.testing.assert_allclose(grid, np.broadcast_to(tps.base_grid(H, W), grid.shape), atol=1e-5)


@pytest.mark.parametrize("kernel", tps.KERNELS)
def test_control_points_map_exactly_and_match_a_float64_solve(kernel):
    gen = tps.TpsGrid(H, W, 5, kernel)
    theta = 0.1 * np.random.default_rng(1).standard_normal((2, 50)).astype(np.float32)
    q = gen.source_points(theta)
    np.testing.assert_allclose(gen.map_points(q, jnp.asarray(gen.points, jnp.float32)), q, atol=2e-5)
    # float64: solve L [W; A] = [Q; 0] and evaluate the map at every pixel
    L = tps.system_matrix(gen.points, kernel, 1.0)
    pix = tps.base_grid(H, W).reshape(-1, 2)
    u = tps.kernel_fn(kernel, 1.0)(((pix[:, None] - gen.points[None]) ** 2).sum(-1))
    basis = np.concatenate([u, np.ones((len(pix), 1)), pix], 1)
    for b in range(2):
        rhs = np.concatenate([np.asarray(q[b], np.float64), np.zeros((3, 2))])
        want = basis @ np.linalg.solve(L, rhs)
        np.testing.assert_allclose(np.asarray(gen(theta)[b]).reshape(-1, 2), want, atol=2e-5)


@pytest.mark.parametrize("kernel", ["wendland_c2", "wendland_c4"])
@pytest.mark.parametrize("a", [0.7, 1.0, 2.0])
def test_wendland_kernels_are_one_at_zero_and_vanish_smoothly_at_the_radius(kernel, a):
    psi = tps.kernel_fn(kernel, a)
    assert psi(np.array(0.0)) == pytest.approx(1.0)
    assert psi(np.array(a * a)) == pytest.approx(0.0, abs=1e-12)
    assert psi(np.array((1.5 * a) ** 2)) == 0.0                       # compact support
    eps = 1e-4                                                       # psi'(a) = 0
    assert abs(psi(np.array((a - eps) ** 2)) - psi(np.array(a * a))) / eps < 1e-6
    # local: a control point farther than a from a pixel does not move it
    gen = tps.TpsGrid(H, W, 5, kernel, radius=a)
    assert np.all(gen.u[(((tps.base_grid(H, W).reshape(-1, 1, 2) - gen.points[None]) ** 2).sum(-1)) >= a * a] == 0)


def test_condition_numbers_of_the_5x5_system():
    """The spec's pitfall 10: cond(L) 5.5 / 13.6 / 162 / 603 for a = 0.5 / 1 / 2 / 2 sqrt 2
    with the C2 Wendland kernel, 408 for CP-VTON's TPS kernel."""
    p = tps.control_points(5)
    cond = {a: np.linalg.cond(tps.system_matrix(p, "wendland_c2", a)) for a in (0.5, 1.0, 2.0, 2 * np.sqrt(2))}
    np.testing.assert_allclose([cond[a] for a in sorted(cond)], [5.5, 13.6, 162, 603], rtol=0.02)
    assert np.linalg.cond(tps.system_matrix(p, "tps_cpvton")) == pytest.approx(408, rel=0.02)


def test_control_point_orders():
    cp, ac = tps.control_points(5, "cpvton"), tps.control_points(5, "acgpn", 0.9)
    assert tuple(cp[1]) == (-1.0, -0.5) and tuple(cp[5]) == (-0.5, -1.0)     # X slowest
    assert tuple(ac[1]) == pytest.approx((-0.45, -0.9))                       # Y slowest
    q = jnp.asarray(cp[None])
    np.testing.assert_allclose(tps.to_acgpn_order(q)[0], tps.control_points(5, "acgpn"))


def test_tps_kernels_cpvton_and_acgpn_give_the_same_map():
    theta = 0.1 * np.random.default_rng(2).standard_normal((1, 50)).astype(np.float32)
    a = tps.TpsGrid(H, W, 5, "tps_cpvton")(theta)
    b = tps.TpsGrid(H, W, 5, "tps_acgpn")(theta)
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_grid_sample_is_differentiable_in_the_grid():
    img = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 8, 6, 3)), jnp.float32)
    gen = tps.TpsGrid(8, 6, 5, "wendland_c2")
    f = lambda t: tps.grid_sample(img, gen(t), "border").sum()  # noqa: E731
    g = jax.grad(f)(jnp.full((1, 50), 0.01))
    assert np.isfinite(g).all() and np.abs(g).sum() > 0


def test_paper_form_of_the_grid_constraint_is_zero_on_a_regular_grid():
    reg = jnp.asarray(tps.control_points(5, "acgpn")[None], jnp.float32)
    total, _ = tps.grid_constraint_paper(reg)
    assert float(total) == pytest.approx(0.0, abs=1e-4)
    bent = reg.at[0, 12, 0].add(0.2)
    assert float(tps.grid_constraint_paper(bent)[0]) > 0.05
