"""pnp_detr.losses against a NumPy transcription of DETR's SetCriterion + HungarianMatcher
(facebookresearch/detr models/detr.py, models/matcher.py): per layer its own matching on
each image's real targets, weighted CE, L1 and GIoU over num_boxes, aux layers alike."""
import jax
import numpy as np
import pytest

from pnp_detr.losses import set_criterion
from tests.conftest import require


def _xyxy(b):
    return np.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def _giou(a, b):                                     # pairwise, xyxy
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2]); rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    union = area(a)[:, None] + area(b)[None] - inter
    lt = np.minimum(a[:, None, :2], b[None, :, :2]); rb = np.maximum(a[:, None, 2:], b[None, :, 2:])
    hull = np.prod(np.clip(rb - lt, 0, None), -1)
    return inter / union - (hull - union) / hull


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference(logits, boxes, tb, tl, tv, reg, num_classes=91, eos=0.1):
    from scipy.optimize import linear_sum_assignment
    L, B, Q, _ = logits.shape
    num_boxes = max(tv.sum(), 1)
    weight = np.ones(num_classes + 1); weight[-1] = eos
    out = {}
    for l in range(L):
        target_classes = np.full((B, Q), num_classes)
        l1 = giou = 0.0
        card = []
        for b in range(B):
            gb, gl = tb[b][tv[b]], tl[b][tv[b]]
            prob = _softmax(logits[l, b])
            c = (5 * np.abs(boxes[l, b][:, None] - gb[None]).sum(-1) - prob[:, gl]
                 - 2 * _giou(_xyxy(boxes[l, b]), _xyxy(gb)))
            i, j = linear_sum_assignment(c)
            target_classes[b, i] = gl[j]
            l1 += np.abs(boxes[l, b][i] - gb[j]).sum()
            giou += (1 - np.diag(_giou(_xyxy(boxes[l, b][i]), _xyxy(gb[j])))).sum()
            card.append(abs((logits[l, b].argmax(-1) != num_classes).sum() - len(gl)))
            if l == L - 1:
                out.setdefault("hits", []).extend(logits[l, b][i].argmax(-1) == gl[j])
        logp = np.log(_softmax(logits[l]))
        nll = -np.take_along_axis(logp, target_classes[..., None], -1)[..., 0]
        w = weight[target_classes]
        sfx = "" if l == L - 1 else f"_{l}"
        out["loss_ce" + sfx] = (w * nll).sum() / w.sum()
        out["loss_bbox" + sfx] = l1 / num_boxes
        out["loss_giou" + sfx] = giou / num_boxes
        out["cardinality_error" + sfx] = np.mean(card)
    hits = out.pop("hits", [])
    out["class_error"] = 100 - (100 * np.mean(hits) if hits else 0)
    out["loss"] = sum(wt * out[k + s] for k, wt in (("loss_ce", 1), ("loss_bbox", 5), ("loss_giou", 2))
                      for s in [""] + [f"_{i}" for i in range(L - 1)]) + 1e-4 * reg
    return out


def _batch(seed, L=3, B=4, Q=6, T=5, K=91):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(L, B, Q, K + 1)).astype(np.float32)
    boxes = rng.uniform(0.2, 0.8, (L, B, Q, 4)).astype(np.float32)
    boxes[..., 2:] *= 0.5
    tb = rng.uniform(0.2, 0.8, (B, T, 4)).astype(np.float32)
    tb[..., 2:] *= 0.5
    tl = rng.integers(1, K, (B, T)).astype(np.int32)
    tv = rng.random((B, T)) < 0.5
    tv[0], tv[1] = False, True
    for b in range(B):                     # make some predictions right, for class_error
        logits[:, b, np.arange(3), tl[b][:3]] += 5.0
    tb[~tv] = 0.0                          # padded boxes are degenerate: must not produce NaN
    return logits, boxes, tb, tl, tv


@pytest.mark.parametrize("solver", ["scipy", "jax"])
def test_matches_reference(solver):
    require("scipy")
    logits, boxes, tb, tl, tv = _batch(0)
    ref = reference(logits, boxes, tb, tl, tv, reg=0.37)
    total, metrics = jax.jit(lambda o, t: set_criterion(o, t, solver=solver))(
        {"pred_logits": logits, "pred_boxes": boxes, "sample_reg_loss": np.float32(0.37)},
        {"boxes": tb, "labels": tl, "box_valid": tv})
    np.testing.assert_allclose(total, ref["loss"], rtol=1e-5)
    for k, v in ref.items():
        np.testing.assert_allclose(metrics["train/" + k], v, rtol=1e-5, atol=1e-5, err_msg=k)
    assert float(metrics["train/sample_reg_loss"]) == pytest.approx(0.37)


def test_gradients_finite_and_no_targets():
    logits, boxes, tb, tl, tv = _batch(1, L=2, B=2, Q=4, T=3)
    loss = lambda lg, bx, v: set_criterion({"pred_logits": lg, "pred_boxes": bx},
                                           {"boxes": tb, "labels": tl, "box_valid": v})
    grads = jax.jit(jax.grad(lambda lg, bx: loss(lg, bx, tv)[0], argnums=(0, 1)))(logits, boxes)
    assert all(np.all(np.isfinite(g)) for g in grads)
    none = np.zeros_like(tv)
    total, m = jax.jit(loss)(logits, boxes, none)
    assert np.isfinite(total) and float(m["train/loss_bbox"]) == 0.0
    assert float(m["train/class_error"]) == 100.0           # DETR's accuracy() of no targets


def test_single_layer_and_bad_inputs():
    logits, boxes, tb, tl, tv = _batch(2, L=1)
    loss = jax.jit(lambda lg, bx: set_criterion({"pred_logits": lg, "pred_boxes": bx},
                                                {"boxes": tb, "labels": tl, "box_valid": tv})[0])
    t1, t2 = loss(logits[0], boxes[0]), loss(logits, boxes)
    np.testing.assert_allclose(t1, t2)
    with pytest.raises(ValueError, match="classes"):
        set_criterion({"pred_logits": logits, "pred_boxes": boxes},
                      {"boxes": tb, "labels": tl, "box_valid": tv}, num_classes=20)
    with pytest.raises(ValueError, match="unknown loss weights"):
        set_criterion({"pred_logits": logits, "pred_boxes": boxes},
                      {"boxes": tb, "labels": tl, "box_valid": tv}, weights={"loss_dice": 1.0})
