"""StrongSORT (Du et al., IEEE TMM 2023): DeepSORT with a stronger association, vectorised.

Algorithm (dyhBUPT/StrongSORT ``deep_sort/``, run with its ``--ECC --NSA --EMA --MC --woC``
switches, i.e. the paper's StrongSORT), per frame:

1. Drop detections below ``min_confidence`` and invalid rows; non-maximum suppression
   (``nms_max_overlap``; 1.0 suppresses nothing) orders the rest by descending score.
2. Kalman-predict every track (:class:`~reidsort.tracking.kalman_filter.KalmanFilterXYAH`, one
   batched call). With a camera-motion ``warp`` (**ECC**), move every predicted state and
   covariance by it (:func:`~reidsort.tracking.kalman_filter.warp_xyah`).
3. **MC** cost of confirmed tracks x detections: ``lambda * d_app + (1 - lambda) * d_maha``
   (``mc_lambda`` 0.98), where ``d_app`` is the cosine distance between the track's **EMA**
   feature and the detection's embedding and ``d_maha`` the squared Mahalanobis distance;
   pairs outside the chi-square 95% gate (9.4877) or of another class (``per_class``) are
   infeasible. **woC**: one global Hungarian assignment over all confirmed tracks, whatever
   their age, instead of DeepSORT's matching cascade (``cascade=True`` restores the cascade, the
   paper's ablation); pairs costing more than ``max_dist`` (0.45) stay unmatched. As in the
   reference, ``max_dist`` bounds the *combined* cost, so with ``lambda = 0.98`` it is in effect
   an appearance gate of ``(max_dist - 0.02 d_maha) / 0.98`` (at most 0.459).
4. IoU matching (``1 - IoU`` up to ``max_iou_distance``) of the leftover detections with
   tentative tracks and with confirmed tracks missed for exactly one frame (as in DeepSORT).
5. Kalman-correct matched tracks with the **NSA** filter (measurement noise std times
   ``1 - score``, see :meth:`KalmanFilterXYAH.innovation`; the gate of step 3 uses the plain
   noise, as the reference does); update each matched track's feature by
   ``f <- normalise(alpha f + (1 - alpha) e)`` with ``e`` the unit-length embedding
   (``ema_alpha`` 0.9; a new track starts from its first embedding). Tentative tracks missed
   once and confirmed tracks missed more than ``max_age`` frames are deleted; every leftover
   detection starts a tentative track, confirmed after ``n_init`` hits.
6. Output: confirmed tracks missed for at most ``output_lost_frames`` frames. Default 0:
   matched this frame only (BoxMOT's rule, and :class:`DeepSortTracker`'s default); 1 is the
   reference's MOT writer (``deep_sort_app.py`` skips ``time_since_update > 1``), which also
   writes a track missed in this frame, with its predicted box, score NaN and det_index -1.

**Without embeddings** (``update(dets)`` or ``embeddings=None``) the tracker is motion-only:
step 3 matches on the gated squared Mahalanobis distance alone, with the gate (9.4877) as its
ceiling (the ``lambda = 0`` end of the MC cost), then the IoU stage as usual. A frame with
embeddings after frames without works: a track gets its first feature at its next match; until
then (and for a detection whose embedding is non-finite or zero) the pair is infeasible in step
3 and can only be matched in the IoU stage.

Differences from the reference, by design: the camera motion is applied to the *predicted*
state, mean (centre, height and their velocities) and covariance, by the shared
:func:`warp_xyah` (the reference warps only the box of the previous frame's corrected state,
before the prediction); detection scores are clipped to [0, 1] before NSA (the reference assumes
such scores); ids are integers from 1; confidence filtering and NMS are part of :meth:`update`.

All per-track data lives in stacked arrays in the reference's track order (creation order,
deleted tracks removed); predict, warp, gate, costs, corrections and the EMA run once per frame
for all tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidsort.tracking.detection import (
    DETECTION_COLUMNS,
    invalid_box_mask,
    tlwh_to_xyah,
    xyah_to_tlwh,
    xyxy_to_tlwh,
)
from reidsort.tracking.iou_matching import iou_cost_tlwh
from reidsort.tracking.kalman_filter import (
    BLOCK_ROWS,
    MEASUREMENT_DIM,
    STATE_DIM,
    KalmanFilterXYAH,
    blocks_to_covariance,
    check_warp,
    squared_mahalanobis,
)
from reidsort.tracking.linear_assignment import (
    INFEASIBLE_COST,
    MatchResult,
    matching_cascade,
    min_cost_matching,
)
from reidsort.tracking.nms import NO_SUPPRESSION_OVERLAP, non_max_suppression
from reidsort.tracking.reentry import (
    DEFAULT_FRAME_RATE,
    DEFAULT_REENTRY_MAX_DIST,
    NO_CLAIM,
    ReentryGallery,
)
from reidsort.tracking.track import TrackSnapshot, TrackState
from reidsort.tracking.tracker import (
    FIRST_TRACK_ID,
    GATING_THRESHOLD,
    NO_DETECTION,
    OUTPUT_COLUMNS,
    OutputColumn,
)
from reidsort.tracking.validation import check_deepsort_knobs
from reidsort.tracking.validation import require as _require

#: Input rows with 5 columns (no class) get this class.
DEFAULT_CLASS_ID: int = 0
#: Columns of a 5-column input (no class column).
_NO_CLASS_COLUMNS: int = DETECTION_COLUMNS - 1
#: dyhBUPT/StrongSORT ``opts.py``: ``--MC_lambda`` 0.98, ``--EMA_alpha`` 0.9; cosine threshold
#: 0.4 with the BoT re-ID model, +0.05 with MC; ``min_confidence`` 0.6.
DEFAULT_MC_LAMBDA: float = 0.98
DEFAULT_EMA_ALPHA: float = 0.9
DEFAULT_MAX_DIST: float = 0.45
DEFAULT_MIN_CONFIDENCE: float = 0.6

# Columns of the integer track table (plain ints: they index arrays on the hot path).
_TRACK_ID, _STATE, _HITS, _AGE, _TIME_SINCE_UPDATE, _CLASS_ID, _DETECTION_INDEX = range(7)
_INT_FIELDS = 7
_TENTATIVE, _CONFIRMED = int(TrackState.TENTATIVE), int(TrackState.CONFIRMED)
_OUT_TRACK_ID, _OUT_SCORE, _OUT_CLASS_ID = (
    int(OutputColumn.TRACK_ID),
    int(OutputColumn.SCORE),
    int(OutputColumn.CLASS_ID),
)


@dataclass
class _Frame:
    """One frame's usable detections, in association order (descending score).

    ``features`` are unit-length float64 embeddings (the reference's features are float64),
    ``has_feature`` False where a row's embedding was non-finite or zero.
    """

    tlwh: np.ndarray
    xyah: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    source_index: np.ndarray
    features: np.ndarray | None
    has_feature: np.ndarray | None

    def __len__(self) -> int:
        return len(self.tlwh)


class _TrackTable:
    """All live tracks as aligned arrays, in creation order (deleted tracks removed)."""

    def __init__(self) -> None:
        self.means = np.zeros((0, STATE_DIM))
        self.covariances = np.zeros((0, BLOCK_ROWS, MEASUREMENT_DIM))  # Kalman covariance blocks
        self.scores = np.zeros(0)
        self.ints = np.zeros((0, _INT_FIELDS), dtype=np.int64)
        self.features: np.ndarray | None = None  # (T, D) EMA features once any embedding came
        self.has_feature = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.ints)

    def ensure_features(self, dim: int) -> None:
        if self.features is None:
            self.features = np.zeros((len(self), dim))

    def append(self, means, covariances, scores, ints, features, has_feature) -> None:
        self.means = np.concatenate([self.means, means])
        self.covariances = np.concatenate([self.covariances, covariances])
        self.scores = np.concatenate([self.scores, scores])
        self.ints = np.concatenate([self.ints, ints])
        self.has_feature = np.concatenate([self.has_feature, has_feature])
        if self.features is not None:
            self.features = np.concatenate([self.features, features])

    def keep(self, mask: np.ndarray) -> None:
        self.means, self.covariances = self.means[mask], self.covariances[mask]
        self.scores, self.ints = self.scores[mask], self.ints[mask]
        self.has_feature = self.has_feature[mask]
        if self.features is not None:
            self.features = self.features[mask]


class StrongSortTracker:
    """StrongSORT with the reference's MOT17 settings; knobs are plain keyword arguments.

    Parameters
    ----------
    max_dist:
        Ceiling of the MC cost in the first association (BoxMOT: ``max_cos_dist``). Reference
        ``opts.py`` with the BoT re-ID model and MC: 0.4 + 0.05 = 0.45. Motion-only frames use
        the chi-square gate instead.
    max_iou_distance:
        IoU-stage ceiling on ``1 - IoU`` (reference ``Tracker``: 0.7; BoxMOT ``max_iou_dist``).
    max_age:
        A confirmed track is deleted after more than this many consecutive misses (30); with
        ``cascade=True`` also the cascade depth.
    n_init:
        Hits needed to confirm a track (3).
    mc_lambda:
        Weight of the appearance distance in the MC cost, the rest on the squared Mahalanobis
        distance (``--MC_lambda`` 0.98; BoxMOT ``mc_lambda``).
    ema_alpha:
        Weight of a track's previous feature in its moving average (``--EMA_alpha`` 0.9;
        BoxMOT ``ema_alpha``); 0 keeps only the newest embedding.
    min_confidence:
        Detections scoring below this are ignored (``opts.py``: 0.6; BoxMOT ``min_conf``).
    nms_max_overlap:
        Non-maximum suppression threshold; 1.0 (reference) suppresses nothing.
    nsa:
        NSA Kalman filter: measurement noise std scaled by ``1 - score`` in the correction
        (``--NSA``, on in StrongSORT). False: the plain DeepSORT filter.
    cascade:
        False (StrongSORT, ``--woC``): one global assignment of all confirmed tracks. True:
        DeepSORT's matching cascade (most recently seen tracks first) with the same MC cost.
    output_lost_frames:
        Report confirmed tracks missed for at most this many consecutive frames (with their
        predicted box, score NaN, det_index -1). 0 (default): matched this frame only
        (BoxMOT, DeepSortTracker's default); 1: the reference's MOT writer
        (``deep_sort_app.py`` skips ``time_since_update > 1``).
    per_class:
        If True a track only takes detections of its own class (and NMS is per class). False
        reproduces the class-agnostic reference; the output class is the last matched one.
    reentry_seconds, reentry_max_dist, frame_rate:
        Re-entry gallery (not in the reference; off by default, :mod:`.reentry`): a deleted
        confirmed track's EMA feature is kept ``round(reentry_seconds * frame_rate)`` frames,
        and a track confirmed later takes that id when its EMA feature is within
        ``reentry_max_dist`` cosine distance (one assignment per frame). ``frame_rate`` None: 30.
    """

    def __init__(
        self,
        max_dist: float = DEFAULT_MAX_DIST,
        max_iou_distance: float = 0.7,
        max_age: int = 30,
        n_init: int = 3,
        mc_lambda: float = DEFAULT_MC_LAMBDA,
        ema_alpha: float = DEFAULT_EMA_ALPHA,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        nms_max_overlap: float = 1.0,
        nsa: bool = True,
        cascade: bool = False,
        output_lost_frames: int = 0,
        per_class: bool = False,
        reentry_seconds: float | None = None,
        reentry_max_dist: float = DEFAULT_REENTRY_MAX_DIST,
        frame_rate: float | None = DEFAULT_FRAME_RATE,
    ) -> None:
        check_deepsort_knobs(
            max_dist,
            max_iou_distance,
            max_age,
            n_init,
            min_confidence,
            nms_max_overlap,
            output_lost_frames,
        )
        _require(
            np.isfinite(mc_lambda) and 0 <= mc_lambda <= 1,
            f"mc_lambda must be in [0, 1], got {mc_lambda}",
        )
        _require(
            np.isfinite(ema_alpha) and 0 <= ema_alpha < 1,
            f"ema_alpha must be in [0, 1), got {ema_alpha}",
        )
        self.max_dist = float(max_dist)
        self.max_iou_distance = float(max_iou_distance)
        self.max_age = int(max_age)
        self.n_init = int(n_init)
        self.mc_lambda = float(mc_lambda)
        self.ema_alpha = float(ema_alpha)
        self.min_confidence = float(min_confidence)
        self.nms_max_overlap = float(nms_max_overlap)
        self.nsa = bool(nsa)
        self.cascade = bool(cascade)
        self.output_lost_frames = int(output_lost_frames)
        self.per_class = bool(per_class)
        self.frame_rate = DEFAULT_FRAME_RATE if frame_rate is None else float(frame_rate)
        self.reentry = ReentryGallery.from_seconds(
            reentry_seconds, self.frame_rate, reentry_max_dist, class_aware=self.per_class
        )
        self.reentry_seconds = None if reentry_seconds is None else float(reentry_seconds)
        self.kf = KalmanFilterXYAH()
        self.reset()

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all tracks, restart ids at 1 and the frame count at 0."""
        self._tracks = _TrackTable()
        self._next_id = FIRST_TRACK_ID
        self._embedding_dim: int | None = None
        self.frame_count = 0
        self.last_deleted_track_ids = np.zeros(0, dtype=np.int64)
        self.reentry.reset()

    @property
    def embedding_dim(self) -> int | None:
        return self._embedding_dim

    @property
    def num_tracks(self) -> int:
        return len(self._tracks)

    @property
    def track_ids(self) -> np.ndarray:
        return self._tracks.ints[:, _TRACK_ID].copy()

    @property
    def smooth_features(self) -> np.ndarray:
        """``(T, D)`` EMA features of the live tracks, aligned with :attr:`track_ids` (NaN rows
        for tracks without any embedding; ``(T, 0)`` before the first embedding)."""
        table = self._tracks
        if table.features is None:
            return np.zeros((len(table), 0))
        return np.where(table.has_feature[:, None], table.features, np.nan)

    @property
    def tracks(self) -> list[TrackSnapshot]:
        """Snapshots of all live tracks (tentative and confirmed), in track order."""
        table = self._tracks
        full = blocks_to_covariance(table.covariances)
        return [
            TrackSnapshot(
                track_id=int(ints[_TRACK_ID]),
                state=TrackState(int(ints[_STATE])),
                mean_xyah=table.means[i].copy(),
                covariance=full[i],
                hits=int(ints[_HITS]),
                age=int(ints[_AGE]),
                time_since_update=int(ints[_TIME_SINCE_UPDATE]),
                class_id=int(ints[_CLASS_ID]),
                score=float(table.scores[i]),
                detection_index=int(ints[_DETECTION_INDEX]),
            )
            for i, ints in enumerate(table.ints)
        ]

    # -- one frame ---------------------------------------------------------------------------
    def update(
        self,
        dets: np.ndarray,
        embeddings: np.ndarray | None = None,
        *,
        warp: np.ndarray | None = None,
    ) -> np.ndarray:
        """Track one frame; return ``(M, 8)`` ``[x1, y1, x2, y2, track_id, score, cls, det_index]``.

        ``dets`` is ``(N, 6)`` ``[x1, y1, x2, y2, score, cls]`` (or ``(N, 5)``, class 0); rows
        with non-finite values, non-positive width/height or a NaN score are dropped.
        ``embeddings`` ``(N, D)`` or None (motion-only). ``warp`` is an optional ``(2, 3)``
        affine camera motion from the previous frame to this one, applied to the predicted
        tracks. Rows are the confirmed tracks matched this frame (Kalman-corrected box, the
        detection's score, class and row in ``dets``) and, with ``output_lost_frames`` > 0,
        those missed for at most that many frames (predicted box, score NaN, det_index -1).
        """
        frame = self._prepare(dets, embeddings)
        if warp is not None:
            warp = check_warp(warp)
        self.frame_count += 1
        table = self._tracks
        if len(table):
            table.means, table.covariances = self.kf.predict(table.means, table.covariances)
            table.ints[:, _AGE : _TIME_SINCE_UPDATE + 1] += 1  # adjacent columns
            table.ints[:, _DETECTION_INDEX] = NO_DETECTION
            table.scores[:] = np.nan
            if warp is not None:
                table.means, table.covariances = self.kf.warp(table.means, table.covariances, warp)

        result = self._match(frame)
        confirmed_now = self._apply_matches(result.matches, frame)
        deleted = self._mark_missed(result.unmatched_tracks)
        self._initiate_tracks(result.unmatched_detections, frame)
        if self.reentry.enabled:
            self._remember_deleted(deleted)
            confirmed_ids = self._tracks.ints[confirmed_now, _TRACK_ID].copy()
        self._remove(deleted)
        if self.reentry.enabled and len(confirmed_ids):
            self._claim_returning(confirmed_ids)
        return self._output()

    # -- re-entry gallery --------------------------------------------------------------------
    def _remember_deleted(self, rows: np.ndarray) -> None:
        table = self._tracks
        if len(rows) == 0 or table.features is None:
            return
        rows = rows[(table.ints[rows, _STATE] == _CONFIRMED) & table.has_feature[rows]]
        if len(rows):
            self.reentry.remember(
                table.ints[rows, _TRACK_ID],
                table.features[rows],
                self.frame_count,
                table.ints[rows, _CLASS_ID],
            )

    def _claim_returning(self, confirmed_ids: np.ndarray) -> None:
        """Tracks confirmed this frame (ids before any claim) take remembered ids."""
        table = self._tracks
        if len(self.reentry) == 0 or table.features is None:
            return
        ints = table.ints
        rows = np.flatnonzero(np.isin(ints[:, _TRACK_ID], confirmed_ids))
        rows = rows[table.has_feature[rows]]
        if len(rows) == 0:
            return
        old_ids = self.reentry.claim(
            table.features[rows], self.frame_count, ints[:, _TRACK_ID], ints[rows, _CLASS_ID]
        )
        claimed = old_ids != NO_CLAIM
        ints[rows[claimed], _TRACK_ID] = old_ids[claimed]

    # -- input -------------------------------------------------------------------------------
    def _prepare(self, dets: np.ndarray, embeddings: np.ndarray | None) -> _Frame:
        """Validate, drop unusable rows, filter by confidence, run NMS, normalise embeddings."""
        raw = np.asarray(dets, dtype=np.float64)
        if raw.size == 0 and raw.ndim <= 2:
            raw = raw.reshape(0, DETECTION_COLUMNS)
        if raw.ndim != 2 or raw.shape[1] not in (_NO_CLASS_COLUMNS, DETECTION_COLUMNS):
            raise ValueError(
                f"dets must have shape (N, 6) [x1, y1, x2, y2, score, cls] or (N, 5), "
                f"got {raw.shape}"
            )
        if raw.shape[1] == _NO_CLASS_COLUMNS:
            raw = np.column_stack([raw, np.full(len(raw), DEFAULT_CLASS_ID, dtype=np.float64)])
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float64)
            if embeddings.ndim != 2 or len(embeddings) != len(raw) or embeddings.shape[1] == 0:
                raise ValueError(
                    f"embeddings must have shape ({len(raw)}, D) with D >= 1 for {len(raw)} "
                    f"detections, got {embeddings.shape}"
                )
            if self._embedding_dim is not None and embeddings.shape[1] != self._embedding_dim:
                raise ValueError(
                    f"embeddings have dimension {embeddings.shape[1]} "
                    f"but this tracker uses {self._embedding_dim}"
                )
            self._embedding_dim = embeddings.shape[1]

        with np.errstate(invalid="ignore"):  # inf - inf in a bad row: it is dropped below
            tlwh_all = xyxy_to_tlwh(raw[:, :4])
        usable = ~invalid_box_mask(tlwh_all, raw[:, 4])
        usable &= np.isfinite(raw[:, 5])
        usable &= raw[:, 4] >= self.min_confidence
        candidates = usable.nonzero()[0]
        kept = raw[candidates]
        if self.nms_max_overlap >= NO_SUPPRESSION_OVERLAP:
            order = kept[:, 4].argsort()[::-1]  # what the reference NMS returns at 1.0
        else:
            order = non_max_suppression(
                tlwh_all[candidates],
                self.nms_max_overlap,
                kept[:, 4],
                kept[:, 5] if self.per_class else None,
            )
        selected = candidates[order]
        tlwh = tlwh_all[selected]
        features = has_feature = None
        if embeddings is not None:
            features = embeddings[selected]
            norms = np.linalg.norm(features, axis=1)
            has_feature = np.isfinite(norms) & (norms > 0)
            features = np.where(
                has_feature[:, None], features / np.where(has_feature, norms, 1.0)[:, None], 0.0
            )
        return _Frame(
            tlwh,
            tlwh_to_xyah(tlwh),
            raw[selected, 4],
            raw[selected, 5].astype(np.int64),
            selected,
            features,
            has_feature,
        )

    # -- association -------------------------------------------------------------------------
    def _class_mismatch(self, track_rows: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        return self._tracks.ints[track_rows, _CLASS_ID][:, None] != class_ids[None, :]

    def motion_appearance_cost(
        self, frame_xyah: np.ndarray, frame_features: np.ndarray | None, rows: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """The first association's gated cost of tracks ``rows`` x detections and its ceiling.

        With features: ``mc_lambda * cosine distance + (1 - mc_lambda) * squared Mahalanobis``,
        ceiling ``max_dist``; without: the squared Mahalanobis distance, ceiling the gate.
        Pairs outside the gate are :data:`INFEASIBLE_COST`. Exposed for tests and analysis.
        """
        table = self._tracks
        innovation = self.kf.innovation(table.means[rows], table.covariances[rows])
        maha = squared_mahalanobis(innovation, frame_xyah)
        infeasible = maha > GATING_THRESHOLD
        if frame_features is None:
            cost, ceiling = maha, GATING_THRESHOLD
        else:
            table.ensure_features(frame_features.shape[1])
            appearance = table.features[rows] @ frame_features.T
            np.subtract(1.0, appearance, out=appearance)
            cost = appearance
            cost *= self.mc_lambda
            cost += (1.0 - self.mc_lambda) * maha
            infeasible |= ~table.has_feature[rows][:, None]
            ceiling = self.max_dist
        cost[infeasible] = INFEASIBLE_COST
        return cost, ceiling

    def _match(self, frame: _Frame) -> MatchResult:
        table = self._tracks
        time_since_update = table.ints[:, _TIME_SINCE_UPDATE]
        confirmed_mask = table.ints[:, _STATE] == _CONFIRMED
        confirmed = confirmed_mask.nonzero()[0]
        detections = list(range(len(frame)))

        # First association: MC cost of all confirmed tracks x all detections.
        if len(confirmed) and len(frame):
            cost, ceiling = self.motion_appearance_cost(frame.xyah, frame.features, confirmed)
            if frame.features is not None:
                cost[:, ~frame.has_feature] = INFEASIBLE_COST
            if self.per_class:
                cost[self._class_mismatch(confirmed, frame.class_ids)] = INFEASIBLE_COST
        else:
            cost, ceiling = np.zeros((len(confirmed), len(frame))), self.max_dist
        if self.cascade:
            first = matching_cascade(
                cost, ceiling, self.max_age, time_since_update[confirmed], confirmed.tolist()
            )
        else:
            # woC: one assignment over every confirmed track; the leftovers are listed by the
            # reference's set expression (it orders the IoU stage's rows).
            global_result = min_cost_matching(cost, ceiling, confirmed.tolist(), detections)
            matched = {k for k, _ in global_result.matches}
            first = MatchResult(
                global_result.matches,
                list(set(confirmed.tolist()) - matched),
                global_result.unmatched_detections,
            )

        # IoU stage: tentative tracks, then confirmed ones missed for exactly one frame.
        recent = time_since_update.tolist()
        iou_candidates = (~confirmed_mask).nonzero()[0].tolist() + [
            k for k in first.unmatched_tracks if recent[k] == 1
        ]
        stale = [k for k in first.unmatched_tracks if recent[k] != 1]
        remaining = first.unmatched_detections
        iou_cost = None
        if iou_candidates and remaining:
            candidates = np.array(iou_candidates)
            remaining_cols = np.array(remaining)
            track_tlwh = xyah_to_tlwh(table.means[candidates, :MEASUREMENT_DIM])
            iou_cost = iou_cost_tlwh(track_tlwh, frame.tlwh[remaining_cols])
            if self.per_class:
                mismatch = self._class_mismatch(candidates, frame.class_ids[remaining_cols])
                iou_cost[mismatch] = INFEASIBLE_COST
        iou_result = min_cost_matching(iou_cost, self.max_iou_distance, iou_candidates, remaining)

        matches = first.matches + iou_result.matches
        unmatched_tracks = list(set(stale + iou_result.unmatched_tracks))
        return MatchResult(matches, unmatched_tracks, iou_result.unmatched_detections)

    # -- track management --------------------------------------------------------------------
    def _apply_matches(self, matches: list[tuple[int, int]], frame: _Frame) -> np.ndarray:
        """Correct the matched tracks; returns the rows confirmed by this frame's hit."""
        if not matches:
            return np.zeros(0, dtype=np.int64)
        table = self._tracks
        rows, cols = np.array(matches, dtype=np.int64).T
        scores = frame.scores[cols]
        confidence = np.clip(scores, 0.0, 1.0) if self.nsa else None
        table.means[rows], table.covariances[rows] = self.kf.update(
            table.means[rows], table.covariances[rows], frame.xyah[cols], confidence=confidence
        )
        matched = table.ints[rows]
        matched[:, _HITS] += 1
        matched[:, _TIME_SINCE_UPDATE] = 0
        matched[:, _CLASS_ID] = frame.class_ids[cols]
        matched[:, _DETECTION_INDEX] = frame.source_index[cols]
        promote = matched[:, _STATE] == _TENTATIVE
        promote &= matched[:, _HITS] >= self.n_init
        matched[promote, _STATE] = _CONFIRMED
        table.ints[rows] = matched
        table.scores[rows] = scores
        if frame.features is not None:
            self._update_features(rows, cols, frame)
        return rows[promote]

    def _update_features(self, rows: np.ndarray, cols: np.ndarray, frame: _Frame) -> None:
        """EMA ``f <- normalise(alpha f + (1 - alpha) e)`` of the matched tracks' features."""
        usable = frame.has_feature[cols]
        rows, cols = rows[usable], cols[usable]
        if len(rows) == 0:
            return
        table = self._tracks
        table.ensure_features(frame.features.shape[1])
        new = frame.features[cols]
        blended = self.ema_alpha * table.features[rows] + (1.0 - self.ema_alpha) * new
        norms = np.linalg.norm(blended, axis=1, keepdims=True)
        # A track without a feature yet (or an average that cancelled out) takes the new one.
        restart = ~table.has_feature[rows][:, None] | (norms == 0)
        table.features[rows] = np.where(restart, new, blended / np.where(norms == 0, 1.0, norms))
        table.has_feature[rows] = True

    def _mark_missed(self, unmatched_tracks: list[int]) -> np.ndarray:
        """Rows to delete: tentative tracks missed once, confirmed ones missed too long."""
        if not unmatched_tracks:
            return np.zeros(0, dtype=np.int64)
        missed = np.array(unmatched_tracks, dtype=np.int64)
        ints = self._tracks.ints[missed]
        dead = ints[:, _STATE] == _TENTATIVE
        dead |= ints[:, _TIME_SINCE_UPDATE] > self.max_age
        return missed[dead]

    def _initiate_tracks(self, detection_indices: list[int], frame: _Frame) -> None:
        if not detection_indices:
            return
        cols = np.array(detection_indices, dtype=np.int64)
        count = len(cols)
        means, covariances = self.kf.initiate(frame.xyah[cols])
        ints = np.empty((count, _INT_FIELDS), dtype=np.int64)
        ints[:, _TRACK_ID] = np.arange(self._next_id, self._next_id + count)
        ints[:, _STATE] = _TENTATIVE
        ints[:, _HITS] = 1
        ints[:, _AGE] = 1
        ints[:, _TIME_SINCE_UPDATE] = 0
        ints[:, _CLASS_ID] = frame.class_ids[cols]
        ints[:, _DETECTION_INDEX] = frame.source_index[cols]
        table = self._tracks
        if frame.features is not None:
            table.ensure_features(frame.features.shape[1])
            features, has_feature = frame.features[cols], frame.has_feature[cols]
        else:
            dim = 0 if table.features is None else table.features.shape[1]
            features, has_feature = np.zeros((count, dim)), np.zeros(count, dtype=bool)
        table.append(means, covariances, frame.scores[cols], ints, features, has_feature)
        self._next_id += count

    def _remove(self, rows: np.ndarray) -> None:
        table = self._tracks
        self.last_deleted_track_ids = table.ints[rows, _TRACK_ID]
        if len(rows) == 0:
            return
        keep = np.ones(len(table), dtype=bool)
        keep[rows] = False
        table.keep(keep)

    def _output(self) -> np.ndarray:
        table = self._tracks
        ints = table.ints
        rows = (
            (ints[:, _STATE] == _CONFIRMED)
            & (ints[:, _TIME_SINCE_UPDATE] <= self.output_lost_frames)
        ).nonzero()[0]
        out = np.empty((len(rows), OUTPUT_COLUMNS), dtype=np.float64)
        if len(rows) == 0:
            return out
        tlwh = xyah_to_tlwh(table.means[rows, :MEASUREMENT_DIM])
        out[:, 0:2] = tlwh[:, 0:2]
        out[:, 2:4] = tlwh[:, 0:2] + tlwh[:, 2:4]
        selected = ints[rows]
        out[:, _OUT_TRACK_ID] = selected[:, _TRACK_ID]
        out[:, _OUT_SCORE] = table.scores[rows]
        out[:, _OUT_CLASS_ID:] = selected[:, _CLASS_ID : _DETECTION_INDEX + 1]
        return out
