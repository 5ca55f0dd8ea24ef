"""Constructor checks shared by the trackers: a bad knob is one ``ValueError`` naming it."""

from __future__ import annotations

import numpy as np


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def check_deepsort_knobs(
    max_dist: float,
    max_iou_distance: float,
    max_age: int,
    n_init: int,
    min_confidence: float,
    nms_max_overlap: float,
    output_lost_frames: int,
) -> None:
    """The knobs DeepSORT and StrongSORT share (same meaning, same ranges)."""
    require(np.isfinite(max_dist) and max_dist >= 0, f"max_dist must be >= 0, got {max_dist}")
    require(
        np.isfinite(max_iou_distance) and 0 <= max_iou_distance <= 1,
        f"max_iou_distance must be in [0, 1], got {max_iou_distance}",
    )
    require(
        int(max_age) == max_age and max_age >= 0,
        f"max_age must be an integer >= 0, got {max_age}",
    )
    require(int(n_init) == n_init and n_init >= 1, f"n_init must be an integer >= 1, got {n_init}")
    require(np.isfinite(min_confidence), f"min_confidence must be finite, got {min_confidence}")
    require(
        np.isfinite(nms_max_overlap) and nms_max_overlap >= 0,
        f"nms_max_overlap must be >= 0, got {nms_max_overlap}",
    )
    require(
        int(output_lost_frames) == output_lost_frames and output_lost_frames >= 0,
        f"output_lost_frames must be an integer >= 0, got {output_lost_frames}",
    )
