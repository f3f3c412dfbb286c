"""The Permute-MLP operations against plain loops over the index formulas of the official code."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from permutator.model import WeightedPermuteMLP, branch_weights, mix_height, mix_width


def loop_mix_height(x, kernel, segment_dim):
    """out[b,i,w,g*S+t] = sum_{h,s} x[b,h,w,g*S+s] * W[i*S+t, h*S+s], W = kernel.T (torch layout)."""
    b_, h_, w_, c = x.shape
    s_ = c // segment_dim
    weight = kernel.T
    out = np.zeros_like(x)
    for b in range(b_):
        for w in range(w_):
            for g in range(segment_dim):
                u = np.array([x[b, h, w, g * s_ + s] for h in range(h_) for s in range(s_)])
                v = weight @ u
                for i in range(h_):
                    for t in range(s_):
                        out[b, i, w, g * s_ + t] = v[i * s_ + t]
    return out


def loop_mix_width(x, kernel, segment_dim):
    b_, h_, w_, c = x.shape
    s_ = c // segment_dim
    weight = kernel.T
    out = np.zeros_like(x)
    for b in range(b_):
        for h in range(h_):
            for g in range(segment_dim):
                u = np.array([x[b, h, w, g * s_ + s] for w in range(w_) for s in range(s_)])
                v = weight @ u
                for j in range(w_):
                    for t in range(s_):
                        out[b, h, j, g * s_ + t] = v[j * s_ + t]
    return out


# (B, H, W, C, segment_dim): square grids as the official models, and H != W with the
# generalised (H*S) x (H*S) / (W*S) x (W*S) kernels that the einsums accept.
SHAPES = [(2, 4, 4, 8, 4), (2, 3, 5, 12, 4), (1, 6, 2, 6, 3), (1, 2, 7, 10, 5)]


@pytest.mark.parametrize("shape", SHAPES)
def test_mix_height_matches_loops(shape):
    b, h, w, c, g = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, h, w, c)).astype(np.float32)
    n = h * (c // g)
    kernel = rng.normal(size=(n, n)).astype(np.float32)
    np.testing.assert_allclose(mix_height(jnp.asarray(x), jnp.asarray(kernel), g),
                               loop_mix_height(x, kernel, g), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_mix_width_matches_loops(shape):
    b, h, w, c, g = shape
    rng = np.random.default_rng(1)
    x = rng.normal(size=(b, h, w, c)).astype(np.float32)
    n = w * (c // g)
    kernel = rng.normal(size=(n, n)).astype(np.float32)
    np.testing.assert_allclose(mix_width(jnp.asarray(x), jnp.asarray(kernel), g),
                               loop_mix_width(x, kernel, g), rtol=1e-5, atol=1e-5)


def test_segments_are_contiguous_channel_blocks():
    """A kernel that only moves height position 0 -> 1 inside segment slots must move channel
    g*S+s of row 0 to row 1 unchanged (c = g*S + s, not s*G + g: the layout of
    houqb/VisionPermutator models/vip.py, WeightedPermuteMLP.forward)."""
    h, s, g = 2, 3, 2
    kernel = np.zeros((h * s, h * s), np.float32)
    for t in range(s):
        kernel[0 * s + t, 1 * s + t] = 1.0
    x = np.zeros((1, h, 1, g * s), np.float32)
    x[0, 0, 0] = np.arange(g * s)
    out = np.asarray(mix_height(jnp.asarray(x), jnp.asarray(kernel), g))
    np.testing.assert_array_equal(out[0, 1, 0], np.arange(g * s))
    np.testing.assert_array_equal(out[0, 0, 0], np.zeros(g * s))


def test_branch_weights_are_interleaved_softmax():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 15)).astype(np.float32)
    alpha = np.asarray(branch_weights(jnp.asarray(logits)))
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-6)
    for b in range(3):
        for c in range(5):
            e = np.exp(logits[b, 3 * c:3 * c + 3])
            np.testing.assert_allclose(alpha[b, c], e / e.sum(), rtol=1e-5)


def loop_weighted_permute_mlp(x, p, segment_dim):
    """The official WeightedPermuteMLP.forward written with the loop references above."""
    def linear(v, layer):
        y = v @ layer["kernel"]
        return y + layer["bias"] if "bias" in layer else y

    def gelu(v):
        return 0.5 * v * (1.0 + np.vectorize(math.erf)(v / np.sqrt(2.0)))

    b, _, _, c = x.shape
    h = loop_mix_height(x, p["mlp_h"]["kernel"], segment_dim)
    w = loop_mix_width(x, p["mlp_w"]["kernel"], segment_dim)
    cb = linear(x, p["mlp_c"])
    a = (h + w + cb).mean(axis=(1, 2))
    logits = linear(gelu(linear(a, p["reweight"]["fc1"])), p["reweight"]["fc2"])
    out = np.zeros_like(x)
    for bi in range(b):
        for ch in range(c):
            e = np.exp(logits[bi, 3 * ch:3 * ch + 3] - logits[bi, 3 * ch:3 * ch + 3].max())
            al = e / e.sum()
            out[bi, ..., ch] = h[bi, ..., ch] * al[0] + w[bi, ..., ch] * al[1] + cb[bi, ..., ch] * al[2]
    return linear(out, p["proj"])


def test_weighted_permute_mlp_matches_loop_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 4, 16)).astype(np.float32)   # H = W = segment_dim = 4, S = 4
    module = WeightedPermuteMLP(segment_dim=4)
    shapes = nn.unbox(jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.asarray(x)))["params"]
    params = jax.tree.map(lambda l: rng.normal(0.0, 0.3, l.shape).astype(np.float32), shapes)
    got = module.apply({"params": params}, jnp.asarray(x))
    np.testing.assert_allclose(got, loop_weighted_permute_mlp(x, params, 4), rtol=1e-4, atol=1e-5)
