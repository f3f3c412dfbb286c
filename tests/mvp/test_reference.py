"""Equality with the official MvP code given the same weights (tests/mvp/golden_tiny.npz,
written by make_golden.py from sail-sg/mvp on the CPU): the converter maps the official tiny
state_dict onto our `tiny` variant; per-layer logits and normalised joints, projection with
distortion, the affine crop and the rays equal the official outputs."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvp import cameras, convert
from mvp.model import create_model
from tests.mvp import golden

FIXTURE = os.path.join(os.path.dirname(__file__), "golden_tiny.npz")


@pytest.fixture(scope="module")
def fx():
    return np.load(FIXTURE)


@pytest.fixture(scope="module")
def converted(fx):
    names, shapes = json.loads(str(fx["names"])), json.loads(str(fx["shapes"]))
    sd = golden.random_state_dict(names, shapes)
    return sd, convert.convert_state_dict(sd, "tiny")


def example():
    images, cams, poses, vis = golden.inputs()
    meta = cameras.stack_meta(cams, golden.IMAGE_WH, golden.TINY["image_size"])
    return images, {k: v[None] for k, v in meta.items()}, cams


def test_forward_equals_the_official_per_layer(fx, converted):
    _, variables = converted
    images, meta, _ = example()
    model = create_model("tiny")
    out = jax.jit(lambda v, x, m: model.apply(v, x, m))(variables, images, meta)
    logits, coords = np.asarray(out["pred_logits"]), np.asarray(out["pred_poses"])
    # through the backbone, float32 rounding of the features (~1e-6 relative) is amplified by the
    # random-weight decoder's bilinear sampling (measured: 3e-6 feature noise -> 3e-5 at layer 1)
    np.testing.assert_allclose(coords.reshape(fx["coords"].shape), fx["coords"], atol=1e-4)
    np.testing.assert_allclose(logits, fx["logits"], atol=1e-4)
    feats = model.apply(variables, images, method=model.features)
    pooled = np.stack([np.asarray(f).mean((2, 3))[0] for f in feats], 1)
    np.testing.assert_allclose(pooled, fx["pooled"], atol=2e-4)
    np.testing.assert_allclose(np.asarray(feats[0])[0, :, :4, :4].transpose(0, 3, 1, 2), fx["feat0_corner"],
                               atol=2e-4)


def test_head_from_given_features_equals_the_official(fx, converted):
    """Decoder, queries, adaptation, rays, projection and fusion with the official features
    given (no backbone rounding): a view that sees nothing and one facing away from the room."""
    _, variables = converted
    _, cams, _, _ = golden.inputs()
    hard = golden.hard_cameras(cams)
    meta = {k: v[None] for k, v in cameras.stack_meta(hard, golden.IMAGE_WH, golden.TINY["image_size"]).items()}
    feats = [jnp.asarray(f.transpose(0, 2, 3, 1)[None]) for f in golden.features()]
    model = create_model("tiny")
    out = model.apply(variables, feats, meta, method=model.decode)
    coords = np.asarray(out["pred_poses"]).reshape(fx["head_coords"].shape)
    np.testing.assert_allclose(coords, fx["head_coords"], atol=1e-5)   # a wrong quirk: 5e-4 .. 4e-3
    np.testing.assert_allclose(np.asarray(out["pred_logits"]), fx["head_logits"], atol=1e-5)
    _, bounding = model.apply(variables, jnp.asarray(fx["head_coords"][0]), meta, [(24, 48), (12, 24), (6, 12)],
                              method=model.project_references)
    assert not np.asarray(bounding)[0, 1].any() and np.asarray(bounding)[0, 0].any()


def test_projection_affine_and_rays_equal_the_official(fx):
    _, meta, cams = example()
    cam = {k: jnp.asarray(meta[k]) for k in cameras.CAMERA_KEYS}
    uv = cameras.project(jnp.asarray(fx["project_points"], jnp.float32), cam)
    np.testing.assert_allclose(np.asarray(uv), fx["projected"], rtol=1e-4, atol=1e-2)
    center, scale, affine = cameras.crop_transform(golden.IMAGE_WH, golden.TINY["image_size"])
    np.testing.assert_array_equal(center, fx["center"])
    np.testing.assert_array_equal(scale, fx["scale"])
    np.testing.assert_allclose(affine[:2], fx["affine"], atol=1e-9)
    for level, (h, w) in enumerate([(24, 48), (12, 24), (6, 12)]):
        r = cameras.rays(cam, jnp.asarray(meta["affine"]), h, w, golden.TINY["image_size"][0])
        np.testing.assert_allclose(np.asarray(r), fx[f"rays{level}"], atol=1e-6)       # official, in float64
        np.testing.assert_allclose(np.asarray(r), fx[f"rays{level}_float32"], atol=5e-4)  # its float32 noise
        np.testing.assert_allclose(np.linalg.norm(np.asarray(r), axis=-1), 1.0, atol=1e-5)


def test_converter_reads_the_duplicate_pose_embed_and_rejects_mismatches(converted):
    sd, variables = converted
    assert any(k.startswith("decoder.pose_embed.") for k in sd)
    bad = dict(sd)
    key = next(k for k in sd if k.startswith("decoder.pose_embed."))
    bad[key] = bad[key] + 1
    with pytest.raises(convert.NotAModelCheckpoint, match="differs"):
        convert.convert_state_dict(bad, "tiny")
    with pytest.raises(convert.NotAModelCheckpoint, match="views=3"):
        convert.convert_state_dict(sd, "tiny", views=4)
    wrapped = {"state_dict": {"module." + k: v for k, v in sd.items()}}
    again = convert.convert_state_dict(wrapped, "tiny")
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, again, variables))
    backbone = convert.convert_backbone({k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")})
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, backbone["params"]["backbone"],
                                                         variables["params"]["backbone"]))
