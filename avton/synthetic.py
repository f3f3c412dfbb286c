"""The synthetic try-on stand-in: procedural people wearing procedural garments through a
known warp, written in the VITON folder layout so the real reader is what gets tested.

`write_viton_folder(root, split, n, height, width, categories, seed)` writes
  root/<split>/image/NNNNNN_0.jpg        person (white background)
  root/<split>/image-parse/NNNNNN_0.png  LIP labels (2 hair, 13 face, 10 neck, 14/15 arms,
                                         16/17 legs, 5 top, 9 pants, 12 skirt, 6 dress)
  root/<split>/cloth/NNNNNN_1.jpg        the in-shop garment, frontal, on white
  root/<split>/cloth-mask/NNNNNN_1.jpg   its mask (255 / 0)
  root/<split>/pose/NNNNNN_0_keypoints.json   {"people": [{"pose_keypoints": 54 floats}]} (COCO-18)
  root/<split>/warp-gt/NNNNNN_0.json     the true warp: CP-VTON TPS offsets theta (50)
  root/<split>_pairs.txt                 "im_name c_name [category]"; paired in train,
                                         garments shuffled within a category in test
Garments of the three categories (top with short or long sleeves, trousers or skirt,
dress) are textured with stripes, checks and a logo glyph. The worn garment is the
in-shop one sampled through a TPS (5 x 5 CP-VTON control grid, tps_cpvton kernel) whose
source points are the affine map from the body's garment box to the in-shop box plus a
random displacement, so the GMM's target is reachable exactly and the warp's end-point
error can be measured. Sleeve and leg lengths vary, which exposes different limbs.
Deterministic in (split, index, seed).
"""
import json
import os

import numpy as np
from PIL import Image, ImageDraw

from avton import tps

SPLIT_SEED = {"train": 0, "test": 1}
SKIN = np.array([[241, 194, 167], [224, 172, 105], [198, 134, 66], [141, 85, 36], [255, 219, 172]])


def _affine_box(src_box, dst_box):
    """x -> a * x + b per axis, sending src_box (x0, y0, x1, y1) onto dst_box."""
    sx = (dst_box[2] - dst_box[0]) / (src_box[2] - src_box[0])
    sy = (dst_box[3] - dst_box[1]) / (src_box[3] - src_box[1])
    return np.array([sx, sy]), np.array([dst_box[0] - sx * src_box[0], dst_box[1] - sy * src_box[1]])


def _texture(h, w, rng):
    """RGB garment texture: stripes or checks in two colours and a logo glyph."""
    c1, c2 = rng.integers(20, 236, 3), rng.integers(20, 236, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    period = max(2, int(rng.integers(h // 16 + 2, h // 6 + 3)))
    if rng.random() < 0.5:
        angle = rng.uniform(0, np.pi)
        on = ((np.cos(angle) * xx + np.sin(angle) * yy) // period).astype(int) % 2 == 0
    else:
        on = ((xx // period + yy // period) % 2) == 0
    tex = np.where(on[..., None], c1, c2).astype(np.uint8)
    img = Image.fromarray(tex)
    d = ImageDraw.Draw(img)
    cx, cy, r = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.3, 0.45), max(2.0, h * 0.08)
    glyph = int(rng.integers(3))
    colour = tuple(int(v) for v in 255 - c1)
    if glyph == 0:
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif glyph == 1:
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
    else:
        d.rectangle((cx - r, cy - r / 2, cx + r, cy + r / 2), fill=colour)
        d.rectangle((cx - r / 3, cy - r, cx + r / 3, cy + r), fill=colour)
    return np.asarray(img)


def _garment_polygons(category, style, h, w):
    """In-shop garment polygons (pixel coords) inside the canonical box of the cloth image:
    box (x0, y0, x1, y1) of the body part it covers and the polygons to fill."""
    x0, x1, y0, y1 = 0.25 * w, 0.75 * w, 0.12 * h, 0.9 * h
    cx = 0.5 * w
    if category == "top":
        sleeve = (0.35 if style["long"] else 0.12) * h
        body = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        left = [(x0, y0), (x0 - 0.14 * w, y0 + sleeve), (x0 - 0.04 * w, y0 + sleeve + 0.03 * h), (x0, y0 + 0.18 * h)]
        right = [(x1, y0), (x1 + 0.14 * w, y0 + sleeve), (x1 + 0.04 * w, y0 + sleeve + 0.03 * h), (x1, y0 + 0.18 * h)]
        return (x0, y0, x1, y1), [body, left, right]
    if category == "bottom":
        if style["skirt"]:
            return (x0, y0, x1, y1), [[(x0 + 0.04 * w, y0), (x1 - 0.04 * w, y0), (x1 + 0.06 * w, y0 + (y1 - y0) * style["length"]),
                                       (x0 - 0.06 * w, y0 + (y1 - y0) * style["length"])]]
        yl = y0 + (y1 - y0) * style["length"]
        return (x0, y0, x1, y1), [[(x0, y0), (x1, y0), (x1, yl), (cx + 0.03 * w, yl), (cx, y0 + 0.25 * h),
                                   (cx - 0.03 * w, yl), (x0, yl)]]
    # whole: a dress from the shoulders to below the hips
    return (x0, y0, x1, y1), [[(x0 + 0.03 * w, y0), (x1 - 0.03 * w, y0), (x1, 0.5 * h), (x1 + 0.08 * w, y1),
                               (x0 - 0.08 * w, y1), (x0, 0.5 * h)]]


def _skeleton(h, w, rng, arm_drop, leg_spread):
    """COCO-18 keypoints (x, y) of a standing frontal person filling the image."""
    cx = w * rng.uniform(0.46, 0.54)
    top = h * rng.uniform(0.04, 0.08)
    head_r = h * 0.065
    neck = np.array([cx, top + 2.2 * head_r])
    sh = w * rng.uniform(0.15, 0.18)
    hip_y = neck[1] + h * rng.uniform(0.3, 0.34)
    hw = w * rng.uniform(0.09, 0.11)
    k = np.zeros((18, 2))
    k[0] = (cx, top + 1.1 * head_r)
    k[1] = neck
    k[2], k[5] = (cx - sh, neck[1] + 0.02 * h), (cx + sh, neck[1] + 0.02 * h)
    for s, (e, wr) in ((2, (3, 4)), (5, (6, 7))):
        sign = -1 if s == 2 else 1
        k[e] = k[s] + (sign * w * arm_drop[0], h * 0.15)
        k[wr] = k[e] + (sign * w * arm_drop[1], h * 0.14)
    k[8], k[11] = (cx - hw, hip_y), (cx + hw, hip_y)
    for hp, (kn, an) in ((8, (9, 10)), (11, (12, 13))):
        sign = -1 if hp == 8 else 1
        k[kn] = k[hp] + (sign * w * leg_spread, h * 0.2)
        k[an] = k[kn] + (sign * w * leg_spread * 0.5, h * 0.2)
    k[14], k[15] = (cx - 0.3 * head_r, top + 0.9 * head_r), (cx + 0.3 * head_r, top + 0.9 * head_r)
    k[16], k[17] = (cx - 0.8 * head_r, top + 1.0 * head_r), (cx + 0.8 * head_r, top + 1.0 * head_r)
    return k, head_r


def _garment_body_box(category, k, h, w):
    """The body box a garment of the category covers on this person (x0, y0, x1, y1)."""
    if category == "top":
        return (k[2, 0] + 0.02 * w, k[1, 1] + 0.01 * h, k[5, 0] - 0.02 * w, k[8, 1] + 0.04 * h)
    if category == "bottom":
        return (k[8, 0] - 0.07 * w, k[8, 1] - 0.03 * h, k[11, 0] + 0.07 * w, k[10, 1])
    return (k[2, 0] + 0.02 * w, k[1, 1] + 0.01 * h, k[5, 0] - 0.02 * w, k[9, 1] + 0.05 * h)


def _sample(img, gx, gy, padding):
    """numpy bilinear sampling of img [H, W, C] at pixel coordinates gx, gy (align_corners
    =True semantics; `border` clamps, `zeros` drops outside neighbours), in float64."""
    h, w = img.shape[:2]
    if padding == "border":
        gx, gy = np.clip(gx, 0, w - 1), np.clip(gy, 0, h - 1)
    x0, y0 = np.floor(gx), np.floor(gy)
    out = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - np.abs(gx - xi)) * (1 - np.abs(gy - yi))
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            vals = img[np.clip(yi, 0, h - 1).astype(int), np.clip(xi, 0, w - 1).astype(int)]
            out = out + vals * (wgt * inside)[..., None]
    return out


def true_grid(theta: np.ndarray, height: int, width: int) -> np.ndarray:
    """[H, W, 2] grid of the CP-VTON TPS through offsets theta [50], in float64 numpy."""
    gen = tps.tps_grid(height, width, 5, "tps_cpvton")
    p = gen.points
    li = np.linalg.inv(tps.system_matrix(p, "tps_cpvton"))
    q = np.stack([theta[:25], theta[25:]], 1) + p
    pix = tps.base_grid(height, width).reshape(-1, 2)
    u = tps.kernel_fn("tps_cpvton")(((pix[:, None] - p[None]) ** 2).sum(-1))
    basis = np.concatenate([u, np.ones((len(pix), 1)), pix], 1)
    return (basis @ (li[:, :25] @ q)).reshape(height, width, 2)


def make_sample(index: int, split: str, height: int, width: int, category: str, seed: int = 0):
    """(person uint8, parse uint8, keypoints [18, 3], cloth uint8, cloth mask uint8, theta [50])."""
    rng = np.random.default_rng([seed, SPLIT_SEED[split], index])
    h, w = height, width
    style = {"long": bool(rng.random() < 0.5), "skirt": bool(rng.random() < 0.5),
             "length": float(rng.uniform(0.45, 1.0))}
    # in-shop garment
    cloth_box, polys = _garment_polygons(category, style, h, w)
    mask_img = Image.new("L", (w, h))
    for p in polys:
        ImageDraw.Draw(mask_img).polygon(p, fill=255)
    cloth_mask = np.asarray(mask_img)
    tex = _texture(h, w, rng)
    cloth = np.where(cloth_mask[..., None] > 127, tex, 255).astype(np.uint8)

    # body
    k, head_r = _skeleton(h, w, rng, (rng.uniform(0.0, 0.06), rng.uniform(0.0, 0.05)), rng.uniform(0.0, 0.03))
    skin = SKIN[rng.integers(len(SKIN))] + rng.integers(-10, 11, 3)
    parse = Image.new("L", (w, h))
    d = ImageDraw.Draw(parse)
    limb_w = max(2, int(0.055 * w))
    for a, b, label in ((2, 3, 15), (3, 4, 15), (5, 6, 14), (6, 7, 14), (8, 9, 17), (9, 10, 17), (11, 12, 16), (12, 13, 16)):
        d.line([tuple(k[a]), tuple(k[b])], fill=label, width=limb_w if label in (14, 15) else int(limb_w * 1.4))
    d.polygon([tuple(k[2]), tuple(k[5]), tuple(k[11]), tuple(k[8])], fill=10)       # torso skin
    d.rectangle((k[8, 0] - 0.02 * w, k[8, 1] - 0.02 * h, k[11, 0] + 0.02 * w, k[8, 1] + 0.05 * h), fill=10)
    d.line([tuple(k[0]), tuple(k[1])], fill=10, width=limb_w)
    d.ellipse((k[0, 0] - 0.8 * head_r, k[0, 1] - head_r, k[0, 0] + 0.8 * head_r, k[0, 1] + head_r), fill=13)
    d.chord((k[0, 0] - 0.85 * head_r, k[0, 1] - 1.15 * head_r, k[0, 0] + 0.85 * head_r, k[0, 1] + 0.7 * head_r),
            180, 360, fill=2)
    parse = np.asarray(parse).copy()
    # the person wears a plain top under a bottom garment / plain trousers under a top
    other = {"top": (9, np.array([40, 40, 90])), "bottom": (5, np.array([200, 200, 200])), "whole": (None, None)}[category]
    if other[0] is not None:
        region = _garment_body_box("bottom" if category == "top" else "top", k, h, w)
        om = Image.new("L", (w, h))
        ImageDraw.Draw(om).rectangle(region, fill=1)
        om = np.asarray(om) > 0
        if category == "top":
            om &= np.isin(parse, (10, 16, 17))
        else:
            om &= np.isin(parse, (10, 14, 15)) & (np.mgrid[0:h, 0:w][0] < k[8, 1] + 0.02 * h)
        parse[om] = other[0]

    # the worn garment: the in-shop one through the true TPS (backward map person -> cloth)
    body_box = _garment_body_box(category, k, h, w)
    scale, shift = _affine_box(body_box, cloth_box)
    gen = tps.tps_grid(h, w, 5, "tps_cpvton")
    p_pix = (gen.points + 1) / 2 * np.array([w - 1, h - 1])
    q_pix = p_pix * scale + shift + rng.normal(0, 0.035, p_pix.shape) * np.array([w, h])
    q = q_pix / np.array([w - 1, h - 1]) * 2 - 1
    theta = np.concatenate([q[:, 0] - gen.points[:, 0], q[:, 1] - gen.points[:, 1]]).astype(np.float32)
    grid = true_grid(theta.astype(np.float64), h, w)
    gx, gy = (grid[..., 0] + 1) / 2 * (w - 1), (grid[..., 1] + 1) / 2 * (h - 1)
    worn = _sample(cloth.astype(np.float32), gx, gy, "border")
    worn_mask = _sample(cloth_mask[..., None].astype(np.float32) / 255.0, gx, gy, "zeros")[..., 0] >= 0.5
    label = {"top": 5, "bottom": 12 if style["skirt"] else 9, "whole": 6}[category]
    parse[worn_mask] = label

    colours = {0: (255, 255, 255), 2: (40, 25, 10), 5: (200, 200, 200), 9: (40, 40, 90)}
    image = np.empty((h, w, 3), np.uint8)
    for lab in np.unique(parse):
        image[parse == lab] = colours.get(int(lab), tuple(int(v) for v in np.clip(skin, 0, 255)))
    image[worn_mask] = np.clip(np.round(worn[worn_mask]), 0, 255).astype(np.uint8)
    keypoints = np.concatenate([k, np.ones((18, 1))], 1)
    return image, parse, keypoints, cloth, cloth_mask, theta


def write_viton_folder(root: str, split: str, n: int, height: int = 64, width: int = 48,
                       categories=("top",), seed: int = 0) -> None:
    """Writes n samples of `split` in the VITON layout (see the module doc)."""
    base = os.path.join(root, split)
    for sub in ("image", "image-parse", "cloth", "cloth-mask", "pose", "warp-gt"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    rows = []
    for i in range(n):
        category = categories[i % len(categories)]
        image, parse, kp, cloth, cmask, theta = make_sample(i, split, height, width, category, seed)
        im_name, c_name = f"{i:06d}_0.jpg", f"{i:06d}_1.jpg"
        Image.fromarray(image).save(os.path.join(base, "image", im_name), quality=95)
        Image.fromarray(parse).save(os.path.join(base, "image-parse", im_name.replace(".jpg", ".png")))
        Image.fromarray(cloth).save(os.path.join(base, "cloth", c_name), quality=95)
        Image.fromarray(cmask).save(os.path.join(base, "cloth-mask", c_name), quality=95)
        with open(os.path.join(base, "pose", im_name.replace(".jpg", "_keypoints.json")), "w") as f:
            json.dump({"version": 1.0, "people": [{"face_keypoints": [], "pose_keypoints": kp.reshape(-1).tolist(),
                                                   "hand_right_keypoints": [], "hand_left_keypoints": []}]}, f)
        with open(os.path.join(base, "warp-gt", im_name.replace(".jpg", ".json")), "w") as f:
            json.dump({"kernel": "tps_cpvton", "grid_size": 5, "theta": theta.tolist()}, f)
        rows.append((im_name, c_name, category))
    if split == "test":       # unpaired: garments shuffled within each category
        rng = np.random.default_rng([seed, 7])
        for cat in categories:
            idx = [i for i, r in enumerate(rows) if r[2] == cat]
            perm = rng.permutation(idx)
            cloths = [rows[j][1] for j in perm]
            for i, c in zip(idx, cloths):
                rows[i] = (rows[i][0], c, cat)
    with open(os.path.join(root, f"{split}_pairs.txt"), "w") as f:
        for im_name, c_name, cat in rows:
            f.write(f"{im_name} {c_name}" + (f" {cat}" if len(categories) > 1 else "") + "\n")
