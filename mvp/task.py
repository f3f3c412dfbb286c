"""`pose3d`: MvP's multi-view multi-person 3-D pose training on the platform's loop
(sail-sg/mvp run/train_3d.py, lib/core/function.py).

- data: calibrated multi-view frames (mvp/data.py: Panoptic layout or the synthetic stand-in),
  the official input construction, no augmentation;
- step: the model on [B, V, H, W, 3] with the camera meta; Hungarian matching per decoder layer
  and the official losses (mvp/losses.py); Adam / AdamW with lr x 0.1 on `reference_points` and
  `sampling_offsets`, the backbone and the never-used view/level embeddings frozen
  (optim.groups), global-norm clipping 0.1 (configs/mvp);
- evaluation: the last layer's joints in mm and person scores (mean of the per-joint sigmoid
  probabilities) scored on the host: AP_K / recall / MPJPE (Panoptic) or PCP (Shelf / Campus)
  by mvp/metrics.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import models
from common.classification import compute_dtype
from common.tasks import SingleNetworkTask, register_task
from common.train_state import TrainState
from mvp import cameras, data, losses, metrics, synthetic
from mvp.model import dummy_meta

META_KEYS = cameras.CAMERA_KEYS + ("affine", "image_wh")


@register_task("pose3d")
class Pose3DTask(SingleNetworkTask):
    def __init__(self, config):
        super().__init__(config)
        c = config.model
        self.model = models.create_model(c.name, dtype=compute_dtype(c.dtype), **c.kwargs.to_dict())
        if tuple(config.data.image_size) != tuple(self.model.image_size):
            raise ValueError(f"config.data.image_size {tuple(config.data.image_size)} differs from the model's "
                             f"image_size {tuple(self.model.image_size)}")

    # ------------------------------------------------------------------ data
    def data_module(self):
        return data

    def synthetic_batch(self, batch_size: int) -> dict:
        m = self.model
        w, h = m.image_size
        rng = np.random.default_rng(0)
        p = int(self.config.data.max_people)
        meta = dummy_meta(batch_size, m.views, synthetic.IMAGE_WH, m.image_size)
        joints = np.zeros((batch_size, p, 15, 3), np.float32)
        for b in range(batch_size):
            poses = synthetic.people(rng, min(3, p))
            joints[b, :len(poses)] = poses
        valid = np.abs(joints).sum((-1, -2)) > 0
        return {"images": rng.standard_normal((batch_size, m.views, h, w, 3)).astype(np.float32), **meta,
                "joints_3d": joints, "joints_3d_vis": valid[..., None].repeat(15, -1).astype(np.float32),
                "person_valid": valid}

    # ------------------------------------------------------------------ state
    def init_variables(self, rng):
        m = self.model
        w, h = m.image_size
        return m.init({"params": rng, "dropout": rng}, jnp.zeros((1, m.views, h, w, 3)),
                      dummy_meta(1, m.views, synthetic.IMAGE_WH, m.image_size), train=False)


    @staticmethod
    def meta(batch):
        return {k: batch[k] for k in META_KEYS}

    def apply(self, net, batch, *, train: bool, rng=None):
        """(outputs, model state): BatchNorm statistics change only when the backbone trains."""
        mutable = ["batch_stats"] if train and not self.model.freeze_backbone else False
        out = self.model.apply({"params": net.params, **net.model_state},
                               batch["images"].astype(compute_dtype(self.config.model.dtype)), self.meta(batch),
                               train=train, rngs={"dropout": rng} if rng is not None else None, mutable=mutable)
        return out if mutable else (out, net.model_state)

    def criterion(self, outputs, batch):
        l = self.config.loss
        return losses.set_criterion(outputs, batch, norm2absolute=self.model.norm2absolute,
                                    absolute2norm=self.model.absolute2norm, ce_weight=l.ce, pose_weight=l.pose,
                                    solver=l.matcher)

    # ------------------------------------------------------------------ steps
    def train_step(self, state: TrainState, batch, rng):
        net = state.model

        def loss_fn(params):
            outputs, model_state = self.apply(net.replace(params=params), batch, train=True, rng=rng)
            loss, m, _ = self.criterion(outputs, batch)
            return loss, (m, model_state)

        (loss, (m, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
        tx, schedule = self.tx_and_schedule
        net = net.apply_gradients(grads, tx, model_state=model_state)
        return state.update(model=net), {**m, "train/loss": loss, "lr": schedule(state.step),
                                         "train/grad_norm": optax.global_norm(grads)}

    def predict_step(self, state: TrainState, batch):
        return self.apply(state.model, batch, train=False)[0]

    def eval_step(self, state: TrainState, batch):
        """The last layer: joints in mm [B, N, J, 3] and scores [B, N] (sigmoid of column 1)."""
        out = self.predict_step(state, batch)
        poses = self.model.norm2absolute(out["pred_poses"][-1])
        return {"poses": poses, "scores": jax.nn.sigmoid(out["pred_logits"][-1, ..., 1]),
                "gt": batch["joints_3d"], "gt_vis": batch["joints_3d_vis"], "gt_valid": batch["person_valid"],
                "mask": batch["mask"]}

    # ------------------------------------------------------------------ evaluation
    def make_evaluator(self, eval_pass):
        e = self.config.eval
        return metrics.PoseEvaluator(e.kind, e.conf_thr, e.get("actors", 0))

    def summarize(self, results: dict) -> str:
        lines = []
        for name, m in results.items():
            if "AP25" in m:
                keys = [f"AP{t}" for t in metrics.THRESHOLDS] + ["recall500", "MPJPE"]
            else:
                keys = [k for k in m if k.startswith("PCP")] + ["recall500"]
            lines.append(f"{'pass':10s}  " + "  ".join(f"{k:>9s}" for k in keys))
            lines.append(f"{name:10s}  " + "  ".join(f"{m[k]:9.2f}" for k in keys))
        return "\n".join(lines)
