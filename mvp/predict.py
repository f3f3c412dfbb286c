"""Draw MvP's predicted skeletons in every view beside the ground truth, and the room in 3-D.

  python -m mvp.predict --config=configs/mvp/panoptic.py:demo --checkpoint=/tmp/mvp_demo \
      --out=/tmp/mvp_pictures [--split=validation] [--threshold=0.1] FRAME [FRAME ...]

FRAME is an index into the split (or a record key such as `synth_val_00000003`). For each
frame it prints the persons scored above --threshold (score, root position in mm, MPJPE to
the nearest ground truth) and writes `<key>.png`: one row per view, the predicted skeletons
projected through the view's camera (distortion and crop included, mvp.cameras) next to the
true ones, and a top / side plot of the room with both; `<key>.json` holds the joints. A
frame that does not exist is reported and skipped; the exit code is then 1.
"""
import json
import os
import sys

import jax
import numpy as np
from absl import app, flags

from common import pictures
from common.runner import checkpoint_run
from mvp import cameras, data, synthetic

PRED, TRUE = (255, 60, 60), (60, 220, 90)


def draw_view(image_uint8, meta_v, poses, color, image_size):
    """The network-input view with the skeletons [P, J, 3] (mm) projected into it."""
    img = image_uint8
    cam = {k: meta_v[k] for k in cameras.CAMERA_KEYS}
    for pose in poses:
        uv = cameras.project_numpy(pose, cam)
        uv = uv @ np.asarray(meta_v["affine"])[:2, :2].T + np.asarray(meta_v["affine"])[:2, 2]
        z = (pose - np.asarray(cam["T"])) @ np.asarray(cam["R"]).T
        uv[z[:, 2] <= 0] = np.nan                     # behind the camera: not drawn
        limbs = synthetic.LIMBS if pose.shape[0] == 15 else data.ACTOR_LIMBS if pose.shape[0] == 14 else ()
        img = pictures.draw_keypoints(img, uv, limbs, color=color, radius=2)
    return img


def room_plot(pred, gt, space_center, space_size, size=240) -> np.ndarray:
    """Top view (x, y) and side view (x, z) of the room with both sets of skeletons."""
    c, s = np.asarray(space_center), np.asarray(space_size)
    panels = []
    for axes in ((0, 1), (0, 2)):
        lo, hi = c[list(axes)] - s[list(axes)] / 2, c[list(axes)] + s[list(axes)] / 2
        scale = size / max(hi - lo)
        canvas = np.full((int((hi[1] - lo[1]) * scale) + 1, int((hi[0] - lo[0]) * scale) + 1, 3), 250, np.uint8)
        for poses, color in ((gt, TRUE), (pred, PRED)):
            for pose in poses:
                xy = (pose[:, list(axes)] - lo) * scale
                xy[:, 1] = canvas.shape[0] - 1 - xy[:, 1]            # up is up
                canvas = pictures.draw_keypoints(canvas, xy, synthetic.LIMBS if len(pose) == 15 else data.ACTOR_LIMBS if len(pose) == 14 else (),
                                                 color=color, radius=2)
        panels.append(canvas)
    return pictures.image_grid(panels, ["top (x, y)", "side (x, z)"])


def frame_picture(batch_row: dict, pred, gt, image_size, space_center, space_size) -> np.ndarray:
    images = np.asarray(batch_row["images"])
    shown = np.clip((images * data.STD + data.MEAN) * 255, 0, 255).astype(np.uint8)
    panels, titles = [], []
    for v in range(images.shape[0]):
        meta_v = {k: np.asarray(batch_row[k][v], np.float64) for k in cameras.CAMERA_KEYS + ("affine",)}
        panels += [pictures.fit_for_display(draw_view(shown[v], meta_v, pred, PRED, image_size)),
                   pictures.fit_for_display(draw_view(shown[v], meta_v, gt, TRUE, image_size))]
        titles += [f"view {v}: predicted", f"view {v}: ground truth"]
    views = pictures.image_grid(panels, titles, columns=2)
    return pictures.side_by_side([views, room_plot(pred, gt, space_center, space_size)])


def predict_frames(config, checkpoint: str, frames, out_dir: str = "", split: str = "", threshold: float = 0.1):
    """({frame: [person dicts]}, [failures]); writes pictures and json into out_dir."""
    run = checkpoint_run(config, checkpoint)
    state, task = run.init_state(), run.task
    src = data.source(config, split or config.data.eval_split)
    element = data.Element(config.data.image_size, config.data.max_people)
    forward = jax.jit(task.predict_step)
    keys = {}
    results, failed = {}, []
    for frame in frames:
        try:
            index = int(frame)
        except ValueError:
            if not keys:
                keys = {(src[i]["key"].decode() if isinstance(src[i]["key"], bytes) else src[i]["key"]): i
                        for i in range(len(src))}
            index = keys.get(frame, -1)
        if not 0 <= index < len(src):
            failed.append(f"{frame}: no such frame in split {split or config.data.eval_split!r} ({len(src)} frames)")
            continue
        record = src[index]
        key = record["key"].decode() if isinstance(record["key"], bytes) else str(record["key"])
        row = element(record)
        batch = {k: v[None] for k, v in row.items()}
        out = forward(state, batch)
        scores = np.asarray(jax.nn.sigmoid(out["pred_logits"][-1, 0, :, 1]))
        poses = np.asarray(task.model.norm2absolute(out["pred_poses"][-1, 0]))
        keep = scores > threshold
        gt = row["joints_3d"][row["person_valid"]]
        people = []
        for pose, score in zip(poses[keep], scores[keep]):
            err = min((float(np.mean(np.linalg.norm(pose - g, axis=-1))) for g in gt), default=float("nan"))
            people.append({"score": float(score), "root_mm": pose[2].round(1).tolist(), "mpjpe_mm": err,
                           "joints_mm": pose.round(1).tolist()})
        results[key] = people
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            m = task.model
            pictures.save_png(os.path.join(out_dir, f"{key}.png"),
                              frame_picture(row, poses[keep], gt, m.image_size, m.space_center, m.space_size))
            with open(os.path.join(out_dir, f"{key}.json"), "w") as f:
                json.dump({"frame": key, "threshold": threshold, "persons": people,
                           "ground_truth_mm": gt.round(1).tolist()}, f)
    return results, failed


def main():
    from ml_collections import config_flags
    config = config_flags.DEFINE_config_file("config", None, "Config file (PATH[:PRESET]).", lock_config=True)
    ckpt = flags.DEFINE_string("checkpoint", None, "Training workdir or converted checkpoint directory.")
    out = flags.DEFINE_string("out", "", "Directory for one PNG and one JSON per frame.")
    split = flags.DEFINE_string("split", "", "Split to read the frames from (default: config.data.eval_split).")
    threshold = flags.DEFINE_float("threshold", 0.1, "Persons with a lower score are not shown.")
    flags.mark_flags_as_required(["config", "checkpoint"])

    def run(argv):
        if len(argv) < 2:
            raise app.UsageError("give one or more frame indices or keys")
        results, failed = predict_frames(config.value, ckpt.value, argv[1:], out.value, split.value, threshold.value)
        for key, people in results.items():
            print(f"{key}: " + ("; ".join(f"{p['score']:.2f} root {p['root_mm']} mpjpe {p['mpjpe_mm']:.1f} mm"
                                          for p in people) or "nobody"))
        for why in failed:
            print(why, file=sys.stderr)
        if failed:
            sys.exit(1)

    app.run(run)


if __name__ == "__main__":
    main()
