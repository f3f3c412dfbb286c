"""`detection`: set-prediction training of DETR / PnP-DETR on the platform's loop
(twangnh/pnp-detr main.py, engine.py; facebookresearch/detr models/detr.py).

- data: COCO-format records (tfds `coco/2017` or a COCO-format folder) through the DETR
  augmentation, padded to the config's canvases with pixel masks (pnp_detr/data.py);
- step: one poll ratio α ~ U(alpha_min, alpha_max) per step (engine.py draws it per
  iteration), traced so it never recompiles; Hungarian matching per decoder layer and the
  DETR losses plus 1e-4 x the sampler's regulariser (pnp_detr/losses.py); AdamW with the
  backbone's own lr and the frozen stem + layer1 as `optim.groups`, clipping 0.1;
- evaluation: one pass per eval α (a compiled program each), COCO box AP by pycocotools on
  the host (pnp_detr/evaluation.py).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import models
from common.classification import compute_dtype
from common.evaluators import EvalPass
from common.tasks import SingleNetworkTask, register_task
from common.train_state import TrainState
from pnp_detr import data, losses
from pnp_detr.evaluation import METRICS, CocoEvaluator, postprocess
from pnp_detr.flops import model_transformer_flops


@register_task("detection")
class DetectionTask(SingleNetworkTask):
    def __init__(self, config):
        super().__init__(config)
        c = config.model
        self.num_classes = int(c.num_classes)
        self.model = models.create_model(c.name, num_classes=self.num_classes, dtype=compute_dtype(c.dtype),
                                         **c.kwargs.to_dict())
        self.uses_sampler = bool(self.model.use_sampler)

    # ------------------------------------------------------------------ data
    def data_module(self):
        return data

    def synthetic_batch(self, batch_size: int) -> dict:
        h, w = self.config.data.canvases[0]
        t = int(self.config.data.max_boxes)
        rng = np.random.default_rng(0)
        centres = rng.uniform(0.2, 0.8, (batch_size, t, 2))
        return {"image": rng.standard_normal((batch_size, h, w, 3)).astype(np.float32),
                "pixel_mask": np.ones((batch_size, h, w), bool),
                "boxes": np.concatenate([centres, np.full((batch_size, t, 2), 0.2)], -1).astype(np.float32),
                "labels": rng.integers(1, self.num_classes, (batch_size, t)).astype(np.int32),
                "box_valid": np.arange(t)[None, :].repeat(batch_size, 0) < 3,
                "orig_size": np.tile([[h, w]], (batch_size, 1)).astype(np.int32)}

    # ------------------------------------------------------------------ state
    def init_variables(self, rng):
        h, w = self.config.data.canvases[0]
        return self.model.init({"params": rng, "dropout": rng}, jnp.zeros((1, h, w, 3)),
                               jnp.ones((1, h, w), bool), self.default_alpha, train=False)

    @property
    def default_alpha(self) -> float:
        return float(self.config.pnp.eval_alphas[0]) if self.uses_sampler else 1.0


    def apply(self, net, batch, alpha, *, train: bool, rng=None):
        """(outputs, model state): a backbone with trainable BatchNorm updates its statistics
        in training; FrozenBatchNorm leaves them as they are."""
        mutable = ["batch_stats"] if train and "batch_stats" in net.model_state else False
        out = self.model.apply({"params": net.params, **net.model_state}, batch["image"].astype(
            compute_dtype(self.config.model.dtype)), batch["pixel_mask"], alpha, train=train,
            rngs={"dropout": rng} if rng is not None else None, mutable=mutable)
        return out if mutable else (out, net.model_state)

    # ------------------------------------------------------------------ steps
    def sample_alpha(self, rng):
        """engine.py: one poll ratio per iteration, uniform in [alpha_min, alpha_max]."""
        p = self.config.pnp
        if not self.uses_sampler:
            return jnp.float32(1.0)
        return jax.random.uniform(rng, (), jnp.float32, p.alpha_min, p.alpha_max)

    def train_step(self, state: TrainState, batch, rng):
        k_alpha, k_drop = jax.random.split(rng)
        alpha = self.sample_alpha(k_alpha)
        net = state.model
        targets = {k: batch[k] for k in ("boxes", "labels", "box_valid")}
        l = self.config.loss

        def loss_fn(params):
            outputs, model_state = self.apply(net.replace(params=params), batch, alpha, train=True, rng=k_drop)
            loss, metrics = losses.set_criterion(
                outputs, targets, num_classes=self.num_classes, eos_coef=l.eos_coef,
                weights=dict(ce=l.ce, bbox=l.bbox, giou=l.giou, reg=l.sample_reg), solver=l.matcher)
            return loss, (metrics, model_state)

        (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
        tx, schedule = self.tx_and_schedule
        net = net.apply_gradients(grads, tx, model_state=model_state)
        return state.update(model=net), {**metrics, "train/loss": loss, "train/alpha": alpha,
                                         "lr": schedule(state.step), "train/grad_norm": optax.global_norm(grads)}

    def predict_step(self, state: TrainState, batch, alpha: float | None = None):
        return self.apply(state.model, batch, self.default_alpha if alpha is None else alpha, train=False)[0]

    def eval_step(self, state: TrainState, batch, alpha: float = 1.0):
        outputs = self.predict_step(state, batch, alpha)
        scores, labels, boxes = postprocess(outputs["pred_logits"][-1], outputs["pred_boxes"][-1],
                                            batch["orig_size"])
        return {"scores": scores, "labels": labels, "boxes": boxes, "image_id": batch["image_id"],
                "mask": batch["mask"]}

    # ------------------------------------------------------------------ evaluation
    def eval_passes(self):
        split = self.config.data.eval_split
        if not self.uses_sampler:
            return [EvalPass("eval", split, (("alpha", 1.0),))]
        return [EvalPass(f"eval_alpha{a:g}", split, (("alpha", float(a)),)) for a in self.config.pnp.eval_alphas]

    @functools.lru_cache(maxsize=4)
    def ground_truth(self, split: str) -> dict:
        return data.coco_ground_truth(data.source(self.config, split))

    def make_evaluator(self, eval_pass: EvalPass):
        return CocoEvaluator(self.ground_truth(eval_pass.split))

    def summarize(self, results: dict) -> str:
        """The table of AP against the poll ratio α, with the transformer's XLA GFLOPs at
        each α on the first eval canvas (an image that fills it)."""
        canvas = tuple(self.config.data.canvases[0])
        flops = {p.name: model_transformer_flops(self.model, canvas, p.kwargs["alpha"] if self.uses_sampler else 1.0)
                 for p in self.eval_passes() if p.name in results}
        lines = [f"{'pass':16s}  " + "  ".join(f"{m:>6s}" for m in METRICS) + f"  GFLOPs (transformer, {canvas[0]}x{canvas[1]})"]
        lines += [f"{name:16s}  " + "  ".join(f"{m[k]:6.2f}" for k in METRICS) + f"  {flops[name] / 1e9:8.3f}"
                  for name, m in results.items()]
        return "\n".join(lines)
