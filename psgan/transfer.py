"""Makeup transfer, partial transfer, degree control and removal from the command line.

  python -m psgan.transfer --config=configs/psgan/psgan_mt256.py --checkpoint=converted/psgan \\
      data/images/non-makeup/A.png data/images/makeup/B.png [--regions lip,eye] [--degree 0.5] \\
      [--out results/]
  python -m psgan.transfer --config=configs/psgan/psganpp_mt256.py --checkpoint=runs/psganpp \\
      data/images/makeup/B.png --remove

Faces are given in the MT layout: for .../images/<kind>/NAME.png the label map is
.../segs/<kind>/NAME.png and the landmarks .../landmarks/<kind>/NAME.png (a pickled (68, 2)
(y, x) array); the inference crop needs dlib and a face parser, which are not part of this
package (psgan.preprocess.crop_box is the official crop given a face box).

Writes OUT/<source>_<reference>.png (the result at the source's resolution: the output
min-max normalised as Solver.test, resized, plus the source's Laplacian detail as
PostProcess) and OUT/<source>_<reference>_grid.png (source, reference, result; then the
raw outputs at the degrees 0, 0.25, 0.5, 0.75, 1), and prints the per-region histogram
distance to the reference of the result and of the source (after / before). Partial transfer and degree control mix the morphed matrices
(the papers): γ̃ = m_x γ̃_ref + (1 - m_x) γ̃_self with m_x the source's mask of the chosen
regions at the bottleneck size, and γ̃ = α γ̃_ref + (1 - α) γ̃_self, where γ̃_self = AMM(x, x)
(the source's own matrices: degree 0 is the source's reconstruction). Files are written
under temporary names and renamed, so an error never leaves a half-written picture, and
nothing is written before every input has been read.
"""
import argparse
import os
import sys
import uuid

import jax
import jax.numpy as jnp
import numpy as np

from common.errors import ConfigError, UserError
from psgan import preprocess
from psgan.model import REGIONS, resize_masks

DEGREES = (0.0, 0.25, 0.5, 0.75, 1.0)


def mix_regions(ref, own, masks_x, regions):
    """Partial transfer: ref/own = (γ̃, β̃) [B, h, w, 1]; masks_x [B, 3, H, W]; regions names."""
    idx = [REGIONS.index(r) for r in regions]
    h, w = ref[0].shape[1:3]
    m = jnp.clip(jnp.sum(resize_masks(masks_x, (h, w))[:, idx], 1), 0, 1)[..., None] if idx else 0.0
    return tuple(m * a + (1 - m) * b for a, b in zip(ref, own))


def interpolate(ref, own, alpha):
    """Degree control: α (γ̃_ref, β̃_ref) + (1 - α) (γ̃_self, β̃_self); α = 1 and 0 are exact."""
    return tuple(jnp.where(alpha == 1.0, a, jnp.where(alpha == 0.0, b, alpha * a + (1 - alpha) * b))
                 for a, b in zip(ref, own))


def region_distances(out, src, ref) -> str:
    """`lip 0.071 / 0.198, ...`: the regression metric of the evaluation (L1 between 256-bin
    CDFs per region, mean over RGB) of the raw output and of the untouched source to the reference."""
    from psgan import losses
    parts = []
    for r, region in enumerate(REGIONS):
        mx, my = src["mask"][:, r], ref["mask"][:, r]
        after = float(losses.hist_distance(jnp.asarray(out)[None], ref["image"], mx, my)[0])
        before = float(losses.hist_distance(src["image"], ref["image"], mx, my)[0])
        parts.append(f"{region} {after:.3f} / {before:.3f}")
    return ", ".join(parts)


def mt_paths(image_path: str) -> tuple[str, str]:
    """(label map, landmarks) of an image in the MT layout."""
    parts = os.path.abspath(image_path).split(os.sep)
    if "images" not in parts:
        raise preprocess.FaceError(f"{image_path}: not in the MT layout (.../images/<kind>/NAME.png with segs/ and "
                         "landmarks/ beside images/)")
    i = len(parts) - 1 - parts[::-1].index("images")
    return tuple(os.sep.join(parts[:i] + [sub] + parts[i + 1:]) for sub in ("segs", "landmarks"))


def read_face(image_path: str, size: int, eye_margin: int):
    """(original uint8 image, inputs at `size`) of one face; errors name the file."""
    from psgan import data
    if not os.path.isfile(image_path):
        raise preprocess.FaceFileMissing(f"{image_path}: no such image")
    seg_path, lms_path = mt_paths(image_path)
    root = os.path.dirname(os.path.dirname(os.path.dirname(seg_path)))
    name = os.path.relpath(os.path.abspath(image_path), os.path.join(root, "images"))
    ex = data.read_example(root, name)
    rec = {"image": ex["image"], "seg": ex["seg"][..., None], "landmarks": ex["landmarks"], "name": name}
    face = data.load_face(rec, size, eye_margin)
    return ex["image"], {k: v[None] for k, v in face.items()}


class Transfer:
    """A generator from a checkpoint, with jitted transfer / matrices / removal."""

    def __init__(self, config, checkpoint: str):
        from common import checkpoint as ckpt, models
        self.config = config
        self.model = models.create_model(config.model.name, **config.model.kwargs.to_dict())
        self.params = ckpt.load_any(checkpoint, "generator")["params"]
        m = self.model
        self._morph = jax.jit(lambda p, x, y, mx, my, dx, dy: m.apply({"params": p}, x, y, mx, my, dx, dy,
                                                                       method=m.morph))
        self._apply = jax.jit(lambda p, x, g, b: m.apply({"params": p}, x, g, b, method=m.apply_matrices))
        self._remove = jax.jit(lambda p, y: m.apply({"params": p}, y, method=m.remove))

    def matrices(self, src, ref):
        return self._morph(self.params, src["image"], ref["image"], src["mask"], ref["mask"], src["diff"], ref["diff"])

    def apply(self, src, matrices):
        return np.asarray(self._apply(self.params, src["image"], *matrices))

    def remove(self, face):
        return np.asarray(self._remove(self.params, face["image"]))


def _to_uint8(x):
    return ((np.clip(np.asarray(x), -1, 1) + 1) * 127.5).round().astype(np.uint8)


def _save_atomic(path: str, image: np.ndarray) -> None:
    from common import pictures
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:6]}.png"
    pictures.save_png(tmp, image)
    os.replace(tmp, path)


def run(config, checkpoint: str, source: str, reference: str | None, out_dir: str, regions=(),
        degree: float = 1.0, remove: bool = False) -> dict:
    """Everything the CLI does; returns {name: path} of the written files (and, for a transfer,
    the histogram distances the CLI prints)."""
    from common import pictures
    from psgan import data
    size, margin = int(config.data.image_size), data.eye_margin(config)
    for r in regions:
        if r not in REGIONS:
            raise ConfigError(f"unknown region {r!r}: {', '.join(REGIONS)}")
    if not 0.0 <= degree <= 1.0:
        raise ConfigError(f"--degree must be in [0, 1], got {degree}")
    src_img, src = read_face(source, size, margin)
    ref_img, ref = (None, None) if remove and reference is None else read_face(reference, size, margin)
    t = Transfer(config, checkpoint)
    stem = os.path.splitext(os.path.basename(source))[0]
    written = {}
    if remove:
        if not t.model.idnet:
            raise ConfigError(f"--remove needs a generator with an IDNet (a psganpp variant), not {config.model.name}")
        out = t.remove(src)[0]
        result = preprocess.detail_add_back(src_img, preprocess.minmax_to_uint8(out), size)
        panels, titles = [src_img, result], ["source", "makeup removed"]
        name = f"{stem}_removed"
    else:
        own = t.matrices(src, src)
        full = t.matrices(src, ref)
        base = mix_regions(full, own, src["mask"], regions) if regions else full
        chosen = interpolate(base, own, jnp.float32(degree))
        out = t.apply(src, chosen)[0]
        result = preprocess.detail_add_back(src_img, preprocess.minmax_to_uint8(out), size)
        row = [_to_uint8(t.apply(src, interpolate(base, own, jnp.float32(a)))[0]) for a in DEGREES]
        what = f"{'+'.join(regions) if regions else 'all'} x{degree:g}"
        panels = [_resize(src_img, size), _resize(ref_img, size), _resize(result, size)] + row
        titles = ["source", "reference", f"result {what}", "", ""] + [f"degree {a:g}" for a in DEGREES]
        panels = panels[:3] + [np.full_like(panels[0], 255)] * 2 + panels[3:]
        name = f"{stem}_{os.path.splitext(os.path.basename(reference))[0]}"
        written["histogram distance to the reference, result / source"] = region_distances(out, src, ref)
    os.makedirs(out_dir, exist_ok=True)
    written["result"] = os.path.join(out_dir, f"{name}.png")
    _save_atomic(written["result"], result)
    panels = [pictures.fit_for_display(_resize(p, size), 128) for p in panels]
    grid = pictures.image_grid(panels, titles, columns=2 if remove else 5)
    written["grid"] = os.path.join(out_dir, f"{name}_grid.png")
    _save_atomic(written["grid"], grid)
    return written


def _resize(image, size):
    from PIL import Image
    return np.asarray(Image.fromarray(np.asarray(image)).resize((size, size), Image.BILINEAR))


def load_config(spec: str):
    """`PATH[:PRESET]` -> the locked config (as common.train's --config)."""
    import importlib.util
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    mod_spec = importlib.util.spec_from_file_location("_psgan_config", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod.get_config(arg or None)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m psgan.transfer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="config file[:preset]")
    p.add_argument("--checkpoint", required=True, help="converted checkpoint or training workdir")
    p.add_argument("source")
    p.add_argument("reference", nargs="?")
    p.add_argument("--regions", default="", help="partial transfer: comma list of lip, skin, eye")
    p.add_argument("--degree", type=float, default=1.0, help="makeup degree in [0, 1]")
    p.add_argument("--remove", action="store_true", help="makeup removal of SOURCE (PSGAN++ IDNet)")
    p.add_argument("--out", default="transfer_out")
    a = p.parse_args(argv)
    if a.reference is None and not a.remove:
        p.error("REFERENCE is required unless --remove")
    config = load_config(a.config)
    try:
        written = run(config, a.checkpoint, a.source, a.reference, a.out,
                      tuple(r for r in a.regions.split(",") if r), a.degree, a.remove)
    except (UserError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for k, v in written.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
