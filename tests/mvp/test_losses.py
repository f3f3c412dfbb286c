"""The set criterion against the official SetCriterion (golden fixture: per-layer Hungarian
matching, focal loss and L1 in mm on the official outputs) and against a NumPy transcription
(0 to 3 persons, invisible joints)."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from mvp import losses
from mvp.model import create_model
from tests.mvp import golden

FIXTURE = os.path.join(os.path.dirname(__file__), "golden_tiny.npz")
MODEL = create_model("tiny")


def targets(poses, vis, pmax=10):
    j = np.zeros((1, pmax, 15, 3), np.float32)
    v = np.zeros((1, pmax, 15), np.float32)
    j[0, :len(poses)], v[0, :len(poses)] = poses, vis
    return {"joints_3d": j, "joints_3d_vis": v, "person_valid": np.arange(pmax)[None] < len(poses)}


def criterion(logits, poses, t):
    return losses.set_criterion({"pred_logits": jnp.asarray(logits), "pred_poses": jnp.asarray(poses)}, t,
                                norm2absolute=MODEL.norm2absolute, absolute2norm=MODEL.absolute2norm)


def test_equals_the_official_set_criterion():
    fx = np.load(FIXTURE)
    _, _, poses, vis = golden.inputs()
    coords = fx["coords"].reshape(2, 1, 4, 15, 3)
    loss, _, (pred, tgt, ok, ce, pose) = criterion(fx["logits"], coords, targets(poses, vis))
    official = json.loads(str(fx["losses"]))
    np.testing.assert_allclose(np.asarray(ce), [official["loss_ce_0"], official["loss_ce"]], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pose), [official["loss_pose_perjoint_0"], official["loss_pose_perjoint"]],
                               rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(fx["total_loss"]), rtol=1e-5)
    for layer in range(2):
        ours = {(int(i), int(j)) for i, j, o in zip(pred[layer, 0], tgt[layer, 0], ok[layer, 0]) if o}
        theirs = {(int(i), int(j)) for i, j in fx["indices"][layer].T}
        assert ours == theirs


def numpy_criterion(logits, poses, gt, vis, valid):
    """float64 transcription of matcher.py + SetCriterion (B frames, n = max(total, B))."""
    sig = lambda x: 1 / (1 + np.exp(-x))
    lyr, b, n = logits.shape[:3]
    c, s = np.array(MODEL.space_center), np.array(MODEL.space_size)
    gt_norm = (gt - c + s / 2) / s
    n_norm = max(valid.sum(), b)
    total = 0.0
    for layer in range(lyr):
        ce = pose = 0.0
        for i in range(b):
            idx = np.flatnonzero(valid[i])                # present persons (Shelf / Campus slots have gaps)
            k = len(idx)
            p = sig(logits[layer, i, :, 1])
            cls = 0.25 * (1 - p) ** 2 * -np.log(p + 1e-8) - 0.75 * p ** 2 * -np.log(1 - p + 1e-8)
            cost = 5 * np.abs(poses[layer, i].reshape(n, 1, -1) - gt_norm[i, idx].reshape(1, k, gt.shape[-2] * 3)).sum(-1) + 2 * cls[:, None]
            rows, cols = linear_sum_assignment(cost) if k else (np.zeros(0, int), np.zeros(0, int))
            cols = idx[cols]
            tgt = np.zeros((n, 2))
            tgt[rows, 1] = 1
            x = logits[layer, i]
            prob = sig(x)
            bce = np.maximum(x, 0) - x * tgt + np.log1p(np.exp(-np.abs(x)))
            pt = prob * tgt + (1 - prob) * (1 - tgt)
            ce += ((0.25 * tgt + 0.75 * (1 - tgt)) * bce * (1 - pt) ** 2).sum()
            pred_mm = poses[layer, i, rows] * s + c - s / 2
            w = vis[i, cols][..., None]
            pose += np.abs(pred_mm * w - gt[i, cols] * w).sum(0)
        total += 2 * ce / n_norm + 5 * (pose / n_norm).mean()
    return total


@pytest.mark.parametrize("people", [(0, 1), (3, 2), (1, 3)])
def test_equals_a_numpy_transcription(people):
    rng = np.random.default_rng(sum(people))
    b, pmax = 2, 4
    logits = rng.normal(0, 2, (3, b, 5, 2))
    poses = rng.uniform(0.3, 0.7, (3, b, 5, 15, 3))
    gt = rng.uniform(-2000, 2000, (b, pmax, 15, 3)) + [0, 0, 1000]
    vis = (rng.uniform(size=(b, pmax, 15)) > 0.2).astype(np.float64)
    valid = np.arange(pmax)[None] < np.asarray(people)[:, None]
    t = {"joints_3d": gt.astype(np.float32), "joints_3d_vis": vis.astype(np.float32), "person_valid": valid}
    loss = criterion(logits.astype(np.float32), poses.astype(np.float32), t)[0]
    np.testing.assert_allclose(float(loss), numpy_criterion(logits, poses, gt, vis, valid), rtol=1e-4)


def test_equals_the_numpy_transcription_with_14_joints_and_absent_actor_slots():
    """Shelf / Campus: 14 output joints; the actor slots of a test frame have gaps."""
    rng = np.random.default_rng(5)
    b, pmax = 2, 4
    logits = rng.normal(0, 2, (2, b, 5, 2))
    poses = rng.uniform(0.3, 0.7, (2, b, 5, 14, 3))
    gt = rng.uniform(-2000, 2000, (b, pmax, 14, 3)) + [0, 0, 1000]
    vis = np.ones((b, pmax, 14))
    valid = np.array([[True, False, True, False], [False, False, False, True]])
    vis[~valid] = 0
    t = {"joints_3d": gt.astype(np.float32), "joints_3d_vis": vis.astype(np.float32), "person_valid": valid}
    loss, _, (_, tgt, ok, _, _) = criterion(logits.astype(np.float32), poses.astype(np.float32), t)
    assert set(np.asarray(tgt)[np.asarray(ok)].tolist()) <= {0, 2, 3}
    np.testing.assert_allclose(float(loss), numpy_criterion(logits, poses, gt, vis, valid), rtol=1e-4)
