"""Track lifecycle states and a read-only view of one track.

The tracker keeps all track data in stacked arrays (see :mod:`reidsort.tracking.tracker`);
:class:`TrackSnapshot` is what it hands out when a caller wants to look at single tracks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from reidsort.tracking.detection import tlwh_to_xyxy, xyah_to_tlwh


class TrackState(IntEnum):
    """Lifecycle of a track (values as in nwojke/deep_sort ``TrackState``).

    A new track is TENTATIVE; it becomes CONFIRMED after ``n_init`` measurement updates
    (hits). A tentative track missed once is DELETED; a confirmed one is DELETED when it has
    been missed for more than ``max_age`` consecutive frames. Deleted ids are never reused.
    """

    TENTATIVE = 1
    CONFIRMED = 2
    DELETED = 3


@dataclass(frozen=True)
class TrackSnapshot:
    """One track's state at the moment it was read (copies, safe to keep)."""

    track_id: int
    state: TrackState
    mean_xyah: np.ndarray
    covariance: np.ndarray
    hits: int
    age: int
    time_since_update: int
    class_id: int
    score: float
    detection_index: int

    @property
    def tlwh(self) -> np.ndarray:
        """Current Kalman box estimate ``(x, y, w, h)``."""
        return xyah_to_tlwh(self.mean_xyah[:4])

    @property
    def xyxy(self) -> np.ndarray:
        return tlwh_to_xyxy(self.tlwh)

    @property
    def is_confirmed(self) -> bool:
        return self.state is TrackState.CONFIRMED

    @property
    def is_tentative(self) -> bool:
        return self.state is TrackState.TENTATIVE
