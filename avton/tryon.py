"""Try a garment on a person with trained stages, and draw what each stage did.

  python -m avton.tryon --config=configs/avton/viton_gmm.py:demo --checkpoint=/tmp/avton_demo \
      [--tofm_config=configs/avton/viton_tofm.py:demo --tofm_checkpoint=DIR] \
      [--lpm_checkpoint=DIR] --out=/tmp/tryon PERSON_DIR CLOTH

PERSON_DIR holds one person in the VITON layout: image/<name>.jpg, image-parse/<name>.png,
pose/<name>_keypoints.json (the first of each). CLOTH is an in-shop garment image; its
mask is CLOTH's sibling cloth-mask/<same name> when present, else the non-white pixels.
Writes <out>/<name>_tryon.png (the result: the TOFM's try-on, or the warped cloth pasted
on the person when no TOFM is given) and <out>/<name>_grid.png: person, cloth, warped
cloth with the warped control-point grid drawn, limb prediction, composition mask,
result. `--compare_kernels` also writes <out>/<name>_kernels.png: the same garment warped
through the same control points with the TPS (tps_cpvton) and the Wendland kernel.
Unreadable or inconsistent input raises an error that names the file.
"""
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from avton import data, tps
from common import pictures
from common.runner import Run

FLAGS = flags.FLAGS


def load_person(person_dir: str):
    """(name, image uint8, parse uint8, keypoints [18, 3]) of the first person in a VITON-layout dir."""
    images = sorted(glob.glob(os.path.join(person_dir, "image", "*")))
    if not images:
        raise FileNotFoundError(f"{person_dir}: no image/ file (expected the VITON layout: image/, image-parse/, pose/)")
    path = images[0]
    stem = os.path.splitext(os.path.basename(path))[0]
    image = data.read_rgb(path)
    parse_path = os.path.join(person_dir, "image-parse", stem + ".png")
    pose_path = os.path.join(person_dir, "pose", stem + "_keypoints.json")
    for p in (parse_path, pose_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} does not exist (needed for {path})")
    parse = data.read_parse(parse_path)
    if parse.shape != image.shape[:2]:
        raise ValueError(f"{parse_path}: parse is {parse.shape[1]}x{parse.shape[0]}, its image {path} is "
                         f"{image.shape[1]}x{image.shape[0]}")
    return stem, image, parse, data.read_keypoints(pose_path)


def load_cloth(path: str):
    cloth = data.read_rgb(path)
    mask_path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "cloth-mask", os.path.basename(path))
    if os.path.isfile(mask_path):
        mask = data.read_gray(mask_path)
    else:
        mask = ((cloth.astype(int).sum(-1) < 3 * 245) * 255).astype(np.uint8)
    return cloth, mask


def make_batch(config, person, cloth_and_mask) -> dict:
    _, image, parse, keypoints = person
    cloth, mask = cloth_and_mask
    record = {"image": image, "parse": parse[..., None], "cloth": cloth, "cloth_mask": mask[..., None],
              "keypoints": keypoints, "category": "top", "warp_theta": np.zeros(50, np.float32), "has_warp": False,
              "im_name": "person.jpg", "c_name": "cloth.jpg"}
    el = data.Element(config, "test")
    el.warp_dir = el.limb_dir = ""
    return {k: np.asarray(v)[None] for k, v in el(record).items()}


def _run(config, checkpoint):
    config.unlock()
    config.init_from = checkpoint
    config.lock()
    run = Run(config, jax.devices()[:1])
    return run, run.init_state()


def to_uint8(x):
    return np.clip((np.asarray(x) + 1.0) * 127.5, 0, 255).astype(np.uint8)


def draw_control_grid(image: np.ndarray, points: np.ndarray, grid_size: int = 5, color=(255, 0, 0)) -> np.ndarray:
    """The (warped) control points [N, 2] in normalised coords, joined as a G x G lattice
    (cpvton order: point i * G + j has X index i, Y index j)."""
    h, w = image.shape[:2]
    im = Image.fromarray(image.copy())
    d = ImageDraw.Draw(im)
    px = (np.asarray(points) + 1) / 2 * np.array([w - 1, h - 1])
    g = px.reshape(grid_size, grid_size, 2)
    for i in range(grid_size):
        d.line([tuple(p) for p in g[i]], fill=color, width=1)
        d.line([tuple(p) for p in g[:, i]], fill=color, width=1)
    for p in px:
        d.ellipse((p[0] - 1.5, p[1] - 1.5, p[0] + 1.5, p[1] + 1.5), fill=color)
    return np.asarray(im)


def warped_control_points(gen: tps.TpsGrid, theta) -> np.ndarray:
    """Where each output-space control point lands on the person: the warped cloth shows
    the cloth's point Q_i at the person's P_i, so the lattice drawn on the warped cloth is
    the cloth's regular lattice pulled back, i.e. the P_i; drawn on the cloth it is Q."""
    return np.asarray(gen.source_points(jnp.asarray(theta)))[0]


def kernel_comparison(cloth: np.ndarray, theta: np.ndarray, h: int, w: int, radius: float = 1.0) -> np.ndarray:
    """The same garment through the same source points with the TPS and the Wendland C2
    kernel, side by side, each with the cloth-side control lattice."""
    c = jnp.asarray(cloth, jnp.float32)[None] / 127.5 - 1
    panels, titles = [], []
    for kernel in ("tps_cpvton", "wendland_c2"):
        gen = tps.tps_grid(h, w, 5, kernel, radius)
        warped = to_uint8(tps.grid_sample(c, gen(jnp.asarray(theta)), "border")[0])
        panels.append(pictures.fit_for_display(draw_control_grid(warped, gen.points)))
        titles.append(kernel)
    return pictures.image_grid(panels, titles)


def tryon(gmm_config, gmm_checkpoint, person_dir, cloth_path, out_dir, tofm_config=None, tofm_checkpoint=None,
          lpm_checkpoint=None, lpm_config=None, compare_kernels=True) -> dict:
    person, cloth = load_person(person_dir), load_cloth(cloth_path)
    name = person[0]
    os.makedirs(out_dir, exist_ok=True)
    run, state = _run(gmm_config, gmm_checkpoint)
    batch = make_batch(gmm_config, person, cloth)
    g = jax.device_get(jax.jit(run.task.predict_step)(state, batch))
    gen = run.task.model.grid_gen
    h, w = run.task.h, run.task.w
    wc, wm = g["warp_cloth"], g["warp_mask"]
    image = batch["image"]
    limb = np.full((h, w, 3), 255, np.uint8)
    if lpm_checkpoint:
        lrun, lstate = _run(lpm_config, lpm_checkpoint)
        lo = jax.device_get(jax.jit(lrun.task.predict_step)(lstate, batch))
        limb = to_uint8(lo["limb_image"][0] * (lo["limb_mask"][0] > 0.5) + (lo["limb_mask"][0] <= 0.5))
        batch = {**batch, "pred_limb_image": lo["limb_image"], "pred_limb_mask": lo["limb_mask"]}
    if tofm_checkpoint:
        trun, tstate = _run(tofm_config, tofm_checkpoint)
        batch = {**batch, "warp_cloth": wc, "warp_mask": wm}
        t = trun.task
        if t.config.tofm.limb_source == "dumped" and "pred_limb_image" not in batch:
            raise ValueError("this TOFM reads LPM limbs (tofm.limb_source=dumped): pass --lpm_checkpoint")
        if t.config.tofm.warp_source == "ground_truth":
            raise ValueError("this TOFM config reads the synthetic set's true warp; set tofm.warp_source=dumped")
        to = jax.device_get(jax.jit(t.predict_step)(tstate, batch))
        result, alpha = to_uint8(to["tryon"][0]), (np.asarray(to["alpha"][0, ..., 0]) * 255).astype(np.uint8)
    else:        # no TOFM: the warped cloth pasted on the person's garment region
        m = (wm[0] > 0.5).astype(np.float32)
        result = to_uint8(wc[0] * m + image[0] * (1 - m))
        alpha = (wm[0, ..., 0] * 255).astype(np.uint8)
    on_cloth = draw_control_grid(to_uint8(batch["cloth"][0]), warped_control_points(gen, g["theta"]))
    on_warp = draw_control_grid(to_uint8(wc[0]), gen.points)
    panels = [to_uint8(image[0]), on_cloth, on_warp, limb, alpha, result]
    titles = ["person", "cloth (source points)", "warped cloth", "limbs", "composition", "result"]
    grid = pictures.image_grid([pictures.fit_for_display(p) for p in panels], titles, columns=6)
    files = {"result": pictures.save_png(os.path.join(out_dir, f"{name}_tryon.png"), result),
             "grid": pictures.save_png(os.path.join(out_dir, f"{name}_grid.png"), grid)}
    if compare_kernels:
        files["kernels"] = pictures.save_png(os.path.join(out_dir, f"{name}_kernels.png"),
                                             kernel_comparison(to_uint8(batch["cloth"][0]), g["theta"], h, w))
    return files


def define_flags():
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "The GMM stage's config.", lock_config=True)
    flags.DEFINE_string("checkpoint", None, "The GMM's training workdir or converted checkpoint.")
    config_flags.DEFINE_config_file("tofm_config", None, "The TOFM stage's config.", lock_config=True)
    flags.DEFINE_string("tofm_checkpoint", None, "The TOFM's workdir (optional).")
    config_flags.DEFINE_config_file("lpm_config", None, "The LPM stage's config.", lock_config=True)
    flags.DEFINE_string("lpm_checkpoint", None, "The LPM's workdir (optional).")
    flags.DEFINE_string("out", "tryon_out", "Output directory.")
    flags.DEFINE_bool("compare_kernels", True, "Also draw the TPS vs Wendland warp of the garment.")
    flags.mark_flag_as_required("config")


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: python -m avton.tryon --config=... --checkpoint=... PERSON_DIR CLOTH")
    files = tryon(FLAGS.config, FLAGS.checkpoint, argv[1], argv[2], FLAGS.out, FLAGS.tofm_config,
                  FLAGS.tofm_checkpoint, FLAGS.lpm_checkpoint, FLAGS.lpm_config, FLAGS.compare_kernels)
    for k, v in files.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
