"""TrackEval's MOTChallenge 2D-box preprocessing, applied to boxes we have already loaded.

This turns one sequence's ground truth and tracker boxes into the per-frame data that
TrackEval's metric classes (HOTA, CLEAR, Identity) consume, following
``trackeval.datasets.MotChallenge2DBox`` (the official MOTChallenge evaluation) step by step:

1. Similarities are box IoUs of every ground-truth box (any class, any flag) against every
   tracker box of the frame, computed by TrackEval's own IoU function, so they are bit-identical.
2. MOT16/17/20 and DanceTrack (ground truth with a class column): tracker boxes are matched to
   all ground-truth boxes of the frame (Hungarian, IoU >= 0.5); tracker boxes matched to a
   *distractor* class (person on vehicle, static person, distractor, reflection; on MOT20 also
   non-MOT vehicle) are removed, so they count neither as true nor as false positives.
3. Ground-truth boxes flagged 0 ("ignore") are removed; with a class column, so is every box
   that is not a pedestrian (class 1). MOT15 has no classes: only the flag applies.
4. Ids are relabelled to ``0 .. n-1`` in ascending order, per sequence.

Rows keep their file order within a frame, as TrackEval's reader does, because the Hungarian
matchings break ties by order. Inputs TrackEval would reject (a frame outside the sequence, an id
twice in one frame, an unknown ground-truth class) raise :class:`ReidsortError` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from trackeval.datasets import MotChallenge2DBox

from reidsort.tracking.mot_io import MotGroundTruth, MotResults
from reidsort.utils.errors import ReidsortError

#: MOTChallenge class ids (MOT16 paper, Table 2), as TrackEval names them.
MOT_CLASS_IDS: dict[str, int] = {
    "pedestrian": 1,
    "person_on_vehicle": 2,
    "car": 3,
    "bicycle": 4,
    "motorbike": 5,
    "non_mot_vehicle": 6,
    "static_person": 7,
    "distractor": 8,
    "occluder": 9,
    "occluder_on_ground": 10,
    "occluder_full": 11,
    "reflection": 12,
    "crowd": 13,
}
PEDESTRIAN_CLASS: int = MOT_CLASS_IDS["pedestrian"]
VALID_CLASSES: np.ndarray = np.array(sorted(MOT_CLASS_IDS.values()))
#: Classes whose matched tracker boxes are dropped before scoring (TrackEval, all benchmarks).
DISTRACTOR_CLASSES: tuple[int, ...] = tuple(
    MOT_CLASS_IDS[name]
    for name in ("person_on_vehicle", "static_person", "distractor", "reflection")
)
#: MOT20 also treats non-MOT vehicles as distractors.
MOT20_DISTRACTOR_CLASSES: tuple[int, ...] = DISTRACTOR_CLASSES + (MOT_CLASS_IDS["non_mot_vehicle"],)
#: IoU a tracker box needs with a distractor to be removed.
DISTRACTOR_MATCH_IOU: float = 0.5
_EPS: float = float(np.finfo(float).eps)

AUTO = "auto"
MOT15 = "MOT15"
MOT20 = "MOT20"
#: ``auto`` picks per sequence: MOT15 rules for ground truth without a class column, MOT20 rules
#: for sequences named ``MOT20-*``, MOT17 rules otherwise. DanceTrack's official evaluation is
#: TrackEval with the MOT17 rules (all its boxes are pedestrians flagged 1).
BENCHMARKS: tuple[str, ...] = (AUTO, MOT15, "MOT16", "MOT17", MOT20, "DanceTrack")


@dataclass(frozen=True)
class ClassRules:
    """How one sequence's classes are handled (see the module docstring)."""

    benchmark: str
    use_classes: bool
    distractor_classes: tuple[int, ...] = ()


def has_class_column(gt: MotGroundTruth) -> bool:
    """True for MOT16+ ground truth (9 columns); the reader marks missing classes with -1."""
    return bool(len(gt) == 0 or (gt.class_ids != -1).any())


def class_rules(benchmark: str, sequence: str, gt: MotGroundTruth) -> ClassRules:
    """The class handling for ``sequence`` under ``benchmark`` (one of :data:`BENCHMARKS`)."""
    if benchmark not in BENCHMARKS:
        raise ReidsortError(
            f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}"
        )
    with_classes = has_class_column(gt)
    if benchmark == AUTO:
        if not with_classes:
            benchmark = MOT15
        else:
            benchmark = MOT20 if sequence.upper().startswith("MOT20") else "MOT17"
    if benchmark == MOT15:
        return ClassRules(MOT15, use_classes=False)
    if not with_classes:
        raise ReidsortError(
            f"ground truth of {sequence!r} has no class column (MOT15 layout); "
            f"benchmark={benchmark} needs 9-column gt.txt (use benchmark=MOT15 or auto)"
        )
    distractors = MOT20_DISTRACTOR_CLASSES if benchmark == MOT20 else DISTRACTOR_CLASSES
    return ClassRules(benchmark, use_classes=True, distractor_classes=distractors)


def _rows_by_frame(frame_ids: np.ndarray, num_frames: int) -> list[np.ndarray]:
    """Row indices of frames ``1 .. num_frames``, in file order within each frame."""
    order = np.argsort(frame_ids, kind="stable")
    counts = np.bincount(frame_ids, minlength=num_frames + 1)[1:]
    return np.split(order, np.cumsum(counts)[:-1])


def check_frames(frame_ids: np.ndarray, num_frames: int, what: str, sequence: str) -> None:
    """Frames must lie in ``1 .. num_frames`` (TrackEval rejects others too)."""
    bad = (frame_ids < 1) | (frame_ids > num_frames)
    if bad.any():
        raise ReidsortError(
            f"{what} of {sequence!r} has frame {int(frame_ids[bad][0])}, outside 1..{num_frames} "
            "(seqinfo.ini seqLength, or the split)"
        )


def _check_unique_ids(frame_ids: np.ndarray, ids: np.ndarray, what: str, sequence: str) -> None:
    pairs, counts = np.unique(np.column_stack([frame_ids, ids]), axis=0, return_counts=True)
    if (counts > 1).any():
        frame, track_id = pairs[np.flatnonzero(counts > 1)[0]]
        raise ReidsortError(f"{what} of {sequence!r} has id {track_id} twice in frame {frame}")


def _distractor_matches(similarity: np.ndarray, gt_classes: np.ndarray,
                        distractors: tuple[int, ...]) -> np.ndarray:
    """Columns (tracker boxes) matched at IoU >= 0.5 to a distractor ground-truth box."""
    scores = similarity.copy()
    scores[scores < DISTRACTOR_MATCH_IOU - _EPS] = 0
    rows, cols = linear_sum_assignment(-scores)
    matched = scores[rows, cols] > _EPS
    rows, cols = rows[matched], cols[matched]
    return cols[np.isin(gt_classes[rows], distractors)]


def _relabel(ids_per_frame: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Map ids to ``0 .. n-1`` in ascending order (TrackEval's contiguous relabelling)."""
    unique = np.unique(np.concatenate(ids_per_frame)) if ids_per_frame else np.zeros(0, np.int64)
    return [np.searchsorted(unique, ids).astype(int) for ids in ids_per_frame], len(unique)


def preprocess_sequence(
    sequence: str,
    num_frames: int,
    gt: MotGroundTruth,
    results: MotResults,
    rules: ClassRules,
) -> dict[str, Any]:
    """One sequence in the form TrackEval's metrics take (``MotChallenge2DBox`` output)."""
    check_frames(gt.frame_ids, num_frames, "ground truth", sequence)
    check_frames(results.frame_ids, num_frames, "results", sequence)
    _check_unique_ids(results.frame_ids, results.track_ids, "results", sequence)
    _check_unique_ids(gt.frame_ids, gt.track_ids, "ground truth", sequence)

    gt_rows = _rows_by_frame(gt.frame_ids, num_frames)
    tracker_rows = _rows_by_frame(results.frame_ids, num_frames)
    gt_keep = gt.consider.copy()
    if rules.use_classes:
        gt_keep &= gt.class_ids == PEDESTRIAN_CLASS
    tracker_keep = np.ones(len(results), dtype=bool)

    similarity_scores = []
    for rows_gt, rows_tracker in zip(gt_rows, tracker_rows):
        similarity = MotChallenge2DBox._calculate_box_ious(
            gt.tlwh[rows_gt], results.tlwh[rows_tracker], box_format="xywh"
        )
        if rules.use_classes and len(rows_gt) and len(rows_tracker):
            classes = gt.class_ids[rows_gt]
            invalid = np.setdiff1d(classes, VALID_CLASSES)
            if len(invalid):
                raise ReidsortError(
                    f"ground truth of {sequence!r} has class {int(invalid[0])} in frame "
                    f"{int(gt.frame_ids[rows_gt[0]])}; MOTChallenge classes are 1..13 "
                    "(use benchmark=MOT15 to ignore classes)"
                )
            removed = _distractor_matches(similarity, classes, rules.distractor_classes)
            tracker_keep[rows_tracker[removed]] = False
            similarity = np.delete(similarity, removed, axis=1)
        similarity_scores.append(similarity[gt_keep[rows_gt]])

    kept_gt = [rows[gt_keep[rows]] for rows in gt_rows]
    kept_tracker = [rows[tracker_keep[rows]] for rows in tracker_rows]
    gt_ids, num_gt_ids = _relabel([gt.track_ids[rows] for rows in kept_gt])
    tracker_ids, num_tracker_ids = _relabel([results.track_ids[rows] for rows in kept_tracker])
    return {
        "seq": sequence,
        "num_timesteps": num_frames,
        "gt_ids": gt_ids,
        "tracker_ids": tracker_ids,
        "gt_dets": [gt.tlwh[rows] for rows in kept_gt],
        "tracker_dets": [results.tlwh[rows] for rows in kept_tracker],
        "tracker_confidences": [results.scores[rows] for rows in kept_tracker],
        "similarity_scores": similarity_scores,
        "num_gt_dets": int(sum(len(rows) for rows in kept_gt)),
        "num_tracker_dets": int(sum(len(rows) for rows in kept_tracker)),
        "num_gt_ids": num_gt_ids,
        "num_tracker_ids": num_tracker_ids,
    }
