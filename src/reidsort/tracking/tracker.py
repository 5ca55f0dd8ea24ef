"""The DeepSORT multi-object tracker, reference-faithful and vectorised.

Algorithm (Wojke et al. 2017; nwojke/deep_sort ``tracker.py``), per frame:

1. Kalman-predict every track (one batched call); with a camera-motion ``warp`` (not in the
   reference), move every predicted state and covariance by it.
2. Drop detections below ``min_confidence``; non-maximum suppression (``nms_max_overlap``)
   orders the rest by descending score.
3. Matching cascade for confirmed tracks, most recently seen first: appearance cost
   (nearest-neighbour distance to the track's gallery) where the squared Mahalanobis distance is
   inside the chi-square 95% gate (9.4877, 4 dof), Hungarian assignment, pairs above
   ``max_dist`` rejected.
4. IoU matching (``1 - IoU`` up to ``max_iou_distance``) of the leftover detections with
   tentative tracks and with confirmed tracks missed for exactly one frame.
5. Kalman-correct matched tracks, store their embeddings; tentative tracks missed once and
   confirmed tracks missed more than ``max_age`` frames are deleted; every leftover detection
   starts a tentative track, confirmed after ``n_init`` hits.

All per-track data lives in stacked arrays in the reference's track order (creation order,
deleted tracks removed), which is what makes the output id-for-id identical to the reference
while every numerical step runs once per frame for all tracks.

By-design differences from deep-sort-realtime (documented in ``conf/tracker/deepsort.yaml``):
ids are integers from 1; detection filtering and NMS are part of :meth:`update`; after a track's
embeddings are stored they are cleared as in nwojke/deep_sort, whereas deep-sort-realtime keeps
re-adding the newest one every frame (so its galleries hold duplicates and ``nn_budget`` spans
fewer distinct frames there; ``repeat_last_embedding=True`` reproduces that).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from enum import IntEnum

import numpy as np

from reidsort.tracking.detection import (
    DETECTION_COLUMNS,
    Detection,
    DetectionBatch,
    tlwh_to_xyah,
    xyxy_to_tlwh,
)
from reidsort.tracking.iou_matching import iou_cost_tlwh
from reidsort.tracking.kalman_filter import (
    BLOCK_ROWS,
    CHI2_INV_95,
    MEASUREMENT_DIM,
    STATE_DIM,
    Innovation,
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
from reidsort.tracking.nn_matching import AppearanceGallery, DistanceMetric
from reidsort.tracking.reentry import (
    DEFAULT_FRAME_RATE,
    DEFAULT_REENTRY_MAX_DIST,
    NO_CLAIM,
    ReentryGallery,
)
from reidsort.tracking.track import TrackSnapshot, TrackState
from reidsort.tracking.validation import check_deepsort_knobs

#: Kalman gate: chi-square 0.95 quantile for the 4-d measurement (x, y, a, h).
GATING_THRESHOLD: float = CHI2_INV_95[MEASUREMENT_DIM]
#: Track ids start here and only increase (MOTChallenge wants positive integers).
FIRST_TRACK_ID: int = 1
#: Sentinel for "no detection this frame" in integer detection-index fields.
NO_DETECTION: int = -1
#: Library default of ``min_confidence``: nwojke's evaluate_motchallenge.py (the paper's MOT16
#: runs). deep_sort_app.py's 0.8 is kept in the fidelity tests' reference configuration.
DEFAULT_MIN_CONFIDENCE: float = 0.3
REFERENCE_APP_MIN_CONFIDENCE: float = 0.8
#: A frame must lose at least this many detections (and more than half) to min_confidence
#: before :class:`LowConfidenceWarning` is raised.
LOW_CONFIDENCE_WARN_MIN_DROPPED: int = 3


class LowConfidenceWarning(UserWarning):
    """Most of a frame's detections scored below ``min_confidence`` and were ignored."""


class OutputColumn(IntEnum):
    """Columns of the ``(M, 8)`` array returned by :meth:`DeepSortTracker.update`."""

    X1 = 0
    Y1 = 1
    X2 = 2
    Y2 = 3
    TRACK_ID = 4
    SCORE = 5
    CLASS_ID = 6
    DETECTION_INDEX = 7


OUTPUT_COLUMNS: int = len(OutputColumn)
_OUT_TRACK_ID, _OUT_SCORE, _OUT_CLASS_ID = (
    int(OutputColumn.TRACK_ID),
    int(OutputColumn.SCORE),
    int(OutputColumn.CLASS_ID),
)


# Columns of the tracker's integer track table (plain ints: they index arrays on the hot path).
_TRACK_ID, _STATE, _HITS, _AGE, _TIME_SINCE_UPDATE, _CLASS_ID, _DETECTION_INDEX, _GALLERY_SLOT = (
    range(8)
)
_INT_FIELDS = 8
_TENTATIVE, _CONFIRMED = int(TrackState.TENTATIVE), int(TrackState.CONFIRMED)


class _TrackTable:
    """All live tracks as four aligned arrays, in the reference's track order.

    Rows are in creation order with deleted tracks removed, exactly like the reference's
    ``tracker.tracks`` list. Integer fields share one ``(T, 8)`` array so that adding or removing
    tracks costs four array operations, whatever the number of fields.
    """

    def __init__(self) -> None:
        self.means = np.zeros((0, STATE_DIM))
        self.covariances = np.zeros((0, BLOCK_ROWS, MEASUREMENT_DIM))  # Kalman covariance blocks
        self.scores = np.zeros(0)
        self.ints = np.zeros((0, _INT_FIELDS), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ints)

    def column(self, name: int) -> np.ndarray:
        """A writable view of one integer field."""
        return self.ints[:, name]

    def append(self, means, covariances, scores, ints) -> None:
        self.means = np.concatenate([self.means, means])
        self.covariances = np.concatenate([self.covariances, covariances])
        self.scores = np.concatenate([self.scores, scores])
        self.ints = np.concatenate([self.ints, ints])

    def keep(self, mask: np.ndarray) -> None:
        self.means, self.covariances = self.means[mask], self.covariances[mask]
        self.scores, self.ints = self.scores[mask], self.ints[mask]


class DeepSortTracker:
    """DeepSORT with the reference's defaults; knobs are plain keyword arguments (Hydra-friendly).

    Parameters
    ----------
    max_dist:
        Appearance threshold: cosine distance (or squared Euclidean distance) above which a
        cascade match is rejected. Paper / nwojke ``max_cosine_distance``: 0.2.
    max_iou_distance:
        IoU-stage threshold on ``1 - IoU``. nwojke ``Tracker``: 0.7.
    max_age:
        A confirmed track is deleted after more than this many consecutive misses; also the
        cascade depth. Paper and deep-sort-realtime: 30 (nwojke's ``Tracker`` default: 70).
    n_init:
        Hits needed to confirm a track. nwojke: 3.
    nn_budget:
        Gallery size per track (oldest evicted); ``None`` for unbounded. Paper / nwojke
        ``evaluate_motchallenge.py``: 100.
    min_confidence:
        Detections scoring below this are ignored. Default 0.3, nwojke
        ``evaluate_motchallenge.py`` (the paper's MOT16 results); ``deep_sort_app.py``'s default
        is 0.8. The first frame in which this threshold drops most of the detections (more than
        half, at least ``LOW_CONFIDENCE_WARN_MIN_DROPPED``) raises a :class:`LowConfidenceWarning`,
        once per tracker instance, so a detector with other score units loses nothing silently.
    nms_max_overlap:
        Non-maximum suppression threshold; 1.0 (nwojke default) suppresses nothing.
    metric:
        ``"cosine"`` (default) or ``"euclidean"`` (squared distances, as in the reference).
    per_class:
        If True a track only ever takes detections of its own class (and NMS is per class).
        False reproduces the class-agnostic reference.
    drop_invalid_boxes:
        If True, rows with non-finite values or non-positive width/height are silently dropped;
        if False (default) they raise ``ValueError``.
    embedding_dim:
        Expected embedding size; learned from the first embeddings when None.
    repeat_last_embedding:
        deep-sort-realtime compatibility, off by default: in every frame with embeddings, store
        each confirmed track's newest embedding once more before adding new ones, reproducing
        deep-sort-realtime 1.3's duplicated galleries (nwojke/deep_sort stores each once).
    output_lost_frames:
        :meth:`update` reports confirmed tracks missed for at most this many consecutive frames.
        0 (default, deep-sort-realtime's and most MOT writers' rule): only tracks matched this
        frame. 1: nwojke ``deep_sort_app.py``'s rule (``time_since_update > 1`` skipped), so a
        track missed in this frame is still written, with its Kalman-predicted box. Such rows
        have ``score`` NaN and ``det_index`` -1 (no detection), and their last class.
    reentry_seconds:
        Re-entry gallery (not in the reference; None or 0, the default, reproduces it): a
        confirmed track deleted after ``max_age`` misses is remembered for
        ``round(reentry_seconds * frame_rate)`` more frames by the mean of its appearance
        gallery (its last ``nn_budget`` embeddings, scaled to unit length: one noisy or truncated
        crop at the edge of the frame moves it little), and a new track gets that old id at the
        moment it is confirmed if the mean of its own gallery (its ``n_init`` embeddings) is
        within ``reentry_max_dist`` cosine distance, all tracks confirmed in a frame in one
        assignment against the whole gallery (:mod:`reidsort.tracking.reentry`). Needs
        embeddings; tracks without any are never remembered and never claim.
    reentry_max_dist:
        Cosine distance ceiling of a re-entry claim (whatever ``metric``), default
        :data:`~reidsort.tracking.reentry.DEFAULT_REENTRY_MAX_DIST`.
    frame_rate:
        The sequence's frame rate, used only to turn ``reentry_seconds`` into frames; None = 30
        (``task=track`` passes each source's own rate).
    """

    def __init__(
        self,
        max_dist: float = 0.2,
        max_iou_distance: float = 0.7,
        max_age: int = 30,
        n_init: int = 3,
        nn_budget: int | None = 100,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        nms_max_overlap: float = 1.0,
        metric: DistanceMetric | str = DistanceMetric.COSINE,
        per_class: bool = False,
        drop_invalid_boxes: bool = False,
        embedding_dim: int | None = None,
        repeat_last_embedding: bool = False,
        output_lost_frames: int = 0,
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
        try:
            metric = DistanceMetric(metric)
        except ValueError:
            raise ValueError(
                f"metric must be one of {[m.value for m in DistanceMetric]}, got {metric!r}"
            ) from None
        self.max_dist = float(max_dist)
        self.max_iou_distance = float(max_iou_distance)
        self.max_age = int(max_age)
        self.n_init = int(n_init)
        self.nn_budget = None if nn_budget is None else int(nn_budget)
        self.min_confidence = float(min_confidence)
        self.nms_max_overlap = float(nms_max_overlap)
        self.metric = metric
        self.per_class = bool(per_class)
        self.drop_invalid_boxes = bool(drop_invalid_boxes)
        self.repeat_last_embedding = bool(repeat_last_embedding)
        self.output_lost_frames = int(output_lost_frames)
        self.frame_rate = DEFAULT_FRAME_RATE if frame_rate is None else float(frame_rate)
        self.reentry = ReentryGallery.from_seconds(
            reentry_seconds, self.frame_rate, reentry_max_dist, class_aware=self.per_class
        )
        self.reentry_seconds = None if reentry_seconds is None else float(reentry_seconds)
        self.reentry_max_dist = self.reentry.max_dist
        self._warned_low_confidence = False  # once per instance, not reset by reset()
        self._initial_embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.kf = KalmanFilterXYAH()
        self.reset()

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all tracks and restart ids at 1."""
        self._tracks = _TrackTable()
        self.gallery = AppearanceGallery(self.metric, self.nn_budget, self._initial_embedding_dim)
        self._next_id = FIRST_TRACK_ID
        self._predicted = False
        self.frame_count = 0
        self.reentry.reset()
        self.last_deleted_track_ids = np.zeros(0, dtype=np.int64)

    @property
    def embedding_dim(self) -> int | None:
        return self.gallery.embedding_dim

    @property
    def num_tracks(self) -> int:
        return len(self._tracks)

    @property
    def track_ids(self) -> np.ndarray:
        return self._tracks.column(_TRACK_ID).copy()

    @property
    def tracks(self) -> list[TrackSnapshot]:
        """Snapshots of all live tracks (tentative and confirmed), in track order."""
        table = self._tracks
        return [
            TrackSnapshot(
                track_id=int(ints[_TRACK_ID]),
                state=TrackState(int(ints[_STATE])),
                mean_xyah=table.means[i].copy(),
                covariance=blocks_to_covariance(table.covariances[i : i + 1])[0],
                hits=int(ints[_HITS]),
                age=int(ints[_AGE]),
                time_since_update=int(ints[_TIME_SINCE_UPDATE]),
                class_id=int(ints[_CLASS_ID]),
                score=float(table.scores[i]),
                detection_index=int(ints[_DETECTION_INDEX]),
            )
            for i, ints in enumerate(table.ints)
        ]

    # -- the two phases ----------------------------------------------------------------------
    def predict(self) -> None:
        """Propagate all tracks one frame forward. Call once per frame before :meth:`update`;
        if you do not, :meth:`update` calls it for you."""
        table = self._tracks
        self._predicted = True
        if len(table) == 0:
            return
        table.means, table.covariances = self.kf.predict(table.means, table.covariances)
        table.ints[:, _AGE : _TIME_SINCE_UPDATE + 1] += 1  # adjacent columns: one operation
        table.ints[:, _DETECTION_INDEX] = NO_DETECTION
        table.scores[:] = np.nan

    def update(
        self,
        dets: np.ndarray | DetectionBatch | Sequence[Detection],
        embeddings: np.ndarray | None = None,
        *,
        warp: np.ndarray | None = None,
    ) -> np.ndarray:
        """Associate one frame's detections and return the confirmed tracks updated this frame
        (and, with ``output_lost_frames`` > 0, those missed for at most that many frames).

        ``dets`` is ``(N, 6)`` ``[x1, y1, x2, y2, score, cls]`` (or a :class:`DetectionBatch`
        / list of :class:`Detection`, which carry their own embeddings) and ``embeddings`` is
        ``(N, D)`` or None. Without embeddings the cascade matches on the Mahalanobis distance
        alone (the paper's lambda = 1 case). Returns ``(M, 8)``
        ``[x1, y1, x2, y2, track_id, score, cls, det_index]`` (see :class:`OutputColumn`): the
        Kalman-corrected box, the matched detection's score, class and row in ``dets``; a row of
        a track missed this frame (``output_lost_frames`` > 0 only) has the predicted box, score
        NaN, its last class and det_index -1.

        ``warp`` is an optional ``(2, 3)`` affine camera motion ``[A | t]`` from the previous
        frame's pixel coordinates to this frame's (:mod:`reidsort.tracking.cmc`): every track's
        predicted state and covariance are moved by it (``kalman_filter.warp_xyah``) before
        association, so a panning camera does not push tracks out of their gates. None (the
        default) is the static-camera reference algorithm, bit for bit.
        """
        batch = self._prepare(dets, embeddings)
        if warp is not None:
            warp = check_warp(warp)  # before any state changes
        if not self._predicted:
            self.predict()
        self._predicted = False
        self.frame_count += 1
        if warp is not None and len(self._tracks):
            table = self._tracks
            table.means, table.covariances = self.kf.warp(table.means, table.covariances, warp)

        queries = batch.embeddings
        det_xyah = tlwh_to_xyah(batch.tlwh)
        # One projection of every track serves the gate and the correction.
        innovation = (
            self.kf.innovation(self._tracks.means, self._tracks.covariances)
            if len(batch) and len(self._tracks)
            else None
        )
        result = self._match(batch, det_xyah, queries, innovation)
        confirmed = self._apply_matches(result.matches, batch, det_xyah, queries, innovation)
        deleted = self._mark_missed(result.unmatched_tracks)
        self._initiate_tracks(result.unmatched_detections, batch, det_xyah, queries)
        if self.reentry.enabled:
            self._reenter(confirmed, deleted)
        self._remove(deleted)
        return self._output()

    # -- input -------------------------------------------------------------------------------
    def _prepare(self, dets, embeddings) -> DetectionBatch:
        """Validate, drop invalid rows (if configured), filter by confidence, run NMS.

        The returned batch carries the embeddings already in gallery form (unit length for the
        cosine metric), ready to be both queries and new gallery samples.
        """
        if isinstance(dets, DetectionBatch) or (
            isinstance(dets, (list, tuple)) and (len(dets) == 0 or isinstance(dets[0], Detection))
        ):
            if embeddings is not None:
                raise ValueError("pass embeddings inside the Detection objects, not separately")
            batch = (
                dets if isinstance(dets, DetectionBatch) else DetectionBatch.from_detections(dets)
            )
            raw = np.column_stack([batch.to_xyxy(), batch.scores, batch.class_ids])
            embeddings = batch.embeddings
            source_index = batch.source_index
        else:
            raw = np.asarray(dets, dtype=np.float64)
            if raw.size == 0 and raw.ndim <= 2:
                raw = raw.reshape(0, DETECTION_COLUMNS)
            if raw.ndim != 2 or raw.shape[1] != DETECTION_COLUMNS:
                raise ValueError(
                    f"dets must have shape (N, {DETECTION_COLUMNS}) [x1, y1, x2, y2, score, cls], "
                    f"got {raw.shape}"
                )
            source_index = None

        if embeddings is not None:
            embeddings = np.asarray(embeddings)
            if embeddings.ndim != 2 or len(embeddings) != len(raw):
                raise ValueError(
                    f"embeddings must have shape ({len(raw)}, D) for {len(raw)} detections, "
                    f"got {embeddings.shape}"
                )
            expected = self.gallery.embedding_dim
            if expected is not None and embeddings.shape[1] != expected:
                raise ValueError(
                    f"embeddings have dimension {embeddings.shape[1]} "
                    f"but this tracker uses {expected}"
                )
            if embeddings.shape[1] == 0:
                raise ValueError("embeddings must have dimension >= 1, got 0")

        # Row validity: finite, x2 > x1 and y2 > y1 (a NaN fails every comparison). The common
        # all-valid case is settled with two cheap counts; masks are only built when needed.
        count = len(raw)
        all_valid = (
            np.count_nonzero(np.isfinite(raw)) == raw.size
            and np.count_nonzero(raw[:, 2:4] > raw[:, 0:2]) == 2 * count
        )
        valid = None
        if not all_valid:
            valid = np.isfinite(raw).all(axis=1) & (raw[:, 2:4] > raw[:, 0:2]).all(axis=1)
            if not self.drop_invalid_boxes:
                row = int((~valid).nonzero()[0][0])
                raise ValueError(
                    f"detection row {row} is invalid (needs finite values, x2 > x1 and y2 > y1; "
                    f"set drop_invalid_boxes=True to drop such rows): {raw[row].tolist()}"
                )
        norms = None
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float32)
            if self.metric is DistanceMetric.COSINE:
                # Same expression as np.linalg.norm, so queries equal the reference's bit for bit.
                norms = np.sqrt((embeddings * embeddings).sum(axis=1))
                usable = np.isfinite(norms)
                usable &= norms > 0
            else:
                usable = np.isfinite(embeddings).all(axis=1)
            if np.count_nonzero(usable) != count:
                bad = ~usable if valid is None else valid & ~usable
                if np.count_nonzero(bad):
                    row = int(bad.nonzero()[0][0])
                    row = row if source_index is None else int(source_index[row])
                    raise ValueError(
                        f"embedding of detection row {row} is non-finite "
                        "or (for the cosine metric) zero"
                    )

        confident = raw[:, 4] >= self.min_confidence
        if valid is not None:
            confident &= valid
        candidates = confident.nonzero()[0]
        if not self._warned_low_confidence:
            self._warn_if_most_dropped(
                count if valid is None else int(np.count_nonzero(valid)), len(candidates)
            )
        if self.nms_max_overlap >= NO_SUPPRESSION_OVERLAP:
            # what the reference NMS returns at 1.0; the rows are gathered once, in this order
            order = raw[:, 4].take(candidates).argsort()[::-1]
        else:
            kept = raw.take(candidates, axis=0)
            order = non_max_suppression(
                xyxy_to_tlwh(kept[:, :4]),
                self.nms_max_overlap,
                kept[:, 4],
                kept[:, 5] if self.per_class else None,
            )
        selected = candidates.take(order)
        kept = raw.take(selected, axis=0)
        tlwh = kept[:, :4].copy()
        tlwh[:, 2:] -= kept[:, :2]
        queries = None
        if embeddings is not None:
            queries = embeddings.take(selected, axis=0)
            if norms is not None:
                queries /= norms.take(selected)[:, None]
        return DetectionBatch.trusted(
            tlwh,
            kept[:, 4].copy(),
            kept[:, 5].astype(np.int64),
            queries,
            selected if source_index is None else source_index.take(selected),
        )

    def _warn_if_most_dropped(self, valid_count: int, kept_count: int) -> None:
        dropped = valid_count - kept_count
        if dropped >= LOW_CONFIDENCE_WARN_MIN_DROPPED and 2 * dropped > valid_count:
            self._warned_low_confidence = True
            warnings.warn(
                f"DeepSortTracker: min_confidence={self.min_confidence:g} dropped {dropped} of "
                f"{valid_count} detections in frame {self.frame_count + 1}; if your detector's "
                "scores are on another scale, lower min_confidence (warned once per tracker)",
                LowConfidenceWarning,
                stacklevel=4,
            )

    # -- association -------------------------------------------------------------------------
    def _class_mismatch(
        self, track_rows: np.ndarray, batch: DetectionBatch, det_cols
    ) -> np.ndarray:
        return (
            self._tracks.ints[track_rows, _CLASS_ID][:, None] != batch.class_ids[det_cols][None, :]
        )

    def _match(
        self,
        batch: DetectionBatch,
        det_xyah: np.ndarray,
        queries: np.ndarray | None,
        innovation: Innovation | None,
    ) -> MatchResult:
        table = self._tracks
        time_since_update = table.ints[:, _TIME_SINCE_UPDATE]
        confirmed_mask = table.ints[:, _STATE] == _CONFIRMED
        confirmed = confirmed_mask.nonzero()[0]

        # Cascade cost of all confirmed tracks x all detections, computed once per frame.
        cascade_cost = np.zeros((len(confirmed), len(batch)))
        threshold = self.max_dist
        if len(confirmed) and len(batch):
            gating = squared_mahalanobis(innovation.take(confirmed), det_xyah)
            infeasible = gating > GATING_THRESHOLD
            if self.per_class:
                infeasible |= self._class_mismatch(confirmed, batch, slice(None))
            if queries is not None:
                cascade_cost = self.gallery.distance(
                    table.ints[:, _GALLERY_SLOT].take(confirmed),
                    queries,
                    candidate_mask=~infeasible,
                    prepared=True,
                )
            else:
                cascade_cost, threshold = gating, GATING_THRESHOLD
            cascade_cost[infeasible] = INFEASIBLE_COST
        cascade = matching_cascade(
            cascade_cost,
            threshold,
            self.max_age,
            time_since_update.take(confirmed),
            confirmed.tolist(),
        )

        # IoU stage: tentative tracks, then confirmed ones missed for exactly one frame.
        recent = time_since_update.tolist()
        iou_candidates = (~confirmed_mask).nonzero()[0].tolist() + [
            k for k in cascade.unmatched_tracks if recent[k] == 1
        ]
        stale = [k for k in cascade.unmatched_tracks if recent[k] != 1]
        remaining = cascade.unmatched_detections
        iou_cost = None
        if iou_candidates and remaining:
            candidates = np.array(iou_candidates)
            track_tlwh = table.means.take(candidates, axis=0)[
                :, :4
            ]  # a copy: safe to edit in place
            track_tlwh[:, 2] *= track_tlwh[:, 3]
            track_tlwh[:, :2] -= track_tlwh[:, 2:] / 2
            iou_cost = iou_cost_tlwh(track_tlwh, batch.tlwh.take(remaining, axis=0))
            # Only confirmed tracks seen one frame ago and tentative tracks (never older than one
            # frame: they die on their first miss) get here, so the reference's "stale track"
            # rule (time_since_update > 1 -> infeasible) never fires; kept for fidelity.
            stale_rows = time_since_update.take(candidates) > 1
            if np.count_nonzero(stale_rows):
                iou_cost[stale_rows] = INFEASIBLE_COST
            if self.per_class:
                iou_cost[self._class_mismatch(candidates, batch, remaining)] = INFEASIBLE_COST
        iou_result = min_cost_matching(iou_cost, self.max_iou_distance, iou_candidates, remaining)

        matches = cascade.matches + iou_result.matches
        unmatched_tracks = list(set(stale + iou_result.unmatched_tracks))
        return MatchResult(matches, unmatched_tracks, iou_result.unmatched_detections)

    # -- track management --------------------------------------------------------------------
    def _apply_matches(
        self, matches, batch: DetectionBatch, det_xyah, queries, innovation
    ) -> np.ndarray:
        """Kalman-correct matched tracks and store their embeddings; returns the rows of the
        tracks confirmed by this frame's hit."""
        table = self._tracks
        slots = table.column(_GALLERY_SLOT)
        if self.repeat_last_embedding and queries is not None:
            self.gallery.repeat_newest(slots[table.column(_STATE) == _CONFIRMED])
        if not matches:
            return np.zeros(0, dtype=np.int64)
        rows, cols = np.array(matches, dtype=np.int64).T
        new_means, new_blocks = self.kf.update(
            table.means.take(rows, axis=0),
            table.covariances.take(rows, axis=0),
            det_xyah.take(cols, axis=0),
            innovation.take(rows),
        )
        table.means[rows] = new_means
        table.covariances[rows] = new_blocks
        matched = table.ints.take(rows, axis=0)
        matched[:, _HITS] += 1
        matched[:, _TIME_SINCE_UPDATE] = 0
        matched[:, _CLASS_ID] = batch.class_ids.take(cols)
        matched[:, _DETECTION_INDEX] = batch.source_index.take(cols)
        promote = matched[:, _STATE] == _TENTATIVE
        promote &= matched[:, _HITS] >= self.n_init
        matched[promote, _STATE] = _CONFIRMED
        table.ints[rows] = matched
        table.scores[rows] = batch.scores.take(cols)
        if queries is not None:
            self.gallery.add(matched[:, _GALLERY_SLOT], queries.take(cols, axis=0), prepared=True)
        return rows[promote]

    def _mark_missed(self, unmatched_tracks: list[int]) -> np.ndarray:
        """Rows of tracks to delete: tentative ones missed once, confirmed ones missed too long."""
        if not unmatched_tracks:
            return np.zeros(0, dtype=np.int64)
        missed = np.array(unmatched_tracks, dtype=np.int64)
        ints = self._tracks.ints.take(missed, axis=0)
        dead = ints[:, _STATE] == _TENTATIVE
        dead |= ints[:, _TIME_SINCE_UPDATE] > self.max_age
        return missed[dead]

    def _initiate_tracks(
        self, detection_indices: list[int], batch: DetectionBatch, det_xyah, queries
    ) -> None:
        if not detection_indices:
            return
        cols = np.array(detection_indices, dtype=np.int64)
        count = len(cols)
        means, covariances = self.kf.initiate(det_xyah.take(cols, axis=0))
        slots = self.gallery.allocate(count)
        if queries is not None:
            self.gallery.add(slots, queries.take(cols, axis=0), prepared=True)
        ints = np.empty((count, _INT_FIELDS), dtype=np.int64)
        ints[:, _TRACK_ID] = np.arange(self._next_id, self._next_id + count)
        ints[:, _STATE] = _TENTATIVE
        ints[:, _HITS] = 1
        ints[:, _AGE] = 1
        ints[:, _TIME_SINCE_UPDATE] = 0
        ints[:, _CLASS_ID] = batch.class_ids.take(cols)
        ints[:, _DETECTION_INDEX] = batch.source_index.take(cols)
        ints[:, _GALLERY_SLOT] = slots
        self._tracks.append(means, covariances, batch.scores.take(cols), ints)
        self._next_id += count

    def _gallery_means(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), D)`` mean of each track's stored embeddings (NaN rows: none stored)."""
        slots = self._tracks.ints[rows, _GALLERY_SLOT]
        means = np.full((len(slots), self.gallery.embedding_dim or 1), np.nan)
        if self.gallery.embedding_dim is None:  # no embedding stored yet
            return means
        stored = (self.gallery.sample_count(slots) > 0).nonzero()[0]
        for k, slot in zip(stored.tolist(), slots[stored].tolist()):  # a few tracks per event
            means[k] = self.gallery.samples(slot).mean(axis=0, dtype=np.float64)
        return means

    def _reenter(self, confirmed: np.ndarray, deleted: np.ndarray) -> None:
        """Re-entry gallery: remember the confirmed tracks deleted this frame, then let the
        tracks confirmed this frame claim old ids (see :mod:`reidsort.tracking.reentry`)."""
        ints = self._tracks.ints
        gone = deleted[ints[deleted, _STATE] == _CONFIRMED]
        if len(gone):
            self.reentry.remember(
                ints[gone, _TRACK_ID],
                self._gallery_means(gone),
                self.frame_count,
                ints[gone, _CLASS_ID],
            )
        if len(confirmed) == 0 or len(self.reentry) == 0:
            return
        alive = np.ones(len(ints), dtype=bool)
        alive[deleted] = False
        old_ids = self.reentry.claim(
            self._gallery_means(confirmed),
            self.frame_count,
            ints[alive, _TRACK_ID],
            ints[confirmed, _CLASS_ID],
        )
        claimed = old_ids != NO_CLAIM
        ints[confirmed[claimed], _TRACK_ID] = old_ids[claimed]

    def _remove(self, rows: np.ndarray) -> None:
        table = self._tracks
        if len(rows) == 0:
            self.last_deleted_track_ids = rows
            return
        deleted = table.ints.take(rows, axis=0)
        self.last_deleted_track_ids = deleted[:, _TRACK_ID]
        self.gallery.release(deleted[:, _GALLERY_SLOT])
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
        if len(rows) == 0:
            return np.zeros((0, OUTPUT_COLUMNS))
        out = np.empty((len(rows), OUTPUT_COLUMNS), dtype=np.float64)
        xyah = table.means.take(rows, axis=0)
        half_wh = xyah[:, 2:4] / 2
        half_wh[:, 0] *= xyah[:, 3]  # w / 2 = a * h / 2
        np.subtract(xyah[:, 0:2], half_wh, out=out[:, 0:2])
        np.add(xyah[:, 0:2], half_wh, out=out[:, 2:4])
        selected = ints.take(rows, axis=0)
        out[:, _OUT_TRACK_ID] = selected[:, _TRACK_ID]
        out[:, _OUT_SCORE] = table.scores.take(rows)
        out[:, _OUT_CLASS_ID:] = selected[:, _CLASS_ID : _DETECTION_INDEX + 1]
        return out
