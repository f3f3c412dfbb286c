"""common.box_ops against torchvision.ops (the implementation DETR's util/box_ops.py wraps)."""
import chex
import jax
import numpy as np

from common import box_ops
from tests.conftest import require


def _random_xyxy(rng, n):
    xy = rng.uniform(0, 1, (n, 2))
    wh = rng.uniform(0.01, 0.8, (n, 2))
    return np.concatenate([xy, xy + wh], -1).astype(np.float32)


def test_conversions_round_trip():
    rng = np.random.default_rng(0)
    b = _random_xyxy(rng, 7)
    chex.assert_trees_all_close(box_ops.box_cxcywh_to_xyxy(box_ops.box_xyxy_to_cxcywh(b)), b, atol=1e-6)
    chex.assert_trees_all_close(box_ops.box_xywh_to_xyxy(box_ops.box_xyxy_to_xywh(b)), b, atol=1e-6)
    chex.assert_trees_all_close(box_ops.box_xyxy_to_cxcywh(np.array([[1., 2., 5., 4.]])),
                                np.array([[3., 3., 4., 2.]]))
    chex.assert_trees_all_close(box_ops.box_xyxy_to_xywh(np.array([[1., 2., 5., 4.]])),
                                np.array([[1., 2., 4., 2.]]))


def test_pairwise_against_torchvision():
    torch = require("torch")
    tv_ops = require("torchvision.ops")
    rng = np.random.default_rng(1)
    b1, b2 = _random_xyxy(rng, 6), _random_xyxy(rng, 4)
    t1, t2 = torch.from_numpy(b1), torch.from_numpy(b2)
    chex.assert_trees_all_close(box_ops.box_area(b1), tv_ops.box_area(t1).numpy(), atol=1e-6)
    chex.assert_trees_all_close(box_ops.box_iou(b1, b2)[0], tv_ops.box_iou(t1, t2).numpy(), atol=1e-6)
    giou = jax.jit(box_ops.generalized_box_iou)(b1, b2)
    chex.assert_shape(giou, (6, 4))
    chex.assert_trees_all_close(giou, tv_ops.generalized_box_iou(t1, t2).numpy(), atol=1e-6)
    cxcywh = box_ops.box_xyxy_to_cxcywh(b1)
    chex.assert_trees_all_close(cxcywh, tv_ops.box_convert(t1, "xyxy", "cxcywh").numpy(), atol=1e-6)
    chex.assert_trees_all_close(box_ops.box_xyxy_to_xywh(b1),
                                tv_ops.box_convert(t1, "xyxy", "xywh").numpy(), atol=1e-6)


def test_batched_and_elementwise():
    rng = np.random.default_rng(2)
    b1 = np.stack([_random_xyxy(rng, 5) for _ in range(3)])      # [3, 5, 4]
    b2 = np.stack([_random_xyxy(rng, 5) for _ in range(3)])
    pair = box_ops.generalized_box_iou(b1, b2)
    chex.assert_shape(pair, (3, 5, 5))
    for i in range(3):
        chex.assert_trees_all_close(pair[i], box_ops.generalized_box_iou(b1[i], b2[i]), atol=1e-6)
    diag = np.stack([np.diag(np.asarray(p)) for p in pair])
    chex.assert_trees_all_close(jax.vmap(box_ops.elementwise_generalized_box_iou)(b1, b2), diag, atol=1e-6)
    iou = np.stack([np.diag(np.asarray(box_ops.box_iou(b1[i], b2[i])[0])) for i in range(3)])
    chex.assert_trees_all_close(box_ops.elementwise_box_iou(b1, b2)[0], iou, atol=1e-6)
    # identical boxes: GIoU 1; disjoint far boxes: GIoU -> -1
    chex.assert_trees_all_close(box_ops.elementwise_generalized_box_iou(b1, b1), np.ones((3, 5)), atol=1e-6)
    far = box_ops.elementwise_generalized_box_iou(np.array([0., 0., 1., 1.]), np.array([99., 99., 100., 100.]))
    assert -1 < float(far) < -0.99
