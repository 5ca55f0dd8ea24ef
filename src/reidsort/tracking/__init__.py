"""Tracking core: NumPy and SciPy only (never torch), reference-faithful and vectorised.

DeepSORT, StrongSORT, ByteTrack, OC-SORT, Deep OC-SORT, BoT-SORT and FairMOT's JDE tracker share the Kalman filters (one module per state layout),
the assignment helper and the IoU, and one contract (:class:`MultiObjectTracker`). Typical use::

    from reidsort.tracking import ByteTrackTracker  # or DeepSortTracker, OcSortTracker, ...
    tracker = ByteTrackTracker()                    # reference defaults, see conf/tracker/*.yaml
    for dets, embeddings in frames:                 # dets (N, 6) [x1, y1, x2, y2, score, cls]
        tracks = tracker.update(dets, embeddings)   # (M, 8): x1 y1 x2 y2 id score cls det_index

Camera motion (:mod:`reidsort.tracking.cmc`, OpenCV imported only when an image method runs)
goes in as ``update(..., warp=<2x3 affine previous -> this frame>)``.
"""

from reidsort.tracking.botsort import BotSortTracker
from reidsort.tracking.bytetrack import ByteTrackTracker
from reidsort.tracking.cmc import (
    CameraMotionEstimator,
    CameraMotionMethod,
    build_camera_motion,
    read_gmc_file,
)
from reidsort.tracking.deepocsort import DeepOcSortTracker
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
from reidsort.tracking.jde_tracker import JDETracker
from reidsort.tracking.kalman_filter import CHI2_INV_95, KalmanFilterXYAH
from reidsort.tracking.kalman_sort import KalmanFilterXYSR
from reidsort.tracking.kalman_xywh import KalmanFilterXYWH
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
from reidsort.tracking.ocsort import OcSortTracker
from reidsort.tracking.protocol import MultiObjectTracker
from reidsort.tracking.strongsort import StrongSortTracker
from reidsort.tracking.track import TrackSnapshot, TrackState
from reidsort.tracking.tracker import (
    GATING_THRESHOLD,
    OUTPUT_COLUMNS,
    DeepSortTracker,
    OutputColumn,
)

__all__ = [
    "CHI2_INV_95",
    "GATING_THRESHOLD",
    "INFEASIBLE_COST",
    "OUTPUT_COLUMNS",
    "AppearanceGallery",
    "BotSortTracker",
    "ByteTrackTracker",
    "CameraMotionEstimator",
    "CameraMotionMethod",
    "DeepOcSortTracker",
    "DeepSortTracker",
    "Detection",
    "DetectionBatch",
    "DistanceMetric",
    "JDETracker",
    "KalmanFilterXYAH",
    "KalmanFilterXYSR",
    "KalmanFilterXYWH",
    "MatchResult",
    "MotDetections",
    "MotGroundTruth",
    "MotResults",
    "MotResultsBuffer",
    "MultiObjectTracker",
    "OcSortTracker",
    "OutputColumn",
    "SequenceInfo",
    "StrongSortTracker",
    "TrackSnapshot",
    "TrackState",
    "build_camera_motion",
    "invalid_box_mask",
    "iou_cost_tlwh",
    "iou_tlwh",
    "matching_cascade",
    "min_cost_matching",
    "non_max_suppression",
    "read_gmc_file",
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
