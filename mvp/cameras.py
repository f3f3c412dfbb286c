"""The official camera model of MvP (sail-sg/mvp lib/utils/cameras.py, lib/utils/transforms.py,
lib/models/position_encoding.py `get_rays_new`), batched and jit-able: the one module that the
data, the model, the renderer of the stand-in and the pictures all use.

A camera is a dict of arrays with any leading axes (e.g. [B, V]):

  R  [..., 3, 3]  world -> camera rotation
  T  [..., 3]     camera centre in world mm (the official `T`, not -R C)
  f  [..., 2]     fx, fy in original-image pixels
  c  [..., 2]     cx, cy
  k  [..., 3]     radial k1, k2, k3
  p  [..., 2]     tangential p1, p2

`project` is `project_point_radial_batch`: x_c = R (X - T); y = x_c[:2] / (z + 1e-5), with no
z > 0 check (a point behind the camera projects mirrored; `depth` returns z so that callers
can mask it, a documented deviation the model does not take); radial and tangential
distortion as OpenCV's. The affine crop (original -> network-input pixels) is
`get_affine_transform(center, scale, 0, IMAGE_SIZE)`, computed here exactly as the official
code does (cv2 on float32 points, host side). `rays` are RayConv's unit viewing directions in
world axes at the feature-map pixel indices (no half-pixel shift), pinhole only.
"""
from typing import Mapping

import jax.numpy as jnp
import numpy as np

CAMERA_KEYS = ("R", "T", "f", "c", "k", "p")


def world_to_camera(points, cam: Mapping):
    """points [..., N, 3] (mm) -> camera frame [..., N, 3]."""
    return jnp.einsum("...ij,...nj->...ni", cam["R"], points - cam["T"][..., None, :])


def project(points, cam: Mapping, *, depth: bool = False):
    """points [..., N, 3] in world mm -> pixels [..., N, 2] of the original image (and the
    camera-frame depth [..., N] with depth=True). Same arithmetic as the official
    `project_point_radial_batch` (which it equals to float rounding)."""
    xc = world_to_camera(points, cam)
    y = xc[..., :2] / (xc[..., 2:3] + 1e-5)
    k, p = cam["k"][..., None, :], cam["p"][..., None, :]
    r2 = jnp.sum(y ** 2, -1, keepdims=True)
    radial = 1 + k[..., 0:1] * r2 + k[..., 1:2] * r2 ** 2 + k[..., 2:3] * r2 ** 3
    tan = p[..., 0:1] * y[..., 1:2] + p[..., 1:2] * y[..., 0:1]
    y = y * (radial + 2 * tan) + jnp.concatenate([p[..., 1:2], p[..., 0:1]], -1) * r2
    uv = cam["f"][..., None, :] * y + cam["c"][..., None, :]
    return (uv, xc[..., 2]) if depth else uv


def intrinsics(cam: Mapping):
    """K [..., 3, 3] from f and c (the official `camera_Intri`: no skew)."""
    f, c = cam["f"], cam["c"]
    zero, one = jnp.zeros_like(f[..., 0]), jnp.ones_like(f[..., 0])
    return jnp.stack([jnp.stack([f[..., 0], zero, c[..., 0]], -1),
                      jnp.stack([zero, f[..., 1], c[..., 1]], -1),
                      jnp.stack([zero, zero, one], -1)], -2)


def apply_affine(points, affine):
    """points [..., N, 2], affine [..., 2 or 3, 3] -> [..., N, 2] (`affine_transform_pts_cuda_batch`)."""
    return jnp.einsum("...ij,...nj->...ni", affine[..., :2, :2], points) + affine[..., None, :2, 2]


def rays(cam: Mapping, affine, height: int, width: int, image_width: int):
    """Unit world-frame ray directions [..., H, W, 3] at the pixels of an H x W feature map
    (`get_rays_new`): K_crop = A K, rows 0 and 1 both scaled by W / IMAGE_SIZE[0], pixel
    (i, j) -> normalise(R^T K_l^-1 [i, j, 1]). The official code subtracts the camera centre
    after adding it back (standard_T cancels); this computes the same direction directly."""
    k_crop = jnp.einsum("...ij,...jk->...ik", affine, intrinsics(cam))
    scale = jnp.asarray([width / image_width, width / image_width, 1.0], k_crop.dtype)
    k_l = k_crop * scale[:, None]
    j, i = jnp.meshgrid(jnp.arange(height, dtype=k_l.dtype), jnp.arange(width, dtype=k_l.dtype), indexing="ij")
    pix = jnp.stack([i, j, jnp.ones_like(i)], -1)                          # H W 3
    direction = jnp.einsum("...ji,...jk,hwk->...hwi", cam["R"], jnp.linalg.inv(k_l), pix)
    return direction / jnp.linalg.norm(direction, axis=-1, keepdims=True)


# ---------------------------------------------------------------------- host side (numpy, cv2)
def get_scale(image_size, resized_size) -> np.ndarray:
    """`transforms.get_scale`: the original size padded to the network's aspect, / 200."""
    w, h = image_size
    w_resized, h_resized = resized_size
    if w / w_resized < h / h_resized:
        w_pad, h_pad = h / h_resized * w_resized, h
    else:
        w_pad, h_pad = w, w / w_resized * h_resized
    return np.array([w_pad / 200.0, h_pad / 200.0], dtype=np.float32)


def get_affine_transform(center, scale, output_size, inv: bool = False) -> np.ndarray:
    """`transforms.get_affine_transform(center, scale, 0, output_size)`: 2 x 3 float64, via
    cv2.getAffineTransform on float32 points as the official code (pitfall 14)."""
    import cv2
    scale_tmp = np.asarray(scale, np.float32) * np.float32(200.0)       # float32, as the official (scale is float32)
    src_w = scale_tmp[0]
    dst_w, dst_h = output_size
    if src_w >= scale_tmp[1]:
        src_dir, dst_dir = np.array([0, src_w * -0.5]), np.array([0, dst_w * -0.5], np.float32)
    else:
        src_dir, dst_dir = np.array([scale_tmp[1] * -0.5, 0]), np.array([dst_h * -0.5, 0], np.float32)
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = np.asarray(center) + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], np.float32)
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def crop_transform(image_wh, image_size):
    """(center, scale, 3 x 3 affine original -> input) of `JointsDataset.__getitem__`."""
    w, h = image_wh
    center = np.array([w / 2.0, h / 2.0])
    scale = get_scale((w, h), image_size)
    affine = np.eye(3)
    affine[:2] = get_affine_transform(center, scale, image_size)
    return center, scale, affine


def project_numpy(points, cam: Mapping) -> np.ndarray:
    """float64 numpy `project` (data side: 2-D joints, the stand-in's renderer)."""
    R, T = np.asarray(cam["R"], np.float64), np.asarray(cam["T"], np.float64).reshape(3)
    f, c = np.asarray(cam["f"], np.float64).reshape(2), np.asarray(cam["c"], np.float64).reshape(2)
    k, p = np.asarray(cam["k"], np.float64).reshape(3), np.asarray(cam["p"], np.float64).reshape(2)
    xc = (np.asarray(points, np.float64) - T) @ R.T
    y = xc[..., :2] / (xc[..., 2:3] + 1e-5)
    r2 = np.sum(y ** 2, -1, keepdims=True)
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = p[0] * y[..., 1:2] + p[1] * y[..., 0:1]
    y = y * (radial + 2 * tan) + np.array([p[1], p[0]]) * r2
    return f * y + c


def stack_meta(cams, image_wh, image_size) -> dict:
    """The model's per-example camera meta from V camera dicts (float32 arrays [V, ...]):
    R, T, f, c, k, p, `affine` (3 x 3, original -> input) and `image_wh` (the official
    2 x meta['center'])."""
    _, _, affine = crop_transform(image_wh, image_size)
    meta = {k: np.stack([np.asarray(c[k], np.float64).reshape(np.shape(c[k])[:1] if k != "R" else (3, 3))
                         for c in cams]).astype(np.float32) for k in CAMERA_KEYS}
    meta["affine"] = np.broadcast_to(affine, (len(cams), 3, 3)).astype(np.float32)
    meta["image_wh"] = np.broadcast_to(np.asarray(image_wh, np.float32), (len(cams), 2)).copy()
    return meta
