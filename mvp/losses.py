"""MvP's set criterion (sail-sg/mvp lib/models/matcher.py `HungarianMatcher`,
multi_view_pose_transformer.py `SetCriterion`, lib/core/loss.py `PerJointL1Loss`): every
decoder layer is matched to the ground truth on its own and supervised with

  w_ce * sigmoid focal loss (alpha 0.25, gamma 2) on both logit columns (column 1's target is
  1 on matched slots, column 0's always 0), summed over (B, N, 2) / n;
  w_pose * sum over matched pairs of |pred * w - gt * w| in mm (w = 3-D joint visibility) / n,
  then the mean over (J, 3);

with n the number of ground-truth persons. The matcher's cost is
5 * sum_{J x 3} |pred - gt| in the normalised room cube (invisible joints included) plus
2 * [alpha (1-p)^gamma (-log(p + 1e-8)) - (1-alpha) p^gamma (-log(1 - p + 1e-8))], p = sigmoid
of column 1. `loss_pose_perprojection` is computed by the official code but never weighted,
so it is not computed here. Normalisation: the official n is the per-GPU mean count clamped
at 1 (1 frame per GPU) and DDP averages the gradients, i.e. the loss of the whole batch is the
batch sum / max(total persons, frames); that is what `n` is here.
"""
import jax
import jax.numpy as jnp

from common.matching import hungarian_match

ALPHA, GAMMA = 0.25, 2.0


def match_cost(logits, poses, gt_norm, cost_class: float = 2.0, cost_pose: float = 5.0):
    """logits [B, N, 2], poses [B, N, J, 3] and gt_norm [B, P, J, 3] (normalised) -> [B, N, P]."""
    p = jax.nn.sigmoid(logits[..., 1])
    neg = (1 - ALPHA) * p ** GAMMA * -jnp.log(1 - p + 1e-8)
    pos = ALPHA * (1 - p) ** GAMMA * -jnp.log(p + 1e-8)
    l1 = jnp.abs(poses.reshape(poses.shape[:2] + (1, -1)) - gt_norm.reshape(gt_norm.shape[0], 1, gt_norm.shape[1], -1))
    return cost_pose * l1.sum(-1) + cost_class * (pos - neg)[..., None]


def focal_loss(logits, target):
    """torchvision-style sigmoid focal loss, elementwise."""
    prob = jax.nn.sigmoid(logits)
    ce = jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = ALPHA * target + (1 - ALPHA) * (1 - target)
    return alpha_t * ce * (1 - p_t) ** GAMMA


def set_criterion(outputs, targets, *, norm2absolute, absolute2norm, ce_weight: float = 2.0,
                  pose_weight: float = 5.0, solver: str = "scipy"):
    """outputs {"pred_logits" [L, B, N, 2], "pred_poses" [L, B, N, J, 3] normalised}; targets
    {"joints_3d" [B, P, J, 3] mm, "joints_3d_vis" [B, P, J], "person_valid" [B, P]} ->
    (loss, metrics)."""
    logits, poses = outputs["pred_logits"], outputs["pred_poses"]
    gt = targets["joints_3d"].astype(jnp.float32)
    vis = targets["joints_3d_vis"].astype(jnp.float32)[..., None]
    valid = targets["person_valid"]
    n_layers, b, n = logits.shape[:3]
    total = jnp.sum(valid.astype(jnp.float32))
    n_norm = jnp.maximum(total, float(b))
    gt_norm = absolute2norm(gt)
    cost = jax.vmap(match_cost, in_axes=(0, 0, None))(logits, poses, gt_norm)          # L B N P
    pred_idx, tgt_idx, ok = hungarian_match(cost, valid, solver=solver)                   # L B K
    okf = ok.astype(jnp.float32)

    take = jax.vmap(jax.vmap(lambda x, i: x[i]))                                          # over L, B
    pred_mm = norm2absolute(take(poses, pred_idx))                                        # L B K J 3
    gt_mm = jax.vmap(lambda i: jax.vmap(lambda x, j: x[j])(gt, i))(tgt_idx)               # L B K J 3
    w = jax.vmap(lambda i: jax.vmap(lambda x, j: x[j])(vis, i))(tgt_idx)
    l1 = jnp.abs(pred_mm * w - gt_mm * w) * okf[..., None, None]
    pose_loss = (l1.sum((1, 2)) / n_norm).mean((-2, -1))                                   # L

    matched = jnp.zeros((n_layers, b, n)).at[
        jnp.arange(n_layers)[:, None, None], jnp.arange(b)[None, :, None], pred_idx].max(okf)
    target = jnp.stack([jnp.zeros_like(matched), matched], -1)
    ce_loss = focal_loss(logits, target).sum((1, 2, 3)) / n_norm                           # L

    per_layer = ce_weight * ce_loss + pose_weight * pose_loss
    loss = per_layer.sum()
    card = jnp.abs(jnp.sum(jax.nn.sigmoid(logits[-1, ..., 1]) > 0.5, -1) - valid.sum(-1)).astype(jnp.float32).mean()
    metrics = {"train/loss_ce": ce_loss[-1], "train/loss_pose": pose_loss[-1], "train/cardinality_error": card}
    return loss, metrics, (pred_idx, tgt_idx, ok, ce_loss, pose_loss)
