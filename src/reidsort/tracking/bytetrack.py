"""ByteTrack (Zhang et al., ECCV 2022), reference-faithful and vectorised.

Algorithm (ifzhang/ByteTrack ``yolox/tracker/byte_tracker.py``), per frame:

1. Split detections by score: *high* ``score > track_thresh``, *low*
   ``low_thresh < score < track_thresh``; the rest are ignored. Keeping the low-score boxes for a
   second chance is BYTE's point: an occluded person's box scores low, and dropping it breaks the
   track.
2. Kalman-predict the *pool*, i.e. the activated tracked tracks and the lost tracks (a lost
   track's height velocity is zeroed first, so a box keeps its size while unseen).
   Unconfirmed tracks (born in the previous frame) are not predicted, as in the reference.
   An optional camera-motion ``warp`` is then applied to every track.
3. First association: pool x high boxes, cost ``1 - IoU`` fused with the detection score
   (``1 - IoU * score``, ``fuse_score``), assignment up to ``match_thresh``. A matched lost
   track is *re-activated* with its old id.
4. Second association: the pool's still unmatched *tracked* tracks x low boxes, plain
   ``1 - IoU`` up to ``second_match_thresh`` (0.5). Tracks still unmatched become lost.
5. Unconfirmed tracks x the high boxes left over, fused cost up to
   ``unconfirmed_match_thresh`` (0.7): matched ones are activated (confirmed on their second
   hit), the others are removed.
6. Leftover high boxes scoring ``>= new_track_thresh`` (default ``track_thresh + 0.1``) start
   tracks; in the tracker's first frame they are activated at once, later they wait for step 5.
7. Lost tracks unseen for more than ``max_time_lost = int(frame_rate / 30 * track_buffer)``
   frames are removed. As in the reference (and BoxMOT), such a track stays in the lost list
   until the end of the next frame, so it gets one more chance in that frame's first
   association, and a track re-found after its removal disappears as soon as it is lost again.
8. Duplicates: a tracked and a lost track with ``1 - IoU < duplicate_iou_distance`` (0.15) are
   one object; the one tracked for fewer frames is dropped (the tracked one on a tie).
9. Output: the activated tracked tracks, with their Kalman-corrected box and the matched
   detection's score, optionally filtered by area and aspect ratio (the reference's MOT
   evaluation scripts do that outside the tracker).

All per-track data lives in stacked arrays, tracked tracks first then lost tracks, each group in
the reference's list order (the order in which tracks joined the list), so that assignment ties
and new ids come out in the reference's order while every numerical step (Kalman predict and
update, IoU and cost matrices, duplicate search) runs once per frame for all tracks.

:class:`ByteTrackTracker` is also the base of :class:`reidsort.tracking.botsort.BotSortTracker`,
which swaps the motion model (hooks ``_initiate`` ... ``_warp``) and adds appearance to the
cost (hook ``_fuse_appearance``), and of :class:`reidsort.tracking.jde_tracker.JDETracker`
(FairMOT), which replaces steps 3-6 (hook ``_associate``) and keeps the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from reidsort.tracking.detection import (
    DETECTION_COLUMNS,
    invalid_box_mask,
    tlwh_to_xyah,
    tlwh_to_xyxy,
    xyah_to_tlwh,
    xyxy_to_tlwh,
)
from reidsort.tracking.iou_matching import iou_tlwh
from reidsort.tracking.kalman_filter import (
    BLOCK_ROWS,
    MEASUREMENT_DIM,
    STATE_DIM,
    KalmanFilterXYAH,
    blocks_to_covariance,
    check_warp,
    warp_xyah,
)
from reidsort.tracking.linear_assignment import INFEASIBLE_COST, MatchResult, min_cost_matching
from reidsort.tracking.tracker import OUTPUT_COLUMNS, OutputColumn
from reidsort.tracking.validation import require as _require

#: Track ids start here and only increase (MOTChallenge wants positive integers).
FIRST_TRACK_ID: int = 1
#: det_index of output rows without a detection (never produced by ByteTrack's output policy).
NO_DETECTION: int = -1
#: Reference frame rate of ``track_buffer``: the buffer is ``int(frame_rate / 30 * track_buffer)``.
REFERENCE_FRAME_RATE: float = 30.0
#: Default offset of the new-track threshold over the high threshold (byte_tracker.py:
#: ``det_thresh = track_thresh + 0.1``).
NEW_TRACK_THRESH_OFFSET: float = 0.1
#: Input rows with 5 columns (no class) get this class.
DEFAULT_CLASS_ID: int = 0
#: ``removed_frame`` of a track that was never removed.
_NEVER: int = -1


class ByteTrackState(IntEnum):
    """Which of ByteTrack's two live lists a track is in (values as in the reference).

    The reference's ``New`` (0) never outlives a frame and ``Removed`` (3) tracks are deleted
    here, so a live track is either TRACKED (matched this frame, or just born) or LOST.
    """

    TRACKED = 1
    LOST = 2


_TRACKED, _LOST = int(ByteTrackState.TRACKED), int(ByteTrackState.LOST)

# Columns of the integer track table.
(
    _TRACK_ID,
    _STATE,
    _ACTIVATED,
    _START_FRAME,
    _LAST_FRAME,
    _CLASS_ID,
    _DET_INDEX,
    _REMOVED_FRAME,
    _LIST_ORDER,
) = range(9)
_INT_FIELDS = 9

_OUT_TRACK_ID, _OUT_SCORE, _OUT_CLASS_ID, _OUT_DET_INDEX = (
    int(OutputColumn.TRACK_ID),
    int(OutputColumn.SCORE),
    int(OutputColumn.CLASS_ID),
    int(OutputColumn.DETECTION_INDEX),
)


@dataclass(frozen=True)
class ByteTrackSnapshot:
    """One live track at the moment it was read (copies, safe to keep)."""

    track_id: int
    state: ByteTrackState
    is_activated: bool
    tlwh: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray
    start_frame: int
    last_frame: int
    class_id: int
    score: float
    detection_index: int

    @property
    def xyxy(self) -> np.ndarray:
        return tlwh_to_xyxy(self.tlwh)


@dataclass
class FrameDetections:
    """One frame's usable detections (invalid rows dropped), aligned arrays.

    ``source_index`` is each row's index in the caller's ``dets``; ``features`` are unit-length
    embeddings (BoT-SORT) with ``has_feature`` False where an embedding was unusable.
    """

    tlwh: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    source_index: np.ndarray
    features: np.ndarray | None = None
    has_feature: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tlwh)


class Association(NamedTuple):
    """What one frame's associations decided (rows index the track table, columns the frame's
    usable detections)."""

    #: matched (row, column) pairs whose detection embeddings update the track's feature
    with_features: list[tuple[int, int]]
    #: matched pairs whose embeddings are not stored (ByteTrack's low-score association)
    without_features: list[tuple[int, int]]
    #: tracked rows that found no detection: they become lost
    newly_lost: np.ndarray
    #: unconfirmed rows that found no detection: they are removed
    removed_unconfirmed: np.ndarray
    #: unconfirmed rows that were matched: they are activated (confirmed)
    confirmed: np.ndarray
    #: columns that start new tracks, in column order
    births: np.ndarray


class _TrackTable:
    """All live tracks as aligned arrays: tracked tracks first, then lost, each in list order."""

    def __init__(self, empty_covariances: np.ndarray) -> None:
        self.means = np.zeros((0, STATE_DIM))
        self.covariances = empty_covariances
        self.scores = np.zeros(0)
        self.ints = np.zeros((0, _INT_FIELDS), dtype=np.int64)
        self.features: np.ndarray | None = None  # (T, D) unit vectors once any were stored
        self.has_feature = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.ints)

    def take(self, rows: np.ndarray) -> None:
        """Keep ``rows`` (indices or mask), in that order."""
        self.means, self.covariances = self.means[rows], self.covariances[rows]
        self.scores, self.ints = self.scores[rows], self.ints[rows]
        self.has_feature = self.has_feature[rows]
        if self.features is not None:
            self.features = self.features[rows]

    def append(self, means, covariances, scores, ints, features=None, has_feature=None) -> None:
        count = len(ints)
        if features is not None and self.features is None:
            self.features = np.zeros((len(self), features.shape[1]), dtype=features.dtype)
        if self.features is not None:
            if features is None:
                features = np.zeros((count, self.features.shape[1]), dtype=self.features.dtype)
                has_feature = np.zeros(count, dtype=bool)
            self.features = np.concatenate([self.features, features])
        self.has_feature = np.concatenate(
            [self.has_feature, np.zeros(count, bool) if has_feature is None else has_feature]
        )
        self.means = np.concatenate([self.means, means])
        self.covariances = np.concatenate([self.covariances, covariances])
        self.scores = np.concatenate([self.scores, scores])
        self.ints = np.concatenate([self.ints, ints])


class ByteTrackTracker:
    """ByteTrack with the reference's MOT17 settings; knobs are plain keyword arguments.

    Parameters
    ----------
    track_thresh:
        High/low split: boxes scoring above it take part in the first association.
        ByteTrack paper (sec. 4.1) and ``tools/track.py`` for MOT17: 0.6.
    low_thresh:
        Boxes scoring at or below it are ignored (``byte_tracker.py``: 0.1).
    new_track_thresh:
        A leftover high box scoring at least this starts a track. None (default) means
        ``track_thresh + 0.1`` (``byte_tracker.py`` ``det_thresh``; paper: 0.7).
    match_thresh:
        First-association ceiling on the (score-fused) IoU cost. Paper: matches with IoU below
        0.2 rejected, i.e. 0.8 (also ``tools/demo_track.py`` and BoxMOT; ``tools/track.py``'s
        command-line default is 0.9).
    second_match_thresh:
        Ceiling of the low-score association on ``1 - IoU`` (``byte_tracker.py``: 0.5).
    unconfirmed_match_thresh:
        Ceiling of the unconfirmed-track association (``byte_tracker.py``: 0.7).
    track_buffer:
        Frames a lost track is kept at 30 fps (``tools/track.py``: 30).
    frame_rate:
        The sequence's frame rate: ``max_time_lost = int(frame_rate / 30 * track_buffer)``;
        None = 30, the reference's default (``task=track`` passes each source's own rate).
    fuse_score:
        Multiply IoU by the detection score in the first association (reference: on unless
        ``--mot20``).
    fuse_score_unconfirmed:
        The same for the unconfirmed-track association; None (default) follows ``fuse_score``
        as in the reference.
    duplicate_iou_distance:
        A tracked and a lost track closer than this ``1 - IoU`` are duplicates (0.15).
    min_box_area, aspect_ratio_thresh:
        Output filter: a box is reported only if ``w * h > min_box_area`` and, when
        ``aspect_ratio_thresh`` is not None, ``w / h <= aspect_ratio_thresh``. Defaults 0 and
        None (no filtering, as BoxMOT's tracker). ByteTrack's MOT evaluation uses 100 and 1.6,
        its demo 10 and 1.6 (pedestrian-only rules: a wide box is not a person).
    output_unconfirmed:
        Also report tracks born this frame (not yet activated). False in ByteTrack.
    per_class:
        If True a track only matches detections of its class (and duplicates are searched
        within a class). False reproduces the class-agnostic reference; the output class is
        then that of the last matched detection.
    """

    #: State entries zeroed before predicting a track that is not tracked (ByteTrack: the
    #: height velocity ``vh`` of the ``xyah`` state, ``STrack.multi_predict``).
    _LOST_ZEROED_VELOCITY: tuple[int, ...] = (7,)

    def __init__(
        self,
        track_thresh: float = 0.6,
        low_thresh: float = 0.1,
        new_track_thresh: float | None = None,
        match_thresh: float = 0.8,
        second_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        track_buffer: int = 30,
        frame_rate: float | None = REFERENCE_FRAME_RATE,
        fuse_score: bool = True,
        fuse_score_unconfirmed: bool | None = None,
        duplicate_iou_distance: float = 0.15,
        min_box_area: float = 0.0,
        aspect_ratio_thresh: float | None = None,
        output_unconfirmed: bool = False,
        per_class: bool = False,
    ) -> None:
        for name, value in (("track_thresh", track_thresh), ("low_thresh", low_thresh)):
            _require(np.isfinite(value), f"{name} must be finite, got {value}")
        _require(
            low_thresh <= track_thresh,
            f"low_thresh must be <= track_thresh, got {low_thresh} > {track_thresh}",
        )
        if new_track_thresh is None:
            new_track_thresh = track_thresh + NEW_TRACK_THRESH_OFFSET
        _require(
            np.isfinite(new_track_thresh),
            f"new_track_thresh must be finite, got {new_track_thresh}",
        )
        for name, value in (
            ("match_thresh", match_thresh),
            ("second_match_thresh", second_match_thresh),
            ("unconfirmed_match_thresh", unconfirmed_match_thresh),
            ("duplicate_iou_distance", duplicate_iou_distance),
        ):
            _require(
                np.isfinite(value) and 0 <= value <= 1, f"{name} must be in [0, 1], got {value}"
            )
        _require(
            int(track_buffer) == track_buffer and track_buffer >= 0,
            f"track_buffer must be an integer >= 0, got {track_buffer}",
        )
        if frame_rate is None:
            frame_rate = REFERENCE_FRAME_RATE
        _require(
            np.isfinite(frame_rate) and frame_rate > 0, f"frame_rate must be > 0, got {frame_rate}"
        )
        _require(
            np.isfinite(min_box_area) and min_box_area >= 0,
            f"min_box_area must be >= 0, got {min_box_area}",
        )
        _require(
            aspect_ratio_thresh is None or aspect_ratio_thresh > 0,
            f"aspect_ratio_thresh must be > 0 or None, got {aspect_ratio_thresh}",
        )
        self.track_thresh = float(track_thresh)
        self.low_thresh = float(low_thresh)
        self.new_track_thresh = float(new_track_thresh)
        self.match_thresh = float(match_thresh)
        self.second_match_thresh = float(second_match_thresh)
        self.unconfirmed_match_thresh = float(unconfirmed_match_thresh)
        self.track_buffer = int(track_buffer)
        self.frame_rate = float(frame_rate)
        self.max_time_lost = int(self.frame_rate / REFERENCE_FRAME_RATE * self.track_buffer)
        self.fuse_score = bool(fuse_score)
        self.fuse_score_unconfirmed = (
            self.fuse_score if fuse_score_unconfirmed is None else bool(fuse_score_unconfirmed)
        )
        self.duplicate_iou_distance = float(duplicate_iou_distance)
        self.min_box_area = float(min_box_area)
        self.aspect_ratio_thresh = (
            None if aspect_ratio_thresh is None else float(aspect_ratio_thresh)
        )
        self.output_unconfirmed = bool(output_unconfirmed)
        self.per_class = bool(per_class)
        self._init_motion_model()
        self.reset()

    # -- motion model (overridden by BoT-SORT) -------------------------------------------------
    def _init_motion_model(self) -> None:
        self.kf = KalmanFilterXYAH()

    def _empty_covariances(self) -> np.ndarray:
        return np.zeros((0, BLOCK_ROWS, MEASUREMENT_DIM))

    def _initiate(self, tlwh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.kf.initiate(tlwh_to_xyah(tlwh))

    def _predict(self, means: np.ndarray, covariances: np.ndarray):
        return self.kf.predict(means, covariances)

    def _correct(self, means: np.ndarray, covariances: np.ndarray, tlwh: np.ndarray):
        return self.kf.update(means, covariances, tlwh_to_xyah(tlwh))

    def _warp(self, means: np.ndarray, covariances: np.ndarray, warp: np.ndarray):
        return warp_xyah(means, covariances, warp)

    def _means_to_tlwh(self, means: np.ndarray) -> np.ndarray:
        return xyah_to_tlwh(means[:, :MEASUREMENT_DIM])

    def _full_covariance(self, covariances: np.ndarray) -> np.ndarray:
        return blocks_to_covariance(covariances)

    # -- appearance (overridden by BoT-SORT) ---------------------------------------------------
    _uses_appearance: bool = False

    def _fuse_appearance(
        self,
        cost: np.ndarray,
        iou_distance: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        frame: FrameDetections,
    ) -> np.ndarray:
        """Combine the motion cost of tracks ``rows`` x detections ``cols`` with appearance."""
        return cost

    def _store_features(self, rows: np.ndarray, cols: np.ndarray, frame: FrameDetections) -> None:
        """Remember the embeddings of detections ``cols`` matched to tracks ``rows``."""

    # -- lifecycle events (used by BoT-SORT's re-entry gallery) --------------------------------
    def _tracks_expired(self, rows: np.ndarray) -> None:
        """Rows of the lost tracks removed this frame for being unseen too long (the table
        still holds them). Called before :meth:`_tracks_activated` of the same frame."""

    def _tracks_activated(self, rows: np.ndarray, alive: np.ndarray) -> None:
        """Rows of the unconfirmed tracks activated (confirmed) this frame, after their
        features were stored; may change their ids. ``alive`` marks the rows that stay."""

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all tracks and restart ids at 1 and the frame count at 0."""
        self._tracks = _TrackTable(self._empty_covariances())
        self._next_id = FIRST_TRACK_ID
        self._next_order = 0
        self._embedding_dim: int | None = None
        self.frame_count = 0

    @property
    def num_tracks(self) -> int:
        """Live tracks (tracked, unconfirmed and lost)."""
        return len(self._tracks)

    @property
    def track_ids(self) -> np.ndarray:
        """Ids of all live tracks, tracked first then lost, in list order."""
        return self._tracks.ints[:, _TRACK_ID].copy()

    @property
    def tracks(self) -> list[ByteTrackSnapshot]:
        """Snapshots of all live tracks, tracked first then lost."""
        table = self._tracks
        tlwh = self._means_to_tlwh(table.means)
        full = self._full_covariance(table.covariances)
        return [
            ByteTrackSnapshot(
                track_id=int(ints[_TRACK_ID]),
                state=ByteTrackState(int(ints[_STATE])),
                is_activated=bool(ints[_ACTIVATED]),
                tlwh=tlwh[i].copy(),
                mean=table.means[i].copy(),
                covariance=full[i].copy(),
                start_frame=int(ints[_START_FRAME]),
                last_frame=int(ints[_LAST_FRAME]),
                class_id=int(ints[_CLASS_ID]),
                score=float(table.scores[i]),
                detection_index=int(ints[_DET_INDEX]),
            )
            for i, ints in enumerate(table.ints)
        ]

    # -- one frame -----------------------------------------------------------------------------
    def update(
        self,
        dets: np.ndarray,
        embeddings: np.ndarray | None = None,
        *,
        warp: np.ndarray | None = None,
    ) -> np.ndarray:
        """Track one frame; return ``(M, 8)`` ``[x1, y1, x2, y2, track_id, score, cls, det_index]``.

        ``dets`` is ``(N, 6)`` ``[x1, y1, x2, y2, score, cls]`` (or ``(N, 5)``, class 0); rows with
        non-finite values, non-positive width/height or a NaN score are dropped. ``embeddings``
        ``(N, D)`` are ignored by ByteTrack (used by BoT-SORT). ``warp`` is an optional ``(2, 3)``
        affine camera motion from the previous frame to this one, applied to the predicted
        tracks. Each output row is a track matched this frame: its Kalman-corrected box, the
        matched detection's score, class and row in ``dets`` (see :class:`OutputColumn`).
        """
        frame = self._prepare(dets, embeddings)
        if warp is not None:
            warp = check_warp(warp)
        self.frame_count += 1
        table = self._tracks
        lost_at_start = table.ints[:, _STATE] == _LOST
        activated = table.ints[:, _ACTIVATED] == 1
        pool = (lost_at_start | activated).nonzero()[0]
        unconfirmed = (~lost_at_start & ~activated).nonzero()[0]

        self._predict_pool(pool, lost_at_start)
        if warp is not None and len(table):
            table.means, table.covariances = self._warp(table.means, table.covariances, warp)
        # IoU of every track (after predict and warp) with every detection, once: each
        # association below reads rows that no earlier association of this frame has corrected.
        iou = (
            iou_tlwh(self._means_to_tlwh(table.means), frame.tlwh)
            if len(table) and len(frame)
            else None
        )

        step = self._associate(pool, unconfirmed, lost_at_start, iou, frame)
        matched = step.with_features + step.without_features
        self._apply_matches(matched, frame)
        self._store_features(*_pairs(step.with_features), frame)

        ints = table.ints
        # Lost tracks matched this frame, in match order (only the first association sees them).
        refound = np.array([row for row, _ in matched if lost_at_start[row]], dtype=np.int64)
        newly_lost, births = step.newly_lost, step.births
        ints[newly_lost, _STATE] = _LOST
        ints[newly_lost, _LIST_ORDER] = self._orders(len(newly_lost))
        # Lost at the start of the frame, not re-found, unseen too long: removed (kept in the
        # lost list until the next frame, as in the reference, see the module docstring).
        timed_out = (
            lost_at_start
            & (ints[:, _STATE] == _LOST)
            & (self.frame_count - ints[:, _LAST_FRAME] > self.max_time_lost)
            & (ints[:, _REMOVED_FRAME] == _NEVER)
        )
        ints[timed_out, _REMOVED_FRAME] = self.frame_count
        keep = np.ones(len(table), dtype=bool)
        keep[step.removed_unconfirmed] = False
        expired = (
            (ints[:, _STATE] == _LOST)
            & (ints[:, _REMOVED_FRAME] != _NEVER)
            & (ints[:, _REMOVED_FRAME] < self.frame_count)
        )
        keep &= ~expired
        self._tracks_expired(expired.nonzero()[0])
        self._tracks_activated(step.confirmed, keep)
        self._initiate_tracks(births, frame)
        # Tracks join the tracked list in the reference's order: new tracks, then re-found ones.
        ints = table.ints
        ints[refound, _LIST_ORDER] = self._orders(len(refound))
        keep = np.concatenate([keep, np.ones(len(births), dtype=bool)])
        tlwh = self._means_to_tlwh(table.means)
        keep &= ~self._duplicates(keep, tlwh)
        rows = keep.nonzero()[0]
        rows = rows[np.lexsort((ints[rows, _LIST_ORDER], ints[rows, _STATE]))]
        table.take(rows)
        return self._output(tlwh.take(rows, axis=0))

    def _associate(
        self,
        pool: np.ndarray,
        unconfirmed: np.ndarray,
        lost_at_start: np.ndarray,
        iou: np.ndarray | None,
        frame: FrameDetections,
    ) -> Association:
        """ByteTrack's three associations (module docstring, steps 3-6); overridden by JDE.

        ``pool`` are the rows of the activated tracked and the lost tracks (predicted and
        warped), ``unconfirmed`` those of the tracks born last frame, ``iou`` all tracks x all
        detections (None when either is empty)."""
        scores = frame.scores
        high = (scores > self.track_thresh).nonzero()[0]
        low = (scores < self.track_thresh).nonzero()[0]  # all rows are above low_thresh

        # First association: pool x high boxes.
        cost = self._cost(pool, high, iou, frame, self.fuse_score, appearance=True)
        first = _match(cost, self.match_thresh, pool, high)

        # Second association: the pool's unmatched tracked tracks x low boxes, IoU only.
        unmatched_pool = np.array(sorted(first.unmatched_tracks), dtype=np.int64)
        remaining = unmatched_pool[~lost_at_start[unmatched_pool]]
        cost = self._cost(remaining, low, iou, frame, fuse=False, appearance=False)
        second = _match(cost, self.second_match_thresh, remaining, low)

        # Unconfirmed tracks x the high boxes nobody took.
        leftover = np.array(sorted(first.unmatched_detections), dtype=np.int64)
        cost = self._cost(
            unconfirmed, leftover, iou, frame, self.fuse_score_unconfirmed, appearance=True
        )
        third = _match(cost, self.unconfirmed_match_thresh, unconfirmed, leftover)
        births = np.array(sorted(third.unmatched_detections), dtype=np.int64)
        return Association(
            with_features=first.matches + third.matches,
            without_features=second.matches,
            newly_lost=np.array(sorted(second.unmatched_tracks), dtype=np.int64),
            removed_unconfirmed=np.array(third.unmatched_tracks, dtype=np.int64),
            confirmed=_pairs(third.matches)[0],
            births=births[scores[births] >= self.new_track_thresh],
        )

    # -- steps ---------------------------------------------------------------------------------
    def _prepare(self, dets, embeddings) -> FrameDetections:
        """Validate the input and drop the rows no tracker could use."""
        raw = np.asarray(dets, dtype=np.float64)
        if raw.size == 0 and raw.ndim <= 2:
            raw = raw.reshape(0, DETECTION_COLUMNS)
        if raw.ndim != 2 or raw.shape[1] not in (DETECTION_COLUMNS - 1, DETECTION_COLUMNS):
            raise ValueError(
                "dets must have shape (N, 6) [x1, y1, x2, y2, score, cls] or (N, 5) "
                f"[x1, y1, x2, y2, score], got {raw.shape}"
            )
        count = len(raw)
        if embeddings is not None:
            embeddings = np.asarray(embeddings)
            if embeddings.ndim != 2 or len(embeddings) != count:
                raise ValueError(
                    f"embeddings must have shape ({count}, D) for {count} detections, "
                    f"got {embeddings.shape}"
                )
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in rows dropped here
            tlwh = xyxy_to_tlwh(raw[:, :4])
        if raw.shape[1] == DETECTION_COLUMNS:
            class_column = raw[:, 5]
        else:
            class_column = np.full(count, float(DEFAULT_CLASS_ID))
        # Rows at or below low_thresh take part in no association: dropped with the invalid ones.
        # The common all-valid frame is settled with two cheap counts.
        usable = raw[:, 4] > self.low_thresh
        if not (
            np.count_nonzero(np.isfinite(raw)) == raw.size
            and np.count_nonzero(tlwh[:, 2:4] > 0) == 2 * count
        ):
            usable &= ~invalid_box_mask(tlwh, raw[:, 4])
            usable &= np.isfinite(class_column)
        rows = usable.nonzero()[0]
        frame = FrameDetections(
            tlwh.take(rows, axis=0),
            raw[rows, 4],
            class_column[rows].astype(np.int64),
            rows,
        )
        if embeddings is not None and self._uses_appearance:
            self._prepare_features(frame, embeddings)
        return frame

    def _prepare_features(self, frame: FrameDetections, embeddings: np.ndarray) -> None:
        """Unit-length embeddings of the kept rows; zero or non-finite ones are marked unusable."""
        dim = embeddings.shape[1]
        if dim == 0:
            raise ValueError("embeddings must have dimension >= 1, got 0")
        if self._embedding_dim is not None and dim != self._embedding_dim:
            raise ValueError(
                f"embeddings have dimension {dim} but this tracker uses {self._embedding_dim}"
            )
        self._embedding_dim = dim
        features = np.asarray(embeddings, dtype=np.float32).take(frame.source_index, axis=0)
        with np.errstate(invalid="ignore", over="ignore"):
            norms = np.sqrt((features * features).sum(axis=1))
        usable = np.isfinite(norms) & (norms > 0)
        features = np.where(usable[:, None], features, 0.0).astype(np.float32)
        features[usable] /= norms[usable, None]
        frame.features, frame.has_feature = features, usable

    def _predict_pool(self, pool: np.ndarray, lost_at_start: np.ndarray) -> None:
        if len(pool) == 0:
            return
        table = self._tracks
        means = table.means.take(pool, axis=0)
        lost = lost_at_start[pool]
        for column in self._LOST_ZEROED_VELOCITY:
            means[lost, column] = 0.0
        table.means[pool], table.covariances[pool] = self._predict(
            means, table.covariances.take(pool, axis=0)
        )

    def _cost(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        iou_all: np.ndarray | None,
        frame: FrameDetections,
        fuse: bool,
        appearance: bool,
    ) -> np.ndarray | None:
        """Cost of tracks ``rows`` x detections ``cols``: ``1 - IoU``, optionally score-fused
        (``1 - IoU * score``) and combined with appearance; other classes infeasible (per_class).
        ``iou_all`` is the IoU of all tracks x all detections; None when either side is empty."""
        if len(rows) == 0 or len(cols) == 0:
            return None
        iou = iou_all.take(rows, axis=0).take(cols, axis=1)
        iou_distance = 1.0 - iou
        if fuse:
            iou *= frame.scores.take(cols)[None, :]
            cost = np.subtract(1.0, iou, out=iou)
        else:
            cost = iou_distance.copy()
        if appearance and self._uses_appearance:
            cost = self._fuse_appearance(cost, iou_distance, rows, cols, frame)
        if self.per_class:
            mismatch = self._tracks.ints[rows, _CLASS_ID][:, None] != frame.class_ids[cols][None, :]
            cost[mismatch] = INFEASIBLE_COST
        return cost

    def _apply_matches(self, matches: list[tuple[int, int]], frame: FrameDetections) -> None:
        """Kalman-correct all matched tracks in one call and record their detections."""
        if not matches:
            return
        rows, cols = _pairs(matches)
        table = self._tracks
        table.means[rows], table.covariances[rows] = self._correct(
            table.means.take(rows, axis=0),
            table.covariances.take(rows, axis=0),
            frame.tlwh.take(cols, axis=0),
        )
        ints = table.ints
        ints[rows, _STATE] = _TRACKED
        ints[rows, _ACTIVATED] = 1
        ints[rows, _LAST_FRAME] = self.frame_count
        ints[rows, _DET_INDEX] = frame.source_index[cols]
        if not self.per_class:
            ints[rows, _CLASS_ID] = frame.class_ids[cols]
        table.scores[rows] = frame.scores[cols]

    def _initiate_tracks(self, cols: np.ndarray, frame: FrameDetections) -> None:
        count = len(cols)
        if count == 0:
            return
        means, covariances = self._initiate(frame.tlwh.take(cols, axis=0))
        ints = np.empty((count, _INT_FIELDS), dtype=np.int64)
        ints[:, _TRACK_ID] = np.arange(self._next_id, self._next_id + count)
        ints[:, _STATE] = _TRACKED
        # In the tracker's first frame a track is activated at once (byte_tracker.py activate).
        ints[:, _ACTIVATED] = int(self.frame_count == 1)
        ints[:, _START_FRAME] = self.frame_count
        ints[:, _LAST_FRAME] = self.frame_count
        ints[:, _CLASS_ID] = frame.class_ids[cols]
        ints[:, _DET_INDEX] = frame.source_index[cols]
        ints[:, _REMOVED_FRAME] = _NEVER
        ints[:, _LIST_ORDER] = self._orders(count)
        features = has_feature = None
        if frame.features is not None:
            features, has_feature = frame.features[cols], frame.has_feature[cols]
        self._tracks.append(means, covariances, frame.scores[cols], ints, features, has_feature)
        self._next_id += count

    def _duplicates(self, alive: np.ndarray, tlwh: np.ndarray) -> np.ndarray:
        """Rows to drop: of each tracked/lost pair closer than ``duplicate_iou_distance``, the
        one tracked for fewer frames (``last_frame - start_frame``), the tracked one on a tie.
        ``tlwh`` holds every track's current box."""
        ints = self._tracks.ints
        state = ints[:, _STATE]
        tracked = (alive & (state == _TRACKED)).nonzero()[0]
        lost = (alive & (state == _LOST)).nonzero()[0]
        drop = np.zeros(len(ints), dtype=bool)
        if len(tracked) == 0 or len(lost) == 0:
            return drop
        close = 1.0 - iou_tlwh(tlwh[tracked], tlwh[lost]) < self.duplicate_iou_distance
        if self.per_class:
            close &= ints[tracked, _CLASS_ID][:, None] == ints[lost, _CLASS_ID][None, :]
        p, q = np.nonzero(close)
        if len(p) == 0:
            return drop
        duration = ints[:, _LAST_FRAME] - ints[:, _START_FRAME]
        tracked_longer = duration[tracked[p]] > duration[lost[q]]
        drop[lost[q[tracked_longer]]] = True
        drop[tracked[p[~tracked_longer]]] = True
        return drop

    def _output(self, tlwh: np.ndarray) -> np.ndarray:
        """The reported rows; ``tlwh`` holds every (kept, reordered) track's current box."""
        table = self._tracks
        ints = table.ints
        reported = ints[:, _STATE] == _TRACKED
        if not self.output_unconfirmed:
            reported &= ints[:, _ACTIVATED] == 1
        rows = reported.nonzero()[0]
        tlwh = tlwh.take(rows, axis=0)
        visible = tlwh[:, 2] * tlwh[:, 3] > self.min_box_area
        if self.aspect_ratio_thresh is not None:
            visible &= ~(tlwh[:, 2] / tlwh[:, 3] > self.aspect_ratio_thresh)
        rows, tlwh = rows[visible], tlwh[visible]
        out = np.empty((len(rows), OUTPUT_COLUMNS), dtype=np.float64)
        out[:, 0:2] = tlwh[:, 0:2]
        np.add(tlwh[:, 0:2], tlwh[:, 2:4], out=out[:, 2:4])
        selected = ints.take(rows, axis=0)
        out[:, _OUT_TRACK_ID] = selected[:, _TRACK_ID]
        out[:, _OUT_SCORE] = table.scores.take(rows)
        out[:, _OUT_CLASS_ID] = selected[:, _CLASS_ID]
        out[:, _OUT_DET_INDEX] = selected[:, _DET_INDEX]
        return out

    def _orders(self, count: int) -> np.ndarray:
        """The next ``count`` list positions (a track joining a list goes to its end)."""
        start = self._next_order
        self._next_order += count
        return np.arange(start, start + count, dtype=np.int64)


def _match(cost: np.ndarray | None, threshold: float, rows: np.ndarray, cols: np.ndarray):
    """Hungarian assignment of tracks ``rows`` x detections ``cols`` (indices into the frame's
    arrays) with a cost ceiling; an empty side (``cost`` None) matches nothing."""
    if cost is None:
        return MatchResult([], rows.tolist(), cols.tolist())
    return min_cost_matching(cost, threshold, rows.tolist(), cols.tolist())


def _pairs(matches: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``[(row, col), ...]`` -> two int arrays."""
    if not matches:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, cols = np.array(matches, dtype=np.int64).T
    return rows, cols
