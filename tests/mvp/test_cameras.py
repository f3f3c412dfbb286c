"""mvp.cameras against a float64 NumPy transcription of the official project_point_radial
(distortion on and off; points in front of, beside and behind the camera), the crop's
get_scale, and the rays' geometry (a ray through a projected point passes through it)."""
import jax.numpy as jnp
import numpy as np
import pytest

from mvp import cameras, synthetic


def official_project(x, R, T, f, c, k, p):
    """lib/utils/cameras.py project_point_radial, transcribed in float64 (x [N, 3])."""
    xcam = R @ (x.T - T.reshape(3, 1))
    y = xcam[:2] / (xcam[2] + 1e-5)
    r2 = np.sum(y ** 2, 0, keepdims=True)
    radial = 1 + np.einsum("ij,ij->j", np.tile(k.reshape(3, 1), (1, len(x))), np.concatenate([r2, r2 ** 2, r2 ** 3]))
    tan = p[0] * y[1] + p[1] * y[0]
    y = y * np.tile(radial + 2 * tan, (2, 1)) + np.outer(np.array([p[1], p[0]]), r2.reshape(-1))
    return (f.reshape(2, 1) * y + c.reshape(2, 1)).T


@pytest.mark.parametrize("distortion", [False, True])
def test_projection_equals_the_official_formula(distortion):
    rng = np.random.default_rng(int(distortion))
    cams = synthetic.ring_cameras(rng, 4, distortion=distortion)
    pts = rng.uniform([-3000, -3000, 0], [3000, 3000, 2000], (50, 3))
    pts[-10:] *= 4.0                                   # far out: beside / behind some cameras
    stacked = {k: jnp.asarray(np.stack([c[k] for c in cams]), jnp.float32) for k in cameras.CAMERA_KEYS}
    uv, z = cameras.project(jnp.asarray(np.broadcast_to(pts, (4,) + pts.shape), jnp.float32), stacked, depth=True)
    for v, cam in enumerate(cams):
        ref = official_project(pts, cam["R"], cam["T"], cam["f"], cam["c"], cam["k"], cam["p"])
        front = np.asarray(z[v]) > 100
        np.testing.assert_allclose(np.asarray(uv[v])[front], ref[front], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(cameras.project_numpy(pts, cam), ref, rtol=1e-10)
    assert (np.asarray(z) < 0).any()                  # some points are behind a camera: projected anyway


def test_crop_pads_to_the_network_aspect():
    """Panoptic: 1920 x 1080 into 960 x 512 is scaled by 512 / 1080 = 0.4741 with ~25 px side bars."""
    np.testing.assert_allclose(cameras.get_scale((1920, 1080), (960, 512)), [10.125, 5.4], rtol=1e-6)
    center, scale, affine = cameras.crop_transform((1920, 1080), (960, 512))
    corners = np.array([[0, 0, 1], [1920, 1080, 1]]) @ affine.T
    np.testing.assert_allclose(corners[:, 1], [0, 512], atol=1e-3)          # height fills the input
    np.testing.assert_allclose(corners[:, 0], [(960 - 1920 * 512 / 1080) / 2, (960 + 1920 * 512 / 1080) / 2], atol=1e-3)
    np.testing.assert_allclose(affine[0, 0], 512 / 1080, rtol=1e-6)


def test_rays_point_at_what_the_pixel_sees():
    """Pinhole camera: the ray at feature pixel (i, j) hits the points that project there."""
    rng = np.random.default_rng(3)
    cam = synthetic.ring_cameras(rng, 1, distortion=False)[0]
    _, _, affine = cameras.crop_transform(synthetic.IMAGE_WH, (192, 96))
    h, w = 24, 48
    r = np.asarray(cameras.rays({k: jnp.asarray(v, jnp.float32) for k, v in cam.items()},
                                jnp.asarray(affine, jnp.float32), h, w, 192))
    np.testing.assert_allclose(np.linalg.norm(r, axis=-1), 1.0, atol=1e-6)
    for i, j in [(0, 0), (47, 23), (20, 10)]:
        point = cam["T"] + 5000.0 * r[j, i]
        uv = cameras.project_numpy(point[None], cam)[0]
        uv_in = affine[:2, :2] @ uv + affine[:2, 2]
        np.testing.assert_allclose(uv_in * w / 192, [i, j], atol=1e-2)      # no half-pixel shift
