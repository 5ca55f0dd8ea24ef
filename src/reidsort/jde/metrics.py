"""Detection average precision for FairMOT validation (NumPy only, no torch import).

:func:`match_detections` marks each detection of one image as a true or a false positive at an
IoU threshold: detections in decreasing score order each take the unmatched ground-truth box
they overlap most, if that IoU reaches the threshold (a second detection of a matched person is a
false positive). :func:`average_precision` pools the marked detections of many images, sorts
them by score and integrates the precision / recall curve with all-point interpolation
(PASCAL VOC 2010+: the area under the curve made monotone from the right), one class.
``AP50`` is this at IoU 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reidsort.detection.nms import iou_one_to_many
from reidsort.utils.errors import ReidsortError

IOU_THRESHOLD = 0.5


def match_detections(boxes: np.ndarray, scores: np.ndarray, gt_boxes: np.ndarray,
                     iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """Boolean (N,) true positives of ``boxes`` (N, 4) xyxy with ``scores`` (N,) against the
    ``gt_boxes`` (G, 4) xyxy of the same image (greedy by score, one detection per box)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(scores) != len(boxes):
        raise ReidsortError(f"match_detections: {len(boxes)} boxes but {len(scores)} scores")
    hits = np.zeros(len(boxes), dtype=bool)
    if not len(gt_boxes):
        return hits
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for k in np.argsort(-scores, kind="stable"):
        overlap = np.where(taken, -1.0, iou_one_to_many(boxes[k], gt_boxes))
        best = int(np.argmax(overlap))
        if overlap[best] >= iou_threshold:
            taken[best] = True
            hits[k] = True
    return hits


@dataclass(frozen=True)
class DetectionScores:
    """AP over a set of images, and precision / recall of the detections above a threshold."""

    ap: float  # NaN when there is no ground-truth box
    num_gt: int
    num_detections: int
    precision: float  # of the detections scoring >= the threshold (NaN when there are none)
    recall: float  # of the ground-truth boxes, by those detections (NaN without boxes)


def average_precision(scores: np.ndarray, hits: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP of pooled detections: ``scores`` (N,), ``hits`` (N,) true
    positives, ``num_gt`` ground-truth boxes. NaN when ``num_gt`` is 0."""
    if num_gt <= 0:
        return float("nan")
    scores, hits = np.asarray(scores, dtype=np.float64), np.asarray(hits, dtype=bool)
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / num_gt
    precision = tp / (tp + fp)
    # the precision envelope (the best precision at this recall or beyond), then the area
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def detection_scores(frames: Sequence[tuple[np.ndarray, np.ndarray]],
                     iou_threshold: float = IOU_THRESHOLD,
                     conf_threshold: float = 0.4) -> DetectionScores:
    """AP at ``iou_threshold`` over ``frames``, each ``(dets (N, >=5) [x1, y1, x2, y2, score,
    ...], gt_boxes (G, 4))``, plus precision and recall of the detections scoring at least
    ``conf_threshold`` (what a tracker fed at that confidence gets)."""
    all_scores, all_hits, num_gt = [], [], 0
    for dets, gt in frames:
        dets = np.asarray(dets, dtype=np.float64)
        dets = dets.reshape(0, 5) if dets.size == 0 else dets
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        all_hits.append(match_detections(dets[:, :4], dets[:, 4], gt, iou_threshold))
        all_scores.append(dets[:, 4])
        num_gt += len(gt)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    hits = np.concatenate(all_hits) if all_hits else np.zeros(0, dtype=bool)
    confident = scores >= conf_threshold
    kept = int(confident.sum())
    found = int(hits[confident].sum())
    return DetectionScores(
        ap=average_precision(scores, hits, num_gt),
        num_gt=num_gt,
        num_detections=len(scores),
        precision=found / kept if kept else float("nan"),
        recall=found / num_gt if num_gt else float("nan"),
    )


__all__ = ["IOU_THRESHOLD", "DetectionScores", "average_precision", "detection_scores",
           "match_detections"]
