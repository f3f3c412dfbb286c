"""VOLO: exact parameter counts, unfold/fold and outlook attention against loop-based
references, MixToken consistency, the token-labeling loss."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import volo
from volo.model import OutlookAttention, fold, mix_token_mask, unfold
from volo.task import dense_token_targets, mixtoken_box

COUNTS = {  # official integers (sail-sg/volo models/volo.py = timm volo.py, counted by instantiation)
    "volo_d1_224": 26_632_040, "volo_d2_224": 58_678_336, "volo_d3_224": 86_325_072,
    "volo_d4_224": 192_961_520, "volo_d5_224": 295_455_584, "volo_d1_384": 26_777_960,
    "volo_d2_384": 58_872_896, "volo_d3_448": 86_626_128, "volo_d4_448": 193_413_104,
    "volo_d5_448": 295_907_168, "volo_d5_512": 296_091_488,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_equal_the_official_integers(name):
    m = volo.create_model(name)
    v = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((1, m.img_size, m.img_size, 3))))
    assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nn.meta.unbox(v["params"]))) == COUNTS[name]


def _np_unfold(x, k, p, s):
    b, H, W, c = x.shape
    h, w = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros((b, h, w, k * k, c), x.dtype)
    for i in range(h):
        for j in range(w):
            for ki in range(k):
                for kj in range(k):
                    out[:, i, j, ki * k + kj] = xp[:, i * s + ki, j * s + kj]
    return out


def _np_fold(y, H, W, k, p, s):
    b, h, w, _, c = y.shape
    out = np.zeros((b, H + 2 * p, W + 2 * p, c), y.dtype)
    for i in range(h):
        for j in range(w):
            for ki in range(k):
                for kj in range(k):
                    out[:, i * s + ki, j * s + kj] += y[:, i, j, ki * k + kj]
    return out[:, p:p + H, p:p + W]


@pytest.mark.parametrize("H,W,k,p,s", [(8, 8, 3, 1, 2), (7, 9, 3, 1, 2), (5, 6, 3, 1, 1), (9, 7, 5, 2, 3)])
def test_unfold_and_fold_match_loops(H, W, k, p, s):
    x = np.random.default_rng(0).standard_normal((2, H, W, 3)).astype(np.float32)
    u = np.asarray(unfold(jnp.asarray(x), k, p, s))
    np.testing.assert_allclose(u, _np_unfold(x, k, p, s), atol=0)
    y = np.random.default_rng(1).standard_normal(u.shape).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fold(jnp.asarray(y), (H, W), k, p, s)), _np_fold(y, H, W, k, p, s),
                               atol=1e-5)


def _np_outlook(x, params, heads, k=3, p=1, s=2):
    """Straight from the official forward: v, unfold, pooled attention, softmax, fold, proj."""
    b, H, W, c = x.shape
    d = c // heads
    v = x @ params["v"]["kernel"]
    vu = _np_unfold(v, k, p, s)                                         # b h w K2 C
    h, w = vu.shape[1:3]
    pooled = np.zeros((b, h, w, c), np.float32)
    for i in range(h):
        for j in range(w):
            win = x[:, i * s:min(i * s + s, H), j * s:min(j * s + s, W)]
            pooled[:, i, j] = win.mean(axis=(1, 2))
    a = pooled @ params["attn"]["kernel"] + params["attn"]["bias"]
    a = a.reshape(b, h, w, heads, k * k, k * k) * d ** -0.5
    a = np.exp(a - a.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    y = np.zeros((b, h, w, k * k, c), np.float32)
    for hd in range(heads):
        sl = slice(hd * d, (hd + 1) * d)
        for q in range(k * k):
            for kk in range(k * k):
                y[:, :, :, q, sl] += a[:, :, :, hd, q, kk, None] * vu[:, :, :, kk, sl]
    out = _np_fold(y, H, W, k, p, s)
    return out @ params["proj"]["kernel"] + params["proj"]["bias"]


@pytest.mark.parametrize("H,W", [(8, 8), (7, 5)])
def test_outlook_attention_matches_a_loop_reference(H, W):
    x = np.random.default_rng(0).standard_normal((2, H, W, 8)).astype(np.float32)
    m = OutlookAttention(num_heads=2)
    v = nn.meta.unbox(m.init(jax.random.PRNGKey(0), x))
    params = jax.tree_util.tree_map(np.asarray, v["params"])
    with jax.default_matmul_precision("highest"):
        out = np.asarray(m.apply(v, x))
    np.testing.assert_allclose(out, _np_outlook(x, params, 2), atol=2e-5)


def _tiny(**kw):
    return volo.create_model("volo_d1_224", num_classes=5, layers=(1, 1, 1, 1), embed_dims=(16, 32, 32, 32),
                             num_heads=(2, 2, 2, 2), stem_hidden_dim=8, img_size=64, **kw)


def test_mixtoken_box_and_targets_are_consistent():
    for seed in range(20):
        box, lam = mixtoken_box(jax.random.PRNGKey(seed), 14)
        mask = mix_token_mask(box, 14, 14)
        assert float(lam) == pytest.approx(1.0 - float(mask.sum()) / 196.0)
        fine = mix_token_mask(box, 28, 28, scale=2)
        assert float(fine.sum()) == 4 * float(mask.sum())


def test_mixtoken_mixes_tokens_and_swaps_aux_tokens_back():
    m = _tiny()
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 64, 64, 3))
    v = m.init(jax.random.PRNGKey(1), x)
    full = jnp.array([0, 0, 4, 4], jnp.int32)      # the whole 4x4 grid: every token swapped
    none = jnp.array([0, 0, 0, 0], jnp.int32)
    run = lambda box: m.apply(v, x, train=True, mix_box=box, mutable=["batch_stats"])[0]  # noqa: E731
    plain, swapped = run(none), run(full)
    # swapping every token == feeding the reversed batch; the aux map is swapped back to
    # each image, the class logits stay with the mixed (here: reversed) tokens
    rev = m.apply(v, x[::-1], train=True, mutable=["batch_stats"])[0]
    np.testing.assert_allclose(swapped["logits"], rev["logits"], atol=1e-4)
    np.testing.assert_allclose(swapped["aux_logits"], rev["aux_logits"][::-1], atol=1e-4)
    assert not np.allclose(plain["logits"], swapped["logits"])


def test_eval_output_is_class_head_plus_half_the_max_aux_logit():
    m = _tiny()
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 64, 64, 3))
    v = m.init(jax.random.PRNGKey(1), x)
    out, inter = m.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
    head = inter["intermediates"]["head"]["__call__"][0]
    aux = inter["intermediates"]["aux_head"]["__call__"][0]          # B 16 classes
    np.testing.assert_allclose(out, head + 0.5 * aux.max(axis=1), atol=1e-6)
    train_out = m.apply(v, x, train=True, mutable=["batch_stats"])[0]
    assert train_out["aux_logits"].shape == (2, 4, 4, 5)


def test_dense_token_targets():
    logits = jnp.array([[[[4.0]], [[2.0]]]])           # B=1, k=2, h=w=1
    index = jnp.array([[[[3]], [[1]]]])
    t = dense_token_targets(logits, index, 5, smoothing=0.1)
    assert t.shape == (1, 1, 1, 5)
    np.testing.assert_allclose(float(t.sum()), 1.0, rtol=1e-6)
    raw = np.exp([0, 2, 0, 4, 0]) / np.exp([0, 2, 0, 4, 0]).sum()
    np.testing.assert_allclose(np.asarray(t[0, 0, 0]), raw * 0.9 + 0.02, rtol=1e-5)


def test_wrong_resolution_is_a_clear_error():
    m = volo.create_model("volo_d1_224", num_classes=3, layers=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="pos_embed"):
        jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 256, 256, 3))))


def test_token_label_maps_follow_the_crop_and_flip():
    from volo.task import crop_token_labels
    mh = mw = 8
    maps = np.zeros((2, 1, mh, mw), np.float32)
    maps[1, 0] = np.arange(mh * mw).reshape(mh, mw)          # class index = map position
    whole = crop_token_labels(maps, (0, 0, 64, 64), (64, 64), flip=False, grid=4)
    np.testing.assert_array_equal(whole[1, 0], maps[1, 0][1::2, 1::2])
    left_half = crop_token_labels(maps, (0, 0, 32, 64), (64, 64), flip=False, grid=4)
    assert left_half[1, 0].max() % mw < mw // 2                # only columns of the left half
    grid_map = maps[:, :, ::2, ::2]                            # one map cell per token
    flipped = crop_token_labels(grid_map, (0, 0, 64, 64), (64, 64), flip=True, grid=4)
    np.testing.assert_array_equal(flipped[1, 0], grid_map[1, 0][:, ::-1])


def test_train_element_with_token_labels_feeds_the_dense_loss():
    from tests.common.configs import load_config
    from volo.task import TokenLabelTask
    c = load_config("configs/volo/volo_d1_224.py", "test")
    task = TokenLabelTask(c)
    rec = {"image": np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8), "label": 3,
           "token_label": np.stack([np.full((5, 6, 6), 2.0), np.tile(np.arange(5)[:, None, None], (1, 6, 6))])}
    ex = task.train_element(rec, np.random.default_rng(1))
    assert ex["image"].shape == (32, 32, 3)
    assert ex["token_topk_logits"].shape == (5, 2, 2) and ex["token_topk_index"].dtype == np.int32
    batch = {k: jnp.asarray(np.stack([ex[k]] * 2)) for k in ("token_topk_logits", "token_topk_index")}
    batch["label"] = jnp.array([3, 3])
    aux = jnp.zeros((2, 2, 2, 10))
    loss, parts = task.loss({"logits": jnp.zeros((2, 10)), "aux_logits": aux}, jnp.full((2, 10), 0.1), batch,
                             jnp.asarray(0), jax.random.PRNGKey(0))
    # equal logits for the top-5 classes: the dense target spreads over them, so CE(uniform) = log 10
    assert float(parts["train/aux_loss"]) == pytest.approx(np.log(10), rel=1e-5)
