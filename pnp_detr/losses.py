"""DETR's set criterion (facebookresearch/detr models/detr.py `SetCriterion` with
models/matcher.py `HungarianMatcher`), unchanged in twangnh/pnp-detr apart from the
sampler's `sample_reg_loss`, added once with weight 1e-4 (pnp-detr engine.py).

Per decoder layer, each with its own Hungarian matching:
- matching cost C = 5 * L1(cxcywh) - 1 * softmax prob of the target class - 2 * GIoU(xyxy);
- `loss_ce`: cross-entropy over the K+1 classes (K = num_classes slots + no-object at
  index K), class weights 1 and `eos_coef` (0.1) for no-object, reduced as
  sum(w * NLL) / sum(w) over all B x Q slots (torch `F.cross_entropy(weight=...)`);
- `loss_bbox`: L1 of matched cxcywh boxes, summed / num_boxes;
- `loss_giou`: 1 - GIoU of matched boxes, summed / num_boxes;
num_boxes = the target count of the whole batch, clamped >= 1. The official code divides
by the all-reduced count / world size and DDP averages gradients over GPUs, which equals
the global sum / global count used here; its CE is the mean of each GPU's weighted mean,
here the weighted mean over the global batch (identical on one GPU). Auxiliary (earlier)
layers carry the same weights as the last; `class_error` (last layer) and
`cardinality_error` are logged only.
"""
from typing import Mapping

import jax
import jax.numpy as jnp

from common import box_ops
from common.matching import hungarian_match

# loss weights (pnp-detr main.py: --bbox_loss_coef 5 --giou_loss_coef 2, loss_ce 1;
# engine.py / transformer.py: sample_reg_loss 1e-4)
WEIGHTS = {"ce": 1.0, "bbox": 5.0, "giou": 2.0, "reg": 1e-4}
# matching costs (main.py: --set_cost_class 1 --set_cost_bbox 5 --set_cost_giou 2)
COSTS = {"class": 1.0, "bbox": 5.0, "giou": 2.0}
# stands in for padded target boxes so that no NaN reaches a gradient through jnp.where
_DUMMY_BOX = jnp.array([0.5, 0.5, 1.0, 1.0], jnp.float32)


def _checked(given: Mapping | None, defaults: Mapping, what: str) -> dict:
    given = dict(given or {})
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **given}


def matching_cost(pred_logits, pred_boxes, target_boxes, target_labels, target_valid,
                  costs: Mapping | None = None):
    """HungarianMatcher's cost matrix [L, B, Q, T] from logits [L, B, Q, K+1], boxes
    [L, B, Q, 4] and targets [B, T, 4] / [B, T] / [B, T] (padded columns arbitrary)."""
    c = _checked(costs, COSTS, "matching costs")
    prob = jax.nn.softmax(pred_logits.astype(jnp.float32), axis=-1)
    labels = jnp.broadcast_to(target_labels[None, :, None, :], prob.shape[:-1] + target_labels.shape[-1:])
    cost_class = -jnp.take_along_axis(prob, labels, axis=-1)
    tgt = jnp.where(target_valid[..., None], target_boxes, _DUMMY_BOX)[None]    # [1, B, T, 4]
    pred = pred_boxes.astype(jnp.float32)
    cost_bbox = jnp.sum(jnp.abs(pred[..., :, None, :] - tgt[..., None, :, :]), axis=-1)
    cost_giou = -box_ops.generalized_box_iou(box_ops.box_cxcywh_to_xyxy(pred),
                                             box_ops.box_cxcywh_to_xyxy(tgt))
    return c["bbox"] * cost_bbox + c["class"] * cost_class + c["giou"] * cost_giou


def set_criterion(outputs: Mapping, targets: Mapping, *, num_classes: int = 91, eos_coef: float = 0.1,
                  weights: Mapping | None = None, costs: Mapping | None = None,
                  solver: str = "scipy", prefix: str = "train/"):
    """(total loss, {prefix + name: scalar}).

    outputs: "pred_logits" [L, B, Q, K+1] (or [B, Q, K+1]), "pred_boxes" [L, B, Q, 4]
      (cxcywh in [0, 1]), optional "sample_reg_loss" scalar.
    targets: "boxes" [B, T, 4] cxcywh normalised, "labels" [B, T] int (raw class index
      < num_classes), "box_valid" [B, T] bool.
    weights: {"ce", "bbox", "giou", "reg"} (default WEIGHTS), costs: {"class", "bbox",
      "giou"} (default COSTS); unknown keys are errors.
    Metrics: loss (weighted total), loss_ce / loss_bbox / loss_giou / cardinality_error of
    the last layer and `_i` of auxiliary layer i (DETR's names, unweighted), class_error,
    sample_reg_loss.
    """
    w = _checked(weights, WEIGHTS, "loss weights")
    logits = jnp.asarray(outputs["pred_logits"], jnp.float32)
    boxes = jnp.asarray(outputs["pred_boxes"], jnp.float32)
    if logits.ndim == 3:
        logits, boxes = logits[None], boxes[None]
    n_layers, batch, _, k1 = logits.shape
    if k1 != num_classes + 1:
        raise ValueError(f"pred_logits has {k1} classes, expected num_classes + 1 = {num_classes + 1}")
    tgt_boxes = jnp.asarray(targets["boxes"], jnp.float32)
    tgt_labels = jnp.asarray(targets["labels"], jnp.int32)
    tgt_valid = jnp.asarray(targets["box_valid"], bool)
    tgt_boxes = jnp.where(tgt_valid[..., None], tgt_boxes, _DUMMY_BOX)

    cost = matching_cost(logits, boxes, tgt_boxes, tgt_labels, tgt_valid, costs)
    pred_idx, tgt_idx, matched = hungarian_match(cost, tgt_valid, solver=solver)   # [L, B, n]
    num_boxes = jnp.maximum(jnp.sum(tgt_valid).astype(jnp.float32), 1.0)

    # classification: no-object everywhere except the matched predictions
    matched_labels = jnp.take_along_axis(jnp.broadcast_to(tgt_labels, (n_layers,) + tgt_labels.shape),
                                         tgt_idx, axis=-1)
    l_ix = jnp.arange(n_layers)[:, None, None]
    b_ix = jnp.arange(batch)[None, :, None]
    target_classes = jnp.full(logits.shape[:-1], num_classes, jnp.int32).at[l_ix, b_ix, pred_idx].set(
        jnp.where(matched, matched_labels, num_classes))
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), target_classes[..., None], -1)[..., 0]
    class_w = jnp.where(target_classes == num_classes, eos_coef, 1.0)
    loss_ce = jnp.sum(class_w * nll, axis=(1, 2)) / jnp.sum(class_w, axis=(1, 2))       # [L]

    # boxes of the matched pairs
    src = jnp.take_along_axis(boxes, pred_idx[..., None], axis=-2)                    # [L, B, n, 4]
    tgt = jnp.take_along_axis(jnp.broadcast_to(tgt_boxes, (n_layers,) + tgt_boxes.shape),
                              tgt_idx[..., None], axis=-2)
    m = matched.astype(jnp.float32)
    loss_bbox = jnp.sum(m[..., None] * jnp.abs(src - tgt), axis=(1, 2, 3)) / num_boxes
    giou = box_ops.elementwise_generalized_box_iou(box_ops.box_cxcywh_to_xyxy(src),
                                                   box_ops.box_cxcywh_to_xyxy(tgt))
    loss_giou = jnp.sum(m * (1.0 - giou), axis=(1, 2)) / num_boxes

    # logged only (no gradient): class error of the last layer, cardinality error
    last_pred = jnp.argmax(jnp.take_along_axis(logits[-1], pred_idx[-1][..., None], axis=-2), -1)
    correct = jnp.sum(m[-1] * (last_pred == matched_labels[-1]))
    class_error = 100.0 - 100.0 * correct / jnp.maximum(jnp.sum(m[-1]), 1.0)
    card_pred = jnp.sum(jnp.argmax(logits, -1) != num_classes, axis=-1)               # [L, B]
    card_err = jnp.mean(jnp.abs(card_pred - jnp.sum(tgt_valid, -1)[None]).astype(jnp.float32), -1)

    reg = jnp.asarray(outputs.get("sample_reg_loss", 0.0), jnp.float32)
    total = (w["ce"] * jnp.sum(loss_ce) + w["bbox"] * jnp.sum(loss_bbox)
             + w["giou"] * jnp.sum(loss_giou) + w["reg"] * reg)

    metrics = {"loss": total, "class_error": jax.lax.stop_gradient(class_error),
               "sample_reg_loss": reg}
    per_layer = {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou,
                 "cardinality_error": card_err}
    for name, v in per_layer.items():
        metrics[name] = v[-1]
        for i in range(n_layers - 1):
            metrics[f"{name}_{i}"] = v[i]
    metrics = {prefix + k: jax.lax.stop_gradient(v) for k, v in metrics.items()}
    return total, metrics
