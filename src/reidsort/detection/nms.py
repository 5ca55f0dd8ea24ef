"""Greedy non-maximum suppression on ``xyxy`` boxes (continuous IoU, as torchvision and YOLO).

``reidsort.tracking.nms`` is a different rule on purpose: DeepSORT's reference suppression
(``tlwh``, overlap over the smaller box, +1 pixel convention) for tracker fidelity.
"""

from __future__ import annotations

import numpy as np


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box with each row of ``boxes`` (0 where the union is empty)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


#: Up to this many boxes the IoU matrix is computed at once (8 MB of float64 at 1000 boxes);
#: beyond it, one row per kept box.
PAIRWISE_LIMIT = 1000


def pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """(N, N) IoU of ``xyxy`` boxes (0 where the union is empty)."""
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = areas[:, None] + areas[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms_xyxy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
             class_ids: np.ndarray | None = None, max_output: int | None = None) -> np.ndarray:
    """Indices of the kept boxes, best score first.

    A box is suppressed when its IoU with a kept, higher-scored box exceeds ``iou_threshold``.
    With ``class_ids`` boxes of different classes never suppress each other (they are shifted
    apart, the usual batched-NMS trick). Ties in score keep input order.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if class_ids is not None and len(np.unique(class_ids)) > 1:
        span = float(np.abs(boxes).max()) * 2 + 1.0
        boxes = boxes + (np.asarray(class_ids, dtype=np.float64) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    limit = len(boxes) if max_output is None else int(max_output)
    keep: list[int] = []
    if len(boxes) <= PAIRWISE_LIMIT:
        # one vectorised IoU matrix, then a cheap greedy pass over booleans
        overlaps = pairwise_iou(boxes[order]) > iou_threshold
        suppressed = np.zeros(len(order), dtype=bool)
        for rank in range(len(order)):
            if suppressed[rank]:
                continue
            keep.append(int(order[rank]))
            if len(keep) == limit:
                break
            suppressed |= overlaps[rank]
        return np.asarray(keep, dtype=np.int64)
    while order.size and len(keep) < limit:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[iou_one_to_many(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
