"""DeepSORT tracking core: NumPy and SciPy only (never torch), reference-faithful and vectorised.

Typical use::

    from reidsort.tracking import DeepSortTracker
    tracker = DeepSortTracker()                   # nwojke/deep_sort defaults, see the YAML config
    for dets, embeddings in frames:               # dets (N, 6) [x1, y1, x2, y2, score, cls]
        tracks = tracker.update(dets, embeddings) # (M, 8): x1 y1 x2 y2 id score cls det_index
"""

from reidsort.tracking.detection import (
    Detection,
    DetectionBatch,
    invalid_box_mask,
    tlwh_to_xyah,
    tlwh_to_xyxy,
    xyah_to_tlwh,
    xyah_to_xyxy,
    xyxy_to_tlwh,
)
from reidsort.tracking.iou_matching import iou_cost_tlwh, iou_tlwh
from reidsort.tracking.kalman_filter import CHI2_INV_95, KalmanFilterXYAH
from reidsort.tracking.linear_assignment import (
    INFEASIBLE_COST,
    MatchResult,
    matching_cascade,
    min_cost_matching,
)
from reidsort.tracking.mot_io import (
    MotDetections,
    MotGroundTruth,
    MotResults,
    MotResultsBuffer,
    SequenceInfo,
    read_mot_detections,
    read_mot_ground_truth,
    read_mot_results,
    read_seqinfo,
    tracker_output_to_mot_rows,
    write_mot_results,
)
from reidsort.tracking.nms import non_max_suppression
from reidsort.tracking.nn_matching import AppearanceGallery, DistanceMetric
from reidsort.tracking.track import TrackSnapshot, TrackState
from reidsort.tracking.tracker import (
    GATING_THRESHOLD,
    OUTPUT_COLUMNS,
    DeepSortTracker,
    OutputColumn,
)

__all__ = [
    "AppearanceGallery",
    "CHI2_INV_95",
    "DeepSortTracker",
    "Detection",
    "DetectionBatch",
    "DistanceMetric",
    "GATING_THRESHOLD",
    "INFEASIBLE_COST",
    "KalmanFilterXYAH",
    "MatchResult",
    "MotDetections",
    "MotGroundTruth",
    "MotResults",
    "MotResultsBuffer",
    "OUTPUT_COLUMNS",
    "OutputColumn",
    "SequenceInfo",
    "TrackSnapshot",
    "TrackState",
    "invalid_box_mask",
    "iou_cost_tlwh",
    "iou_tlwh",
    "matching_cascade",
    "min_cost_matching",
    "non_max_suppression",
    "read_mot_detections",
    "read_mot_ground_truth",
    "read_mot_results",
    "read_seqinfo",
    "tlwh_to_xyah",
    "tlwh_to_xyxy",
    "tracker_output_to_mot_rows",
    "write_mot_results",
    "xyah_to_tlwh",
    "xyah_to_xyxy",
    "xyxy_to_tlwh",
]
