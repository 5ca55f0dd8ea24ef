"""Greedy non-maximum suppression as used in front of DeepSORT.

This is the variant of nwojke/deep_sort ``application_util/preprocessing.py``: boxes use the
+1 pixel convention for areas, and the overlap of a lower-scored box with a kept box is the
intersection divided by the *lower-scored box's own area* (not IoU). Survivors come back in
descending score order, which is the order the reference feeds to its tracker; that order
decides which new track gets the smaller id, so it is part of the reference behaviour even at
``max_overlap = 1.0``, where nothing can be suppressed (the overlap never exceeds 1).
"""

from __future__ import annotations

import numpy as np

#: At or above this threshold no box can be suppressed, because the overlap ratio is <= 1.
NO_SUPPRESSION_OVERLAP: float = 1.0


def non_max_suppression(
    tlwh: np.ndarray,
    max_overlap: float,
    scores: np.ndarray,
    class_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the boxes that survive, highest score first.

    ``class_ids``, when given, restricts suppression to boxes of the same class.
    """
    tlwh = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(tlwh) != len(scores):
        raise ValueError(f"{len(tlwh)} boxes but {len(scores)} scores")
    # Ascending argsort read backwards, exactly as the reference (tie order included).
    order = np.argsort(scores)[::-1]
    if len(tlwh) == 0 or max_overlap >= NO_SUPPRESSION_OVERLAP:
        return order.astype(np.int64)

    x1, y1 = tlwh[:, 0], tlwh[:, 1]
    x2, y2 = x1 + tlwh[:, 2], y1 + tlwh[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    overlap_w = np.maximum(
        0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]) + 1
    )
    overlap_h = np.maximum(
        0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]) + 1
    )
    # overlap[i, j]: share of box j covered by box i.
    suppresses = (overlap_w * overlap_h) / area[None, :] > max_overlap
    if class_ids is not None:
        class_ids = np.asarray(class_ids).reshape(-1)
        suppresses &= class_ids[:, None] == class_ids[None, :]

    alive = np.ones(len(tlwh), dtype=bool)
    keep: list[int] = []
    # Sequential by nature (a suppressed box suppresses nothing); one vector op per kept box.
    for index in order.tolist():
        if not alive[index]:
            continue
        keep.append(index)
        alive &= ~suppresses[index]
    return np.asarray(keep, dtype=np.int64)
