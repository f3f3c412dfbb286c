"""MvP model: parameter counts of the spec's section 3.9 (eval_shape, no compute), the
bilinear sampler's coordinate convention, the raw (level, head) reshape and the frozen backbone."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvp import model as M


def counts(variant, **kw):
    m = M.create_model(variant, image_size=(64, 32), **kw)     # the counts do not depend on the input size
    w, h = m.image_size
    v = jax.eval_shape(lambda: m.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, m.views, h, w, 3)),
                                      M.dummy_meta(1, m.views, image_size=m.image_size)))
    n = lambda t: int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(t)))
    p = v["params"]
    layer = n(p["decoder_layers_0"])
    return n(p), n(p) - n(p["backbone"]), layer


@pytest.mark.parametrize("variant,kw,total,trainable", [
    ("panoptic", {}, 43_446_704, 9_447_521),
    ("campus", {}, 42_266_544, 8_267_361),
    ("panoptic", dict(views=1), 41_086_384, 7_087_201),
    ("panoptic", dict(points=8), 43_594_736, 9_595_553),
    ("panoptic", dict(posembed="none"), 43_442_096, 9_442_913),
    ("panoptic", dict(posembed="coordconv"), 43_445_168, 9_445_985),
    ("panoptic", dict(query_embed="per_joint"), 43_510_704, 9_511_521),
])
def test_parameter_counts_equal_the_official(variant, kw, total, trainable):
    t, tr, layer = counts(variant, **kw)
    assert (t, tr) == (total, trainable)
    if not kw:
        assert layer == 1_275_232 if variant != "campus" else layer == 1_275_232 - 2 * 65_536


def grid_sample_numpy(img, gx, gy):
    """float64 transcription of torch grid_sample(bilinear, zeros, align_corners=False)."""
    h, w, _ = img.shape
    x, y = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
    out = np.zeros(gx.shape + (img.shape[-1],))
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            out += np.where(ok, wgt, 0)[..., None] * img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    return out


def test_bilinear_sampler_is_grid_sample_align_corners_false():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((5, 7, 3))
    loc = rng.uniform(-0.3, 1.3, (40, 2))
    loc[:4] = [[0, 0], [1, 1], [0.5 / 7, 0.5 / 5], [1 - 0.5 / 7, 1]]      # borders and pixel centres
    ours = M.sample_normalised(jnp.asarray(img[None], jnp.float32), jnp.asarray(loc[None], jnp.float32))[0]
    ref = grid_sample_numpy(img, 2 * loc[:, 0] - 1, 2 * loc[:, 1] - 1)
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-5)
    assert np.allclose(np.asarray(ours)[2], img[0, 0], atol=1e-6)        # the first pixel's centre


def test_offsets_use_the_official_raw_reshape():
    """Head h at level l reads the linear's output row floor((3h+l)/8), slot (3h+l) mod 8."""
    pa = M.ProjAttn(d_model=16, heads=8, points=4, posembed="none")
    s = jnp.asarray(np.random.default_rng(1).standard_normal((1, 1, 1, 3, 16)), jnp.float32)
    v = pa.init(jax.random.PRNGKey(0), s, method=lambda m, x: m.sampling_offsets(x))
    raw = pa.apply(v, s, method=lambda m, x: m.sampling_offsets(x))            # [..., L=3, 64]
    per = np.asarray(raw).reshape(3, 8, 4, 2)                                   # [row, slot, P, 2]
    scrambled = np.asarray(raw).reshape(8, 3, 4, 2)                             # what ProjAttn uses
    for h in range(8):
        for l in range(3):
            np.testing.assert_array_equal(scrambled[h, l], per[(3 * h + l) // 8, (3 * h + l) % 8])


def test_backbone_is_frozen_and_features_are_pre_bn_deconvs():
    m = M.create_model("tiny", layers=1, backbone_blocks=(1, 1, 1, 1))
    w, h = m.image_size
    meta = M.dummy_meta(1, m.views, image_size=m.image_size)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, m.views, h, w, 3)), jnp.float32)
    v = m.init({"params": jax.random.PRNGKey(0)}, x, meta)
    feats = m.apply(v, x, method=m.features)
    assert [f.shape[2:] for f in feats] == [(24, 48, 32), (12, 24, 32), (6, 12, 32)]

    def loss(p):
        out = m.apply({**v, "params": p}, x, meta, train=True, rngs={"dropout": jax.random.PRNGKey(1)},
                      mutable=["batch_stats"])[0]
        return out["pred_poses"].sum() + out["pred_logits"].sum()
    g = jax.grad(loss)(v["params"])
    assert all(float(jnp.abs(t).max()) == 0 for t in jax.tree_util.tree_leaves(g["backbone"]))
    assert float(jnp.abs(g["reference_points"]["kernel"]).max()) > 0
