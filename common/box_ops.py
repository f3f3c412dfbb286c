"""Axis-aligned box utilities in jax.numpy (jit/vmap-able, any leading batch axes).

Formats: `cxcywh` (centre, width, height), `xyxy` (corners x0, y0, x1, y1), `xywh`
(COCO's top-left corner + size). Pairwise functions follow facebookresearch/detr
util/box_ops.py (`box_iou`, `generalized_box_iou`): boxes1 [..., N, 4] and boxes2
[..., M, 4] in xyxy give [..., N, M]; the leading axes broadcast. The official code
asserts x1 >= x0 and y1 >= y0; under jit that cannot be checked, so degenerate boxes give
the same inf / NaN the unchecked formula gives (callers replace padded boxes first).
"""
import jax.numpy as jnp


def box_cxcywh_to_xyxy(b):
    cx, cy, w, h = jnp.moveaxis(b, -1, 0)
    return jnp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def box_xyxy_to_cxcywh(b):
    x0, y0, x1, y1 = jnp.moveaxis(b, -1, 0)
    return jnp.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def box_xywh_to_xyxy(b):
    x, y, w, h = jnp.moveaxis(b, -1, 0)
    return jnp.stack([x, y, x + w, y + h], axis=-1)


def box_xyxy_to_xywh(b):
    x0, y0, x1, y1 = jnp.moveaxis(b, -1, 0)
    return jnp.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)


def box_area(b):
    """Area of xyxy boxes [..., 4] -> [...] (torchvision.ops.box_area)."""
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def box_iou(boxes1, boxes2):
    """Pairwise IoU and union of xyxy boxes: [..., N, 4] x [..., M, 4] -> two [..., N, M]."""
    area1 = box_area(boxes1)[..., :, None]
    area2 = box_area(boxes2)[..., None, :]
    lt = jnp.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rb = jnp.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = jnp.clip(rb - lt, 0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - inter
    return inter / union, union


def generalized_box_iou(boxes1, boxes2):
    """Pairwise generalised IoU (Rezatofighi et al. 2019) of xyxy boxes -> [..., N, M]."""
    iou, union = box_iou(boxes1, boxes2)
    lt = jnp.minimum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rb = jnp.maximum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = jnp.clip(rb - lt, 0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing


def elementwise_box_iou(boxes1, boxes2):
    """IoU and union of corresponding xyxy boxes: [..., 4] x [..., 4] -> two [...]."""
    lt = jnp.maximum(boxes1[..., :2], boxes2[..., :2])
    rb = jnp.minimum(boxes1[..., 2:], boxes2[..., 2:])
    wh = jnp.clip(rb - lt, 0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    return inter / union, union


def elementwise_generalized_box_iou(boxes1, boxes2):
    """GIoU of corresponding xyxy boxes, [..., 4] x [..., 4] -> [...]: the diagonal of
    `generalized_box_iou` without the N x M matrix."""
    iou, union = elementwise_box_iou(boxes1, boxes2)
    lt = jnp.minimum(boxes1[..., :2], boxes2[..., :2])
    rb = jnp.maximum(boxes1[..., 2:], boxes2[..., 2:])
    wh = jnp.clip(rb - lt, 0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing
