"""What every reidsort tracker offers: the contract the application and the benchmarks rely on.

DeepSORT, ByteTrack, OC-SORT and BoT-SORT all take one frame's detections ``(N, 6)``
``[x1, y1, x2, y2, score, cls]`` (and optionally ``(N, D)`` appearance embeddings and the
``(2, 3)`` affine camera motion from the previous frame to this one) and return the tracks they
report for this frame as ``(M, 8)`` ``[x1, y1, x2, y2, track_id, score, cls, det_index]``
(:class:`reidsort.tracking.tracker.OutputColumn`). A structural protocol rather than a base
class: the trackers share modules (Kalman filters, assignment, IoU), not an inheritance tree.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class MultiObjectTracker(Protocol):
    """An online multi-object tracker: call :meth:`update` once per frame, in order."""

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new sequence)."""

    def update(
        self,
        dets: np.ndarray,
        embeddings: np.ndarray | None = None,
        *,
        warp: np.ndarray | None = None,
    ) -> np.ndarray:
        """Associate one frame; ``warp`` = camera motion previous -> this frame (None: none)."""
