"""DualFormer: exact parameter counts, token-grid shapes, LW-MSA against masked full attention,
GP-MSA against a loop-based reference, 2D->3D inflation rules."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dualformer
from dualformer.convert import inflate_2d, load_inflated, official_shapes
from dualformer.model import DualFormer, GPAttention, LWAttention

# Official integers (sail-sg/dualformer mmaction/models/backbones/dualformer.py instantiated and
# counted; the README rounds them to 21.8M / 48.9M / 86.8M), K400 head.
COUNTS = {  # (variant, frames): (backbone, backbone + 400-way head)
    ("dualformer_tiny", 32): (21_767_360, 21_972_560),
    ("dualformer_small", 32): (48_908_064, 49_215_664),
    ("dualformer_base", 32): (86_837_632, 87_247_632),
    ("dualformer_tiny", 16): (21_755_328, 21_960_528),
}


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize("name,frames", sorted(COUNTS))
def test_parameter_counts_equal_the_official_integers(name, frames):
    m = dualformer.create_model(name, num_classes=400)
    v = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((1, frames, 224, 224, 3))))
    params = nn.meta.unbox(v["params"])
    assert (_count(params["backbone"]), _count(params)) == COUNTS[(name, frames)]


def test_full_size_shapes_and_pyramid_kernels():
    m = dualformer.create_model("dualformer_tiny", num_classes=400)
    x = jax.ShapeDtypeStruct((2, 32, 224, 224, 3), jnp.float32)
    v = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros(x.shape)))
    feats = jax.eval_shape(lambda v, x: m.apply(v, x, features=("norm",))["norm"], v, x)
    logits = jax.eval_shape(lambda v, x: m.apply(v, x), v, x)
    assert feats.shape == (2, 16, 7, 7, 512) and logits.shape == (2, 400)
    bb = nn.meta.unbox(v["params"])["backbone"]
    # fine kernels (2,8,8)/(2,4,4)/(2,2,2); coarse (1,7,7) then (4,2,2)/(4,1,1); stage 3 unpooled.
    assert bb["blocks_0_1"]["attn"]["sr"]["kernel"].shape == (2, 8, 8, 1, 64)
    assert bb["blocks_0_1"]["attn"]["lr_3"]["kernel"].shape == (4, 2, 2, 1, 64)
    assert bb["blocks_1_1"]["attn"]["lr_3"]["kernel"].shape == (4, 1, 1, 1, 128)
    assert bb["blocks_2_1"]["attn"]["sr"]["kernel"].shape == (2, 2, 2, 1, 256)
    assert "lr_0" not in bb["blocks_2_1"]["attn"]
    assert set(bb["blocks_3_1"]["attn"]) == {"q", "kv", "proj"}
    assert set(bb["blocks_0_0"]["attn"]) == {"qkv", "proj"}
    assert bb["pos_block_0"]["proj_0"]["kernel"].shape == (3, 3, 3, 1, 64)


def _softmax(a):
    a = a - a.max(-1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(-1, keepdims=True)


def _mha(q, k, v, heads, mask=None):
    """Reference multi-head attention on [N, C] / [M, C] arrays."""
    n, c = q.shape
    hd = c // heads
    out = np.zeros((n, c))
    for h in range(heads):
        s = slice(h * hd, (h + 1) * hd)
        logits = q[:, s] @ k[:, s].T * hd ** -0.5
        if mask is not None:
            logits = np.where(mask, logits, -np.inf)
        out[:, s] = _softmax(logits) @ v[:, s]
    return out


def _dense(p, x):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def test_lw_attention_equals_full_attention_masked_to_the_window():
    grid, size, c, heads = (4, 6, 9), (2, 3, 3), 8, 2
    x = jax.random.normal(jax.random.PRNGKey(0), (2,) + grid + (c,))
    mod = LWAttention(c, heads, size)
    params = mod.init(jax.random.PRNGKey(1), x)["params"]
    got = np.asarray(mod.apply({"params": params}, x))
    params = nn.meta.unbox(params)
    idx = np.stack(np.meshgrid(*[np.arange(g) for g in grid], indexing="ij"), -1).reshape(-1, 3)
    window = idx // np.array(size)
    mask = (window[:, None, :] == window[None, :, :]).all(-1)  # same window in D, H and W
    for b in range(2):
        t = np.asarray(x[b], np.float64).reshape(-1, c)
        q, k, v = np.split(_dense(params["qkv"], t), 3, axis=-1)
        want = _dense(params["proj"], _mha(q, k, v, heads, mask)).reshape(grid + (c,))
        np.testing.assert_allclose(got[b], want, atol=1e-5)


def _dwconv_loop(x, kernel, bias):
    """Depth-wise conv with stride = kernel, VALID, by explicit loops. x [D,H,W,C]."""
    kt, kh, kw = kernel.shape[:3]
    D, H, W, C = x.shape
    out = np.zeros((D // kt, H // kh, W // kw, C))
    for i in range(D // kt):
        for j in range(H // kh):
            for k in range(W // kw):
                block = x[i * kt:(i + 1) * kt, j * kh:(j + 1) * kh, k * kw:(k + 1) * kw]
                out[i, j, k] = (block * kernel[..., 0, :]).sum((0, 1, 2)) + bias
    return out


def _ln(x, p, eps=1e-5):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(p["bias"])


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_gp_attention_equals_a_loop_reference(stage):
    # stage 0: fine (2,2,2) + coarse (1,7,7)->(2,1,1); stage 2: fine only; stage 3: no pooling.
    grid, c, heads = (4, 14, 14), 8, 2
    fine = {0: (2, 7, 7), 2: (2, 7, 7), 3: (4, 14, 14)}[stage]
    x = jax.random.normal(jax.random.PRNGKey(0), (2,) + grid + (c,))
    mod = GPAttention(c, heads, stage, fine_pysize=fine, coarse_pysize=(2, 2, 2))
    variables = nn.meta.unbox(mod.init(jax.random.PRNGKey(1), x))
    rng = np.random.default_rng(0)
    if "batch_stats" in variables:  # non-trivial BatchNorm statistics and affine
        variables = jax.tree_util.tree_map(np.asarray, variables)
        variables["batch_stats"]["lr_1"] = {"mean": rng.normal(size=c), "var": rng.uniform(0.5, 1.5, size=c)}
        variables["params"]["lr_1"] = {"scale": rng.normal(size=c), "bias": rng.normal(size=c)}
    got = np.asarray(mod.apply(variables, x))
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    for b in range(2):
        t = np.asarray(x[b], np.float64)
        q = _dense(p["q"], t.reshape(-1, c))
        if stage == 3:
            ctx = t.reshape(-1, c)
        else:
            ctx = [_dwconv_loop(t, p["sr"]["kernel"], p["sr"]["bias"]).reshape(-1, c)]
            if stage == 0:
                y = _dwconv_loop(t, p["lr_0"]["kernel"], p["lr_0"]["bias"])
                bs = variables["batch_stats"]["lr_1"]
                y = (y - bs["mean"]) / np.sqrt(bs["var"] + 1e-5) * p["lr_1"]["scale"] + p["lr_1"]["bias"]
                y = _dwconv_loop(np.maximum(y, 0), p["lr_3"]["kernel"], p["lr_3"]["bias"])
                ctx.append(y.reshape(-1, c))
            ctx = _ln(np.concatenate(ctx), p["norm"])
        assert ctx.shape[0] == {0: 98 + 8, 2: 98, 3: 784}[stage]
        k, v = np.split(_dense(p["kv"], ctx), 2, axis=-1)
        want = _dense(p["proj"], _mha(q, k, v, heads)).reshape(grid + (c,))
        np.testing.assert_allclose(got[b], want, atol=1e-5)


def test_inflation_follows_the_official_rules():
    m = dualformer.create_model("dualformer_tiny", num_classes=400)
    frames = 32
    v = nn.meta.unbox(jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((1, frames, 224, 224, 3)))))
    shapes = official_shapes(v)
    assert shapes["blocks.0.1.attn.sr.weight"] == (64, 1, 2, 8, 8)
    rng = np.random.default_rng(0)
    sd2d = {"patch_embeds.0.proj.weight": rng.normal(size=(64, 3, 4, 4)),
            "patch_embeds.1.proj.weight": rng.normal(size=(128, 64, 2, 2)),
            "pos_block.0.proj.0.weight": rng.normal(size=(64, 1, 3, 3)),
            "blocks.0.1.attn.sr.weight": rng.normal(size=(64, 1, 8, 8)),
            "blocks.0.1.attn.lr.0.weight": rng.normal(size=(64, 1, 7, 7)),
            "head.weight": rng.normal(size=(1000, 512))}
    sd3d = inflate_2d(sd2d, shapes)
    assert "head.weight" not in sd3d
    for k, (rep, axis_len) in {"patch_embeds.0.proj.weight": (2, 2), "patch_embeds.1.proj.weight": (1, 1),
                               "pos_block.0.proj.0.weight": (3, 3), "blocks.0.1.attn.sr.weight": (2, 2)}.items():
        assert sd3d[k].shape[2] == axis_len
        np.testing.assert_allclose(sd3d[k].sum(2), sd2d[k], atol=1e-6)  # repeated and divided by the count
    assert sd3d["blocks.0.1.attn.lr.0.weight"].shape == (64, 1, 1, 7, 7)
    np.testing.assert_array_equal(sd3d["blocks.0.1.attn.lr.3.weight"], np.full((64, 1, 4, 2, 2), 1 / 16))
    np.testing.assert_array_equal(sd3d["blocks.1.1.attn.lr.3.weight"], np.full((128, 1, 4, 1, 1), 1 / 4))
    np.testing.assert_array_equal(sd3d["blocks.1.3.attn.lr.3.bias"] if "blocks.1.3.attn.lr.3.bias" in sd3d
                                  else sd3d["blocks.1.1.attn.lr.3.bias"], np.zeros(128))
    for k, a in sd3d.items():
        assert a.shape == shapes[k], k


def test_an_inflated_stem_sees_a_static_video_as_the_2d_stem_sees_one_frame():
    m = DualFormer(embed_dims=(8, 16, 32, 64), num_heads=(1, 2, 2, 4), depths=(2, 2, 2, 2), num_classes=3,
                   local_sizes=((2, 7, 7),) * 4, fine_pysizes=((2, 7, 7),) * 4, coarse_pysizes=((2, 4, 4),) * 4)
    frame = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (1, 224, 224, 3)))
    video = np.repeat(frame[:, None], 4, axis=1)
    v = m.init(jax.random.PRNGKey(1), video)
    w2d = np.random.default_rng(0).normal(size=(8, 3, 4, 4))
    v = load_inflated(v, {"patch_embeds.0.proj.weight": w2d}, stage_frames=(2, 2, 2, 2),
                      fine_pysizes=((2, 7, 7),) * 4)
    stem = v["params"]["backbone"]["patch_embeds_0"]["proj"]
    out3d = jax.lax.conv_general_dilated(video, stem["kernel"], (2, 4, 4), "VALID",
                                         dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    out2d = jax.lax.conv_general_dilated(frame, np.transpose(w2d, (2, 3, 1, 0)), (4, 4), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(out3d[:, 0], out2d, atol=1e-4)
    np.testing.assert_allclose(out3d[:, 1], out2d, atol=1e-4)
    assert m.apply(v, video).shape == (1, 3)


def test_train_mode_uses_dropout_and_drop_path_streams():
    m = DualFormer(embed_dims=(8, 16, 32, 64), num_heads=(1, 2, 2, 4), depths=(2, 2, 2, 2), num_classes=3,
                   local_sizes=((2, 7, 7),) * 4, fine_pysizes=((2, 7, 7),) * 4, coarse_pysizes=((2, 4, 4),) * 4,
                   drop_path_rate=0.5)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 224, 224, 3))
    v = m.init(jax.random.PRNGKey(1), x)
    run = lambda seed: m.apply(v, x, train=True, mutable=["batch_stats"],
                               rngs={"dropout": jax.random.PRNGKey(seed), "drop_path": jax.random.PRNGKey(seed + 1)})[0]
    a, b = run(0), run(2)
    assert np.isfinite(a).all() and not np.allclose(a, b)
    np.testing.assert_allclose(m.apply(v, x), m.apply(v, x), atol=0)
