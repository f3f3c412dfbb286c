"""AP_K / recall / MPJPE and PCP on hand-made predictions with known answers (the official
matching and ranking: nearest GT over visible joints, stable sort, greedy TP, VOC AP)."""
import numpy as np

from mvp import metrics


def person(offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-500, 500, (15, 3)) + [0, 0, 1000]


def test_known_ap_recall_and_mpjpe():
    g1, g2, g3 = person(seed=1), person(seed=2) + [2000, 0, 0], person(seed=3)
    vis2 = np.ones((2, 15))
    frames = [
        (np.stack([g1, g1 + [10, 0, 0], g2 + [0, 60, 0]]), np.array([0.9, 0.8, 0.7]), np.stack([g1, g2]), vis2),
        (np.stack([g3 + [30, 0, 0], g3 + [0, 0, 5000], g3]), np.array([0.95, 0.5, 0.05]), g3[None], np.ones((1, 15))),
        (np.stack([g1]), np.array([0.99]), np.zeros((0, 15, 3)), np.zeros((0, 15))),   # no GT: skipped
    ]
    m = metrics.panoptic_metrics(frames, thr=0.1)
    assert m["persons"] == 3
    np.testing.assert_allclose(m["AP25"], 100 * (1 / 3) * 0.5, rtol=1e-4)            # only g1 at 25 mm
    np.testing.assert_allclose(m["AP100"], 100 * (1 / 3 + 1 / 3 + 0.75 / 3), rtol=1e-4)
    np.testing.assert_allclose(m["recall100"], 100.0, rtol=1e-4)
    np.testing.assert_allclose(m["MPJPE"], (30 + 0 + 60) / 3, rtol=1e-6)
    assert m["recall500"] == 100.0


def test_ground_truth_as_predictions_is_perfect_and_ties_sort_stably():
    g = [person(seed=s) + [1500 * s, 0, 0] for s in range(3)]
    frames = [(np.stack(g), np.full(3, 0.5), np.stack(g), np.ones((3, 15)))]
    m = metrics.panoptic_metrics(frames)
    assert all(abs(m[f"AP{t}"] - 100.0) < 1e-2 for t in metrics.THRESHOLDS) and m["MPJPE"] == 0.0
    # a duplicate with the same score: the first in order is the TP (stable sort)
    items = [{"mpjpe": 10.0, "score": 0.5, "gt_id": 0}, {"mpjpe": 20.0, "score": 0.5, "gt_id": 0}]
    assert metrics.mpjpe(items) == 10.0
    # invisible joints do not count in the assignment distance
    far = g[0].copy()
    far[4] += 10_000
    vis = np.ones((1, 15))
    vis[0, 4] = 0
    m = metrics.panoptic_metrics([(g[0][None], np.ones(1), far[None], vis)])
    assert m["MPJPE"] == 0.0


def test_pcp_of_ground_truth_is_100_and_of_a_shifted_pose_lower():
    gt = np.stack([person(seed=s)[:14] + [1500 * s, 0, 0] for s in range(3)])
    frames = [(gt, np.ones(3), gt, np.ones((3, 14)))]
    m = metrics.pcp_metrics(frames)
    assert abs(m["PCP"] - 100.0) < 1e-4 and abs(m["recall500"] - 100.0) < 1e-4
    moved = gt.copy()
    moved[0, :6] += 400.0                                     # actor 1's legs far off
    m = metrics.pcp_metrics([(moved, np.ones(3), gt, np.ones((3, 14)))])
    assert m["PCP_actor1"] < 99.0 and abs(m["PCP_actor2"] - 100.0) < 1e-4


def test_pcp_per_actor_bone_groups_absent_actors_and_the_score_threshold():
    """Shelf-style: 4 actor slots, actor 4 absent in frame 0; actor 1's right ankle 2 m off in
    frame 0 (its lower-leg part fails); counts by hand."""
    gt = [np.stack([person(seed=s)[:14] + [1500 * s, 0, 0] for s in range(4)]) for _ in range(2)]
    vis = [np.ones((4, 14)), np.ones((4, 14))]
    vis[0][3] = 0
    pred0 = gt[0][:3].copy()
    pred0[0, 0] += [2000.0, 0, 0]
    frames = [(pred0, np.ones(3), gt[0], vis[0]), (gt[1], np.ones(4), gt[1], vis[1])]
    m = metrics.pcp_metrics(frames)
    np.testing.assert_allclose([m[f"PCP_actor{a}"] for a in range(1, 5)], [95.0, 100.0, 100.0, 100.0], rtol=1e-6)
    np.testing.assert_allclose(m["PCP"], (95 + 100 + 100) / 3, rtol=1e-6)          # actors 1..3
    np.testing.assert_allclose(m["PCP_lower_legs"], 100 * 13 / 14, rtol=1e-6)       # 7 actor-frames x 2 parts
    np.testing.assert_allclose(m["PCP_upper_arms"], 100.0, rtol=1e-6)
    np.testing.assert_allclose(m["recall500"], 100.0, rtol=1e-6)
    # a kept prediction must score above the threshold: actor 3's own is dropped at thr 0.5,
    # so actor 3 takes actor 2's pose (1.5 m away): no part right, a recall miss
    m = metrics.pcp_metrics([(gt[1], np.array([1.0, 1.0, 0.1, 1.0]), gt[1], vis[1])], thr=0.5)
    assert m["PCP_actor3"] == 0.0 and abs(m["PCP_actor1"] - 100.0) < 1e-4
    np.testing.assert_allclose(m["recall500"], 75.0, rtol=1e-6)


def test_pose_evaluator_keeps_actor_slots_for_pcp():
    """Absent actors stay in their slots (visibility 0), so actor 3 is still actor 3."""
    g = np.stack([person(seed=s)[:14] + [1500 * s, 0, 0] for s in range(3)])
    gt = np.zeros((1, 10, 14, 3))
    gt[0, [0, 2]] = g[[0, 2]]
    vis = np.zeros((1, 10, 14))
    vis[0, [0, 2]] = 1
    pred = np.zeros((1, 10, 14, 3)) - 9e4
    pred[0, :2] = g[[0, 2]]
    e = metrics.PoseEvaluator("pcp", 0.0, actors=3)
    e.add({"poses": pred, "scores": np.ones((1, 10)), "gt": gt, "gt_vis": vis, "gt_valid": vis.sum(-1) > 0,
           "mask": np.ones(1)})
    m = e.compute()
    assert abs(m["PCP_actor1"] - 100.0) < 1e-4 and m["PCP_actor2"] == 0.0 and abs(m["PCP_actor3"] - 100.0) < 1e-4
    assert abs(m["PCP"] - 200 / 3) < 1e-4            # the official mean over actors 1..3 counts actor 2's 0
