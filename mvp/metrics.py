"""MvP's evaluation on the host (sail-sg/mvp lib/dataset/panoptic.py `evaluate`,
`_eval_list_to_ap`, `_eval_list_to_mpjpe`, `_eval_list_to_recall`; shelf.py / campus.py
`evaluate`), fed per frame by the task's eval step through `PoseEvaluator`.

Panoptic: predictions with score > thr (0.1) are kept; each is assigned to its nearest ground
truth by MPJPE over that person's visible joints; frames without ground truth are skipped.
AP_K for K = 25..150 mm: a *stable* sort by score, greedy TP (mpjpe < K and the GT unused),
VOC-style AP with the right-to-left precision envelope; recall at K = the last recall.
MPJPE = the mean of the greedy TPs at 500 mm; Recall@500 = unique GTs with any prediction
< 500 mm / total GT (no greediness). Shelf / Campus: every prediction is kept (thr 0); for
each actor the nearest prediction by 14-joint MPJPE; PCP over 10 parts (9 limbs + the torso
from the hip centre to the bottom of the head): correct if the mean endpoint error <= 0.5 x
the GT limb length; per-actor PCP and their mean.
"""
import numpy as np

THRESHOLDS = tuple(range(25, 151, 25))
PCP_LIMBS = ((0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (9, 10), (10, 11), (12, 13))


def eval_list(frames, thr: float = 0.1):
    """frames: iterable of (pred [N, J, 3] mm, scores [N], gt [P, J, 3], gt_vis [P, J]) ->
    (list of {mpjpe, score, gt_id}, total_gt)."""
    out, total_gt = [], 0
    for pred, score, gt, vis in frames:
        if len(gt) == 0:
            continue
        for pose, s in zip(pred[score > thr], score[score > thr]):
            mpjpes = [np.mean(np.sqrt(np.sum((pose[v > 0] - g[v > 0]) ** 2, -1))) for g, v in zip(gt, vis)]
            out.append({"mpjpe": float(np.min(mpjpes)), "score": float(s), "gt_id": int(total_gt + np.argmin(mpjpes))})
        total_gt += len(gt)
    return out, total_gt


def ap_at(items, total_gt: int, threshold: float):
    items = sorted(items, key=lambda k: k["score"], reverse=True)       # stable, as list.sort
    tp, fp, used = np.zeros(len(items)), np.zeros(len(items)), set()
    for i, item in enumerate(items):
        if item["mpjpe"] < threshold and item["gt_id"] not in used:
            tp[i] = 1
            used.add(item["gt_id"])
        else:
            fp[i] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / (total_gt + 1e-5)
    precision = tp / (tp + fp + 1e-5)
    for n in range(len(items) - 2, -1, -1):
        precision[n] = max(precision[n], precision[n + 1])
    precision = np.concatenate(([0], precision, [0]))
    recall = np.concatenate(([0], recall, [1]))
    idx = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[idx + 1] - recall[idx]) * precision[idx + 1])), float(recall[-2])


def mpjpe(items, threshold: float = 500.0) -> float:
    items = sorted(items, key=lambda k: k["score"], reverse=True)
    used, errs = set(), []
    for item in items:
        if item["mpjpe"] < threshold and item["gt_id"] not in used:
            errs.append(item["mpjpe"])
            used.add(item["gt_id"])
    return float(np.mean(errs)) if errs else float("inf")


def recall_at(items, total_gt: int, threshold: float = 500.0) -> float:
    return len({e["gt_id"] for e in items if e["mpjpe"] < threshold}) / total_gt if total_gt else 0.0


def panoptic_metrics(frames, thr: float = 0.1) -> dict:
    """AP_K and recall_K (K = 25..150, in %), MPJPE (mm), Recall@500 (%), persons."""
    items, total_gt = eval_list(frames, thr)
    out = {}
    for t in THRESHOLDS:
        ap, rec = ap_at(items, total_gt, t)
        out[f"AP{t}"], out[f"recall{t}"] = 100 * ap, 100 * rec
    out["MPJPE"] = mpjpe(items)
    out["recall500"] = 100 * recall_at(items, total_gt)
    out["persons"] = total_gt
    return out


BONE_GROUPS = (("head", (8,)), ("torso", (9,)), ("upper_arms", (5, 6)), ("lower_arms", (4, 7)),
               ("upper_legs", (1, 2)), ("lower_legs", (0, 3)))


def pcp_metrics(frames, thr: float = 0.0, mean_over: int = 3) -> dict:
    """Shelf / Campus (shelf.py / campus.py `evaluate`): frames of (pred [N, 14, 3] mm, scores
    [N], gt [A, 14, 3] in actor order, gt_vis [A, 14] with an absent actor's row all 0).
    Predictions with score > thr are kept; every present actor takes its nearest kept
    prediction by 14-joint MPJPE (recall: < 500 mm) and scores 10 parts, correct when the mean
    of the two endpoint errors <= 0.5 x the GT part length. -> PCP per actor (%, correct /
    total parts), `PCP` = their mean over actors 1..mean_over, PCP per bone group (all actors),
    recall500 (%)."""
    actors = max((len(f[2]) for f in frames), default=0)
    correct, total = np.zeros(actors), np.zeros(actors)
    bone_correct = np.zeros((actors, 10))
    hits = seen = 0
    for pred, score, gt, vis in frames:
        pred = np.asarray(pred)[np.asarray(score) > thr]
        for a in range(len(gt)):
            if vis[a].sum() == 0:
                continue
            seen += 1
            total[a] += 10
            if not len(pred):
                continue
            errs = np.mean(np.sqrt(np.sum((pred - gt[a]) ** 2, -1)), -1)
            best = pred[int(np.argmin(errs))]
            hits += errs.min() < 500
            parts = [(gt[a][i], gt[a][j], best[i], best[j]) for i, j in PCP_LIMBS]
            parts.append(((gt[a][2] + gt[a][3]) / 2, gt[a][12], (best[2] + best[3]) / 2, best[12]))   # torso
            for k, (g0, g1, p0, p1) in enumerate(parts):
                ok = (np.linalg.norm(p0 - g0) + np.linalg.norm(p1 - g1)) / 2 <= 0.5 * np.linalg.norm(g0 - g1)
                correct[a] += ok
                bone_correct[a, k] += ok
    per_actor = 100 * correct / (total + 1e-8)
    out = {f"PCP_actor{a + 1}": float(per_actor[a]) for a in range(actors)}
    out["PCP"] = float(np.mean(per_actor[:mean_over])) if actors else 0.0
    for name, parts in BONE_GROUPS:
        out[f"PCP_{name}"] = float(100 * bone_correct[:, list(parts)].sum() / (total.sum() / 10 * len(parts) + 1e-8))
    out["recall500"] = 100 * hits / (seen + 1e-8)
    return out


class PoseEvaluator:
    """common.evaluators protocol over the task's eval-step outputs: per frame `poses`
    [N, J, 3] mm, `scores` [N], `gt` [P, J, 3], `gt_vis` [P, J], `gt_valid` [P], `mask`."""

    def __init__(self, kind: str = "panoptic", thr: float = 0.1, actors: int = 0):
        if kind not in ("panoptic", "pcp"):
            raise ValueError(f"unknown evaluation {kind!r}: panoptic | pcp")
        self.kind, self.thr, self.actors, self.frames = kind, thr, int(actors), []

    def add(self, outputs):
        keep = np.asarray(outputs["mask"]) > 0
        for i in np.flatnonzero(keep):
            valid = np.asarray(outputs["gt_valid"][i]) > 0
            gt, vis = np.asarray(outputs["gt"][i], np.float64), np.asarray(outputs["gt_vis"][i], np.float64)
            if self.kind == "pcp":        # actor slots kept in order (absent: visibility 0)
                last = np.flatnonzero(valid).max() + 1 if valid.any() else 0
                gt, vis = gt[:max(last, self.actors)], (vis * valid[:, None])[:max(last, self.actors)]
            else:
                gt, vis = gt[valid], vis[valid]
            self.frames.append((np.asarray(outputs["poses"][i], np.float64), np.asarray(outputs["scores"][i], np.float64),
                                gt, vis))

    def compute(self):
        if not self.frames:
            raise ValueError("the evaluation split produced no frame")
        out = panoptic_metrics(self.frames, self.thr) if self.kind == "panoptic" else pcp_metrics(self.frames, self.thr)
        out["frames"] = len(self.frames)
        return out
