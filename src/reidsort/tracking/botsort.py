"""BoT-SORT (Aharon, Orfaig & Bobrovsky, 2022): ByteTrack's stages with a better motion model,
camera-motion compensation and optional appearance, reference-faithful and vectorised.

Relative to :class:`~reidsort.tracking.bytetrack.ByteTrackTracker` (whose association stages
it reuses, see NirAharon/BoT-SORT ``tracker/bot_sort.py``):

* **Motion model**: the ``xywh`` Kalman filter of :mod:`reidsort.tracking.kalman_xywh` (noise
  scaled by width and height); a track that is not tracked has both size velocities zeroed
  before its prediction.
* **Camera motion**: ``update(..., warp=W)`` applies the ``(2, 3)`` affine ``W`` (previous frame
  -> current, e.g. BoT-SORT's GMC files or :mod:`reidsort.tracking.cmc`) to the mean *and*
  covariance of every track after the prediction (``STrack.multi_gmc``).
* **Appearance** (when ``embeddings`` are given): each track keeps an exponential moving
  average of its unit-length embeddings, ``f <- normalise(alpha f + (1 - alpha) e)``. In the
  first association and the unconfirmed stage, the embedding distance ``d = cos_dist / 2`` is
  set to 1 where ``d > appearance_thresh`` or where the boxes barely overlap
  (``1 - IoU > proximity_thresh``), and the cost is ``min(motion cost, d)``: appearance can
  only rescue a pair that is already spatially plausible. The low-score association stays
  IoU-only and its detections' embeddings are not stored (as in the reference, where those
  detections carry no features).

Without embeddings it is ByteTrack with the ``xywh`` filter and camera-motion compensation.
Differences from ByteTrack's defaults, all from ``tools/track.py`` / ``bot_sort.py``: the
new-track threshold is its own knob (0.7), and tracks born this frame (not yet activated) are
reported too (``output_unconfirmed=True``; BoxMOT reports activated tracks only).

**Re-entry gallery** (not in the reference; off by default): with ``reentry_seconds`` > 0, a
lost track removed after ``max_time_lost`` frames is remembered by its moving-average feature
for ``reentry_seconds`` more, and a new track activated on its second hit takes that old id when
its own moving-average feature is within ``reentry_max_dist`` cosine distance (one assignment of
all tracks activated in a frame against the whole gallery, :mod:`reidsort.tracking.reentry`).
"""

from __future__ import annotations

import numpy as np

from reidsort.tracking.bytetrack import (
    _CLASS_ID,
    _TRACK_ID,
    REFERENCE_FRAME_RATE,
    ByteTrackTracker,
    FrameDetections,
    _require,
)
from reidsort.tracking.kalman_xywh import (
    MEASUREMENT_DIM,
    SIZE_VELOCITY,
    STATE_DIM,
    KalmanFilterXYWH,
    tlwh_to_xywh,
    xywh_to_tlwh,
)
from reidsort.tracking.reentry import DEFAULT_REENTRY_MAX_DIST, NO_CLAIM, ReentryGallery

#: BoT-SORT's cost for an appearance pair that is ruled out (the largest cost of the scale).
APPEARANCE_RULED_OUT: float = 1.0
#: Cosine distances lie in [0, 2]; BoT-SORT halves them onto the IoU cost's [0, 1] scale.
COSINE_DISTANCE_SCALE: float = 0.5


class BotSortTracker(ByteTrackTracker):
    """BoT-SORT with the reference's MOT17 settings; knobs are plain keyword arguments.

    Parameters
    ----------
    track_high_thresh, track_low_thresh:
        High/low score split and the floor under which boxes are ignored
        (``tools/track.py``: 0.6 and 0.1).
    new_track_thresh:
        A leftover high box scoring at least this starts a track (``tools/track.py``: 0.7).
    track_buffer, frame_rate:
        Lost tracks are kept ``int(frame_rate / 30 * track_buffer)`` frames (30, 30).
    match_thresh:
        First-association cost ceiling (``tools/track.py``: 0.8).
    second_match_thresh, unconfirmed_match_thresh:
        Ceilings of the low-score (0.5) and unconfirmed (0.7) associations (``bot_sort.py``).
    proximity_thresh:
        Appearance is only trusted for pairs with ``1 - IoU <= proximity_thresh`` (0.5).
    appearance_thresh:
        Halved cosine distances above this are ruled out (0.25).
    ema_alpha:
        Weight of a track's previous feature in its moving average (``STrack.alpha``: 0.9).
    fuse_score, fuse_score_unconfirmed:
        Score-fused IoU in the first and in the unconfirmed association (reference: both on
        unless MOT20; BoxMOT: first association off by default, ``fuse_first_associate``,
        unconfirmed on). ``fuse_score_unconfirmed=None`` follows ``fuse_score``.
    output_unconfirmed:
        Report tracks born this frame too: True in ``bot_sort.py`` (all tracked tracks are
        output); BoxMOT outputs activated tracks only (False).
    duplicate_iou_distance, min_box_area, aspect_ratio_thresh, per_class:
        As in :class:`ByteTrackTracker` (BoT-SORT's evaluation filters with area 10 and aspect
        ratio 1.6 outside the tracker; defaults here: no filter).
    reentry_seconds:
        Re-entry window in seconds (``round(reentry_seconds * frame_rate)`` frames after the
        removal); None or 0 (default) disables the gallery. With it on, tracks are reported from
        their activation on (``output_unconfirmed`` is ignored): a new track's id can still
        change at activation, and reporting its fresh id for its first frame would cost an extra
        identity switch for every returning person.
    reentry_max_dist:
        Cosine distance ceiling of a re-entry claim
        (:data:`~reidsort.tracking.reentry.DEFAULT_REENTRY_MAX_DIST`).
    """

    _LOST_ZEROED_VELOCITY = SIZE_VELOCITY
    _uses_appearance = True

    def __init__(
        self,
        track_high_thresh: float = 0.6,
        track_low_thresh: float = 0.1,
        new_track_thresh: float = 0.7,
        track_buffer: int = 30,
        frame_rate: float = 30,
        match_thresh: float = 0.8,
        second_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        proximity_thresh: float = 0.5,
        appearance_thresh: float = 0.25,
        ema_alpha: float = 0.9,
        fuse_score: bool = True,
        fuse_score_unconfirmed: bool | None = None,
        output_unconfirmed: bool = True,
        duplicate_iou_distance: float = 0.15,
        min_box_area: float = 0.0,
        aspect_ratio_thresh: float | None = None,
        per_class: bool = False,
        reentry_seconds: float | None = None,
        reentry_max_dist: float = DEFAULT_REENTRY_MAX_DIST,
    ) -> None:
        _require(
            np.isfinite(proximity_thresh) and 0 <= proximity_thresh <= 1,
            f"proximity_thresh must be in [0, 1], got {proximity_thresh}",
        )
        _require(
            np.isfinite(appearance_thresh) and 0 <= appearance_thresh <= 1,
            f"appearance_thresh must be in [0, 1], got {appearance_thresh}",
        )
        _require(
            np.isfinite(ema_alpha) and 0 <= ema_alpha < 1,
            f"ema_alpha must be in [0, 1), got {ema_alpha}",
        )
        self.proximity_thresh = float(proximity_thresh)
        self.appearance_thresh = float(appearance_thresh)
        self.ema_alpha = float(ema_alpha)
        self.reentry = ReentryGallery.from_seconds(
            reentry_seconds,
            REFERENCE_FRAME_RATE if frame_rate is None else frame_rate,
            reentry_max_dist,
            class_aware=per_class,
        )
        self.reentry_seconds = None if reentry_seconds is None else float(reentry_seconds)
        self.reentry_max_dist = self.reentry.max_dist
        super().__init__(
            track_thresh=track_high_thresh,
            low_thresh=track_low_thresh,
            new_track_thresh=new_track_thresh,
            match_thresh=match_thresh,
            second_match_thresh=second_match_thresh,
            unconfirmed_match_thresh=unconfirmed_match_thresh,
            track_buffer=track_buffer,
            frame_rate=frame_rate,
            fuse_score=fuse_score,
            fuse_score_unconfirmed=fuse_score_unconfirmed,
            duplicate_iou_distance=duplicate_iou_distance,
            min_box_area=min_box_area,
            aspect_ratio_thresh=aspect_ratio_thresh,
            output_unconfirmed=output_unconfirmed and not self.reentry.enabled,
            per_class=per_class,
        )

    def reset(self) -> None:
        """Forget all tracks and the re-entry gallery; restart ids at 1."""
        super().reset()
        self.reentry.reset()

    # BoT-SORT's names for the two score thresholds.
    @property
    def track_high_thresh(self) -> float:
        return self.track_thresh

    @property
    def track_low_thresh(self) -> float:
        return self.low_thresh

    @property
    def smooth_features(self) -> np.ndarray:
        """``(T, D)`` moving-average features of the live tracks, aligned with
        :attr:`track_ids` (rows of tracks without any embedding are NaN; ``(T, 0)`` before the
        first embedding)."""
        table = self._tracks
        if table.features is None:
            return np.zeros((len(table), 0), np.float32)
        return np.where(table.has_feature[:, None], table.features, np.nan).astype(np.float32)

    # -- motion model: xywh Kalman filter ------------------------------------------------------
    def _init_motion_model(self) -> None:
        self.kf = KalmanFilterXYWH()

    def _empty_covariances(self) -> np.ndarray:
        return np.zeros((0, STATE_DIM, STATE_DIM))

    def _initiate(self, tlwh: np.ndarray):
        return self.kf.initiate(tlwh_to_xywh(tlwh))

    def _correct(self, means: np.ndarray, covariances: np.ndarray, tlwh: np.ndarray):
        return self.kf.update(means, covariances, tlwh_to_xywh(tlwh))

    def _warp(self, means: np.ndarray, covariances: np.ndarray, warp: np.ndarray):
        return self.kf.warp(means, covariances, warp)

    def _means_to_tlwh(self, means: np.ndarray) -> np.ndarray:
        return xywh_to_tlwh(means[:, :MEASUREMENT_DIM])

    def _full_covariance(self, covariances: np.ndarray) -> np.ndarray:
        return covariances

    # -- appearance ------------------------------------------------------------------------------
    def _fuse_appearance(
        self,
        cost: np.ndarray,
        iou_distance: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        frame: FrameDetections,
    ) -> np.ndarray:
        table = self._tracks
        if frame.features is None or table.features is None:
            return cost
        track_has = table.has_feature[rows]
        det_has = frame.has_feature[cols]
        if not (track_has.any() and det_has.any()):
            return cost
        similarity = table.features[rows] @ frame.features[cols].T
        distance = np.maximum(0.0, 1.0 - similarity.astype(np.float64)) * COSINE_DISTANCE_SCALE
        ruled_out = distance > self.appearance_thresh
        ruled_out |= iou_distance > self.proximity_thresh
        ruled_out |= ~(track_has[:, None] & det_has[None, :])
        distance[ruled_out] = APPEARANCE_RULED_OUT
        return np.minimum(cost, distance)

    def _store_features(self, rows: np.ndarray, cols: np.ndarray, frame: FrameDetections) -> None:
        if frame.features is None or len(rows) == 0:
            return
        usable = frame.has_feature[cols]
        rows, cols = rows[usable], cols[usable]
        if len(rows) == 0:
            return
        table = self._tracks
        if table.features is None:
            table.features = np.zeros((len(table), frame.features.shape[1]), np.float32)
        new = frame.features[cols]
        had = table.has_feature[rows]
        blended = self.ema_alpha * table.features[rows] + (1.0 - self.ema_alpha) * new
        norms = np.linalg.norm(blended, axis=1, keepdims=True)
        # A fresh track (or an average that cancelled out) starts again from the new embedding.
        restart = ~had[:, None] | (norms == 0)
        blended = np.where(restart, new, blended / np.where(norms == 0, 1.0, norms))
        table.features[rows] = blended
        table.has_feature[rows] = True

    # -- re-entry gallery ------------------------------------------------------------------------
    def _tracks_expired(self, rows: np.ndarray) -> None:
        table = self._tracks
        if not self.reentry.enabled or len(rows) == 0 or table.features is None:
            return
        rows = rows[table.has_feature[rows]]
        if len(rows):
            self.reentry.remember(
                table.ints[rows, _TRACK_ID],
                table.features[rows],
                self.frame_count,
                table.ints[rows, _CLASS_ID],
            )

    def _tracks_activated(self, rows: np.ndarray, alive: np.ndarray) -> None:
        table = self._tracks
        if len(rows) == 0 or len(self.reentry) == 0 or table.features is None:
            return
        rows = rows[table.has_feature[rows]]
        if len(rows) == 0:
            return
        ints = table.ints
        old_ids = self.reentry.claim(
            table.features[rows],
            self.frame_count,
            ints[alive[: len(ints)], _TRACK_ID],
            ints[rows, _CLASS_ID],
        )
        claimed = old_ids != NO_CLAIM
        ints[rows[claimed], _TRACK_ID] = old_ids[claimed]
