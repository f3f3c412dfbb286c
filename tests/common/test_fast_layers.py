"""Layers written for what XLA:CPU compiles well: the depth-wise conv equals XLA's grouped conv
(values, gradients, nn.Conv's parameters); the gradient barrier keeps values and survives
optimisation; the banded conv has lax's conv values and gradients and nn.Conv's parameters."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from common.layers.banded_conv import BandedConv, band_height, conv2d, unrolled_for_cost_analysis
from common.layers.depthwise import DepthwiseConv, depthwise_conv

SPATIAL = "DHW"


def grouped(x, w, strides, padding):
    nd = x.ndim - 2
    sp = SPATIAL[-nd:]
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=(f"N{sp}C", f"{sp}IO", f"N{sp}C"),
                                    feature_group_count=x.shape[-1])


@pytest.mark.parametrize("shape, kernel, strides, padding", [
    ((2, 5, 6, 7, 3), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3),       # PEG: stride 1, same padding
    ((1, 4, 15, 13, 2), (1, 7, 7), (1, 7, 7), "VALID"),           # pooling: stride = kernel, remainder dropped
    ((2, 9, 11, 4), (3, 2), (2, 3), ((0, 2), (1, 0))),            # 2D, unequal strides and padding
    ((3, 10, 5), (4,), (4,), ((1, 1),)),                          # 1D, stride = kernel after padding
])
def test_depthwise_conv_equals_grouped_conv_and_its_gradients(shape, kernel, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(kernel + (1, shape[-1])), jnp.float32)
    want = grouped(x, w, strides, padding)
    got = depthwise_conv(x, w, strides, padding)          # "auto": the slices on this CPU
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(depthwise_conv(x, w, strides, padding, method="grouped"), want)
    cot = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
    g_want = jax.grad(lambda x, w: jnp.sum(grouped(x, w, strides, padding) * cot), argnums=(0, 1))(x, w)
    g_got = jax.grad(lambda x, w: jnp.sum(depthwise_conv(x, w, strides, padding) * cot), argnums=(0, 1))(x, w)
    for a, b in zip(g_got, g_want):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_module_has_nn_conv_parameters_and_output():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 4, 8, 8, 6)), jnp.float32)
    ours = DepthwiseConv((3, 3, 3), padding=((1, 1),) * 3, bias_init=nn.initializers.normal(1.0))
    conv = nn.Conv(6, (3, 3, 3), padding=((1, 1),) * 3, feature_group_count=6, bias_init=nn.initializers.normal(1.0))
    p_ours, p_conv = ours.init(jax.random.PRNGKey(0), x), conv.init(jax.random.PRNGKey(0), x)
    assert jax.tree.map(jnp.shape, p_ours) == jax.tree.map(jnp.shape, p_conv)
    for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_conv)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.apply(p_ours, x), conv.apply(p_conv, x), atol=1e-5)


def test_bad_kernel_or_method_is_named():
    with pytest.raises(ValueError, match="do not fit"):
        depthwise_conv(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 2)), (1, 1))
    with pytest.raises(ValueError, match="'slices' or 'grouped'"):
        depthwise_conv(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 3)), (1, 1), method="fast")


def test_gradient_barrier_keeps_values_and_survives_xla_cpu():
    from common.layers import gradient_barrier
    x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    f = lambda x: jnp.sum(jnp.sin(gradient_barrier(x * 2.0)) ** 2)
    g = lambda x: jnp.sum(jnp.sin(x * 2.0) ** 2)
    np.testing.assert_array_equal(gradient_barrier(x), x)
    np.testing.assert_allclose(jax.grad(f)(x), jax.grad(g)(x), rtol=1e-6)
    nan = jax.grad(lambda x: jnp.sum(gradient_barrier(x) * jnp.nan))(x)     # the other branch: same values
    assert np.isnan(np.asarray(nan)).all()
    # the cotangent stays materialised: the conditional is still in the optimised program
    assert "conditional(" in jax.jit(jax.grad(f)).lower(x).compile().as_text()


# ------------------------------------------------------------------ banded conv (weight gradient by bands)
@pytest.mark.parametrize("shape, kernel, padding", [
    ((2, 12, 10, 3), (3, 3), ((1, 1), (1, 1))),    # VOLO stem: 3x3 "same"
    ((1, 13, 7, 2), (3, 3), ((1, 1), (1, 1))),     # prime height: one-row bands
    ((2, 9, 8, 4), (2, 3), ((0, 1), (2, 0))),      # uneven kernel and padding
    ((3, 6, 5, 2), (1, 1), ((0, 0), (0, 0))),      # 1x1
])
def test_banded_conv_equals_lax_conv_and_its_gradients(shape, kernel, padding):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(kernel + (shape[-1], 5)), jnp.float32)

    def lax_conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    want = lax_conv(x, w)
    np.testing.assert_array_equal(conv2d(x, w, padding), want)   # the forward is lax's conv
    cot = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
    g_want = jax.grad(lambda x, w: jnp.sum(lax_conv(x, w) * cot), argnums=(0, 1))(x, w)
    g_got = jax.jit(jax.grad(lambda x, w: jnp.sum(conv2d(x, w, padding, method="banded") * cot),
                             argnums=(0, 1)))(x, w)
    for a, b in zip(g_got, g_want):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_band_height_divides_and_bounds_the_rows():
    assert band_height(112, 112) == 16                 # 16 * 112 = 1792 <= 2048
    assert band_height(13, 7) == 13 and band_height(13, 300) == 1
    assert band_height(56, 56, rows=100) == 1


def test_banded_conv_module_has_nn_conv_parameters_and_output():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 8, 8, 3)), jnp.float32)
    ours = BandedConv(4, (3, 3), ((1, 1), (1, 1)))
    ref = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)))
    v = ours.init(jax.random.PRNGKey(0), x)
    assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, ref.init(jax.random.PRNGKey(0), x))
    np.testing.assert_allclose(ours.apply(v, x), ref.apply(v, x), atol=1e-6)
    with pytest.raises(ValueError, match="method"):
        conv2d(x, v["params"]["kernel"], ((1, 1), (1, 1)), method="fast")


def test_cost_analysis_sees_every_flop_of_the_banded_gradient_only_when_unrolled():
    x = jnp.ones((2, 16, 8, 4))
    w = jnp.ones((3, 3, 4, 4))

    def flops():
        g = jax.jit(jax.grad(lambda w: jnp.sum(conv2d(x, w, ((1, 1), (1, 1))))))
        return g.lower(w).compile().cost_analysis()["flops"]
    banded = flops()                                     # "auto" on this CPU: a scan over bands
    with unrolled_for_cost_analysis():
        unrolled = flops()
    expected = jax.jit(jax.grad(lambda w: jnp.sum(lax.conv_general_dilated(
        x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))))).lower(w).compile()
    assert unrolled == expected.cost_analysis()["flops"] and banded < unrolled
