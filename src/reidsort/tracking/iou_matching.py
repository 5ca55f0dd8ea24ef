"""Intersection over union of boxes, all pairs at once, and the IoU association cost."""

from __future__ import annotations

import numpy as np


def iou_tlwh(tlwh_a: np.ndarray, tlwh_b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``tlwh_a`` ``(A, 4)`` with every box of ``tlwh_b`` ``(B, 4)``.

    Boxes are continuous (no +1 pixel convention), as in nwojke/deep_sort ``iou_matching.iou``.
    """
    if not (isinstance(tlwh_a, np.ndarray) and tlwh_a.ndim == 2 and tlwh_a.dtype == np.float64):
        tlwh_a = np.asarray(tlwh_a, dtype=np.float64).reshape(-1, 4)
    if not (isinstance(tlwh_b, np.ndarray) and tlwh_b.ndim == 2 and tlwh_b.dtype == np.float64):
        tlwh_b = np.asarray(tlwh_b, dtype=np.float64).reshape(-1, 4)
    bottom_right_a = tlwh_a[:, :2] + tlwh_a[:, 2:]
    bottom_right_b = tlwh_b[:, :2] + tlwh_b[:, 2:]
    overlap_wh = np.minimum(bottom_right_a[:, None, :], bottom_right_b[None, :, :])
    overlap_wh -= np.maximum(tlwh_a[:, None, :2], tlwh_b[None, :, :2])
    np.maximum(overlap_wh, 0.0, out=overlap_wh)
    intersection = overlap_wh[..., 0] * overlap_wh[..., 1]
    area_a = tlwh_a[:, 2] * tlwh_a[:, 3]
    area_b = tlwh_b[:, 2] * tlwh_b[:, 3]
    union = area_a[:, None] + area_b[None, :]
    union -= intersection
    return intersection / union


def iou_cost_tlwh(track_tlwh: np.ndarray, detection_tlwh: np.ndarray) -> np.ndarray:
    """Association cost ``1 - IoU`` of tracks x detections (0 = perfect overlap)."""
    cost = iou_tlwh(track_tlwh, detection_tlwh)
    return np.subtract(1.0, cost, out=cost)
