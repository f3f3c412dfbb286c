"""PSGAN / PSGAN++ networks: the spec's exact parameter counts and shapes, AMM invariants on
synthetic faces, batching, chunked AMM, partial transfer and degree control, removal, and the
AMM's memory at 256² and 512²."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.layers import vgg
from psgan import model as M
from psgan import preprocess, synthetic
from psgan.transfer import interpolate, mix_regions


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def test_parameter_counts_and_shapes():
    g = jax.eval_shape(lambda: M.create_model("psgan").init(jax.random.PRNGKey(0), *M.dummy_inputs(1, 256)))
    p = g["params"]
    assert _count(p) == 12_615_620
    assert _count(p["mdnet"]) == 4_208_192 and _count(p["stnet"]) == 8_407_424
    assert _count(p["atten_bottleneck_g"]) + _count(p["atten_bottleneck_b"]) == 4
    pp = jax.eval_shape(lambda: M.create_model("psganpp").init(jax.random.PRNGKey(0), *M.dummy_inputs(1, 256)))
    assert _count(pp["params"]) == 16_823_812
    d = jax.eval_shape(lambda: M.Discriminator().init(jax.random.PRNGKey(0), jnp.zeros((2, 256, 256, 3))))
    assert _count(d["params"]) == 2_764_736 and _count(d["spectral_stats"]) == 16_369
    assert _count(jax.eval_shape(lambda: vgg.vgg16().init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
                  ["params"]) == 14_714_688
    G = M.create_model("psgan")
    args = M.dummy_inputs(2, 256)
    gamma, beta = jax.eval_shape(lambda g: G.apply(g, *args, method=G.morph), g)
    assert gamma.shape == beta.shape == (2, 64, 64, 1)
    feat = jax.eval_shape(lambda g: G.apply(g, args[0], method=lambda m, x: m.stnet.encode(x)), g)
    assert feat.shape == (2, 64, 64, 256)
    assert jax.eval_shape(lambda g: G.apply(g, *args), g).shape == (2, 256, 256, 3)
    out = jax.eval_shape(lambda d: M.Discriminator().apply(d, jnp.zeros((2, 256, 256, 3)),
                                                           mutable=["spectral_stats"]), d)
    assert out[0].shape == (2, 30, 30, 1)


def _faces(size=64, n=2, seed=0):
    rng = np.random.default_rng(seed)
    ims, masks, diffs = [], [], []
    for i in range(n):
        im, seg, lms = synthetic.face(rng, size, makeup=bool(i % 2))
        m, d = preprocess.process(seg, lms, (size // 4, size // 4), eye_margin=4)
        ims.append(im.astype(np.float32) / 127.5 - 1), masks.append(m), diffs.append(d)
    return np.stack(ims), np.stack(masks), np.stack(diffs)


@pytest.fixture(scope="module")
def tiny():
    G = M.create_model("tiny")
    x, m, d = _faces()
    with jax.threefry_partitionable(False):          # as MakeupTask.init: compiles several times faster
        v = jax.jit(G.init)(jax.random.PRNGKey(0), x[:1], x[:1], m[:1], m[:1], d[:1], d[:1])
    return G, v, x, m, d


def test_amm_rows_sum_to_one_in_region_and_zero_outside(tiny):
    G, v, x, m, d = tiny
    for softmax in ("code", "masked"):
        g = G.clone(amm_softmax=softmax)
        _, _, attn = g.apply(v, x[:1], x[1:], m[:1], m[1:], d[:1], d[1:], True, method=g.morph)
        rows = np.asarray(attn.sum(-1))[0]                                   # [3, N]
        inside = np.asarray(M.resize_masks(m[:1], (16, 16))).reshape(3, -1) > 0
        tol = 1e-5 if softmax == "masked" else 1e-3                          # code: the masked zeros' leak
        assert np.all(np.abs(rows[inside] - 1) < tol), (softmax, np.abs(rows[inside] - 1).max())
        assert np.all(rows[~inside] == 0)
        ref_in = np.asarray(M.resize_masks(m[1:], (16, 16))).reshape(3, -1) > 0
        assert float(np.abs(np.asarray(attn[0])[:, :, ~ref_in.any(0)]).max()) == 0.0 or softmax == "code"


def test_identical_source_and_reference_attend_to_themselves(tiny):
    G, v, x, m, d = tiny
    g = G.clone(visual_weight=0.0)
    _, _, attn = g.apply(v, x[:1], x[:1], m[:1], m[:1], d[:1], d[:1], True, method=g.morph)
    inside = np.asarray(M.resize_masks(m[:1], (16, 16))).reshape(3, -1) > 0
    arg = np.asarray(attn.argmax(-1))[0]
    for r in range(3):
        idx = np.flatnonzero(inside[r])
        np.testing.assert_array_equal(arg[r, idx], idx)


def test_batched_equals_one_by_one_and_chunks_equal_dense(tiny):
    G, v, x, m, d = tiny
    both = G.apply(v, x, x[::-1], m, m[::-1], d, d[::-1])
    for i in range(2):
        one = G.apply(v, x[i:i + 1], x[::-1][i:i + 1], m[i:i + 1], m[::-1][i:i + 1], d[i:i + 1], d[::-1][i:i + 1])
        np.testing.assert_allclose(both[i:i + 1], one, atol=1e-5)
    dense = G.apply(v, x[:1], x[1:], m[:1], m[1:], d[:1], d[1:], method=G.morph)
    chunked = G.clone(amm_chunk=64).apply(v, x[:1], x[1:], m[:1], m[1:], d[:1], d[1:], method=G.morph)
    for a, b in zip(dense, chunked):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="divide"):
        G.clone(amm_chunk=100).apply(v, x[:1], x[1:], m[:1], m[1:], d[:1], d[1:], method=G.morph)


def test_partial_transfer_and_degree_control(tiny):
    G, v, x, m, d = tiny
    own = G.apply(v, x[:1], x[:1], m[:1], m[:1], d[:1], d[:1], method=G.morph)
    ref = G.apply(v, x[:1], x[1:], m[:1], m[1:], d[:1], d[1:], method=G.morph)
    zero = mix_regions(ref, own, np.zeros_like(m[:1]), ("lip",))         # all-zero mask: the other matrices
    for a, b in zip(zero, own):
        np.testing.assert_array_equal(a, b)
    lips = mix_regions(ref, own, m[:1], ("lip",))
    lip64 = np.asarray(M.resize_masks(m[:1], (16, 16)))[0, 0] > 0
    np.testing.assert_array_equal(np.asarray(lips[0])[0, lip64], np.asarray(ref[0])[0, lip64])
    np.testing.assert_array_equal(np.asarray(lips[0])[0, ~lip64], np.asarray(own[0])[0, ~lip64])
    for alpha, want in ((1.0, ref), (0.0, own)):
        got = interpolate(ref, own, jnp.float32(alpha))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    half = interpolate(ref, own, jnp.float32(0.5))
    np.testing.assert_allclose(half[0], 0.5 * (ref[0] + own[0]), atol=1e-7)
    out1 = G.apply(v, x[:1], *interpolate(ref, own, jnp.float32(1.0)), method=G.apply_matrices)
    np.testing.assert_allclose(out1, G.apply(v, x[:1], x[1:], m[:1], m[1:], d[:1], d[1:]), atol=1e-6)


def test_removal_uses_the_idnet_and_the_shared_stnet(tiny):
    G, v, x, m, d = tiny
    gamma, beta = G.apply(v, x[1:], method=G.identity_matrices)
    np.testing.assert_allclose(G.apply(v, x[1:], method=G.remove),
                               G.apply(v, x[1:], gamma, beta, method=G.apply_matrices), atol=1e-6)
    v2 = jax.tree_util.tree_map(lambda a: a, v)
    v2["params"]["mdnet"] = jax.tree_util.tree_map(jnp.zeros_like, v["params"]["mdnet"])
    np.testing.assert_array_equal(G.apply(v2, x[1:], method=G.remove), G.apply(v, x[1:], method=G.remove))
    with pytest.raises(ValueError, match="no IDNet"):
        g = M.create_model("tiny", idnet=False)
        g.apply({"params": {k: p for k, p in v["params"].items() if k != "id_net"}}, x[1:], method=g.remove)


@pytest.mark.parametrize("size,chunk,limit_gb", [(256, 0, 1.2), (512, 1024, 1.0)])
def test_amm_memory(size, chunk, limit_gb):
    """Dense attention at 256² (3 x 4096², 0.2 GB) fits in ~1 GB of temporaries; at 512² the
    chunked AMM (1,024 rows a block) stays under 1 GB where the dense 3 x 16,384² (3.2 GB) would not."""
    h = size // 4
    shapes = [jax.ShapeDtypeStruct(s, jnp.float32) for s in
              ((1, h, h, 256), (1, h, h, 256), (1, 3, h, h), (1, 3, h, h), (1, 3, h, h, 136), (1, 3, h, h, 136),
               (1, h, h, 1), (1, h, h, 1))]
    f = jax.jit(lambda *a: M.amm(*a, chunk=chunk))
    mem = f.lower(*shapes).compile().memory_analysis()
    temp = mem.temp_size_in_bytes / 2 ** 30
    assert temp < limit_gb, temp
