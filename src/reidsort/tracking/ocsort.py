"""OC-SORT (Cao et al., CVPR 2023), reference-faithful and vectorised over tracks and detections.

Algorithm (noahcao/OC_SORT ``trackers/ocsort_tracker/ocsort.py`` ``OCSort.update`` and
``association.py``), per frame:

1. Detections scoring above ``det_thresh`` are the high-score set; with ``use_byte`` those in
   ``(low_thresh, det_thresh)`` form the low-score set; the rest are ignored.
2. Every track is Kalman-predicted in SORT's ``xysr`` state (:mod:`.kalman_sort`); if the frame
   has a camera-motion ``warp``, it is applied to the predicted states and stored observations.
   Tracks whose predicted box is not finite are deleted.
3. First association, high-score detections x predicted boxes: IoU plus the
   **observation-centric momentum** (OCM) term ``inertia * score * (pi/2 - |theta|) / pi``, where
   ``theta`` is the angle between the track's direction (between two of its *observations*
   ``delta_t`` frames apart) and the direction from its observation ``delta_t`` frames back to
   the detection. If the pairs with IoU > ``iou_threshold`` already form a one-to-one matching,
   they are taken as they are; otherwise a maximum-similarity assignment is solved over all
   pairs and pairs with IoU below the threshold are rejected.
4. (``use_byte``) the remaining tracks' predicted boxes x low-score detections, IoU only.
5. **Observation-centric recovery** (OCR): the remaining tracks' *last observations* x the
   remaining high-score detections, IoU only.
6. Matched tracks are corrected. A track that was lost and is matched again first gets the
   **observation-centric re-update** (ORU): its filter goes back to the state frozen when it was
   lost and is replayed through predict/update steps over a virtual trajectory linearly
   interpolated (centre, width, height) between its last observation and the new one.
7. Unmatched high-score detections start tracks; tracks missed for more than ``max_age``
   frames are deleted.
8. Output: tracks updated this frame with ``hit_streak >= min_hits`` (or any track during the
   first ``min_hits`` frames), with their last observation's box (the reference's output;
   ``output="state"`` gives the Kalman state instead).

All per-track data lives in stacked arrays in the reference's track order (creation order,
deleted tracks removed); cost matrices are computed for all tracks x detections at once, and
only per-match bookkeeping touches Python lists.

Differences from the reference, all by design (``conf/tracker/ocsort.yaml`` lists them too):
ids are integers from 1 per tracker instance (the reference's class-level counter is global);
"has an observation" is a flag, where the reference tests ``last_observation.sum() >= 0`` (which
misreads a real box whose coordinates sum below 0 as "none"); invalid rows are dropped;
``per_class`` and ``warp`` are additions.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from reidsort.tracking.detection import xyxy_to_tlwh
from reidsort.tracking.iou_matching import iou_tlwh
from reidsort.tracking.kalman_sort import (
    STATE_DIM,
    KalmanFilterXYSR,
    xysr_to_xyxy,
    xyxy_to_xysr,
)
from reidsort.tracking.linear_assignment import INFEASIBLE_COST, min_cost_matching
from reidsort.tracking.tracker import FIRST_TRACK_ID, NO_DETECTION, OUTPUT_COLUMNS, OutputColumn
from reidsort.tracking.validation import require as _require

#: Input columns: ``[x1, y1, x2, y2, score, cls]``; ``(N, 5)`` input gets class 0.
DETECTION_COLUMNS: int = 6
DETECTION_COLUMNS_WITHOUT_CLASS: int = 5
DEFAULT_CLASS_ID: int = 0
#: Added to vector norms before dividing, as the reference's ``speed_direction`` does.
DIRECTION_EPS: float = 1e-6
#: Ring slots holding no observation.
EMPTY_AGE: int = -1
#: Camera-motion matrices are ``(2, 3)`` affine maps ``[M | t]``.
WARP_SHAPE: tuple[int, int] = (2, 3)


class OutputBox(str, Enum):
    """Which box :meth:`OcSortTracker.update` reports for a track updated this frame."""

    #: The detection that updated the track (noahcao/OC_SORT ``OCSort.update``: the "last
    #: observation"; a track born this frame has no observation yet and reports its state).
    OBSERVATION = "observation"
    #: The Kalman-filtered state (SORT's ``get_state()``).
    STATE = "state"


class AssociationFunction(str, Enum):
    """Similarity of the association stages; only IoU (the reference default) is implemented."""

    IOU = "iou"


# Integer track fields (one (T, 7) array) and boolean flags (one (T, 3) array).
_TRACK_ID, _HITS, _HIT_STREAK, _AGE, _TIME_SINCE_UPDATE, _CLASS_ID, _DETECTION_INDEX = range(7)
_INT_FIELDS = 7
# _HAS_OBSERVATION: the track has been matched since its birth (the birth box is no
# observation in the reference); _OBSERVED / _FROZEN: the filter's freeze/unfreeze state
# (reference KalmanFilterNew ``observed`` and ``attr_saved is not None``).
_HAS_OBSERVATION, _OBSERVED, _FROZEN = range(3)
_FLAG_FIELDS = 3
#: The flags of a track matched this frame: observed, not frozen.
_MATCHED_FLAGS = np.zeros(_FLAG_FIELDS, dtype=bool)
_MATCHED_FLAGS[[_HAS_OBSERVATION, _OBSERVED]] = True

_OUT_BOX = slice(int(OutputColumn.X1), int(OutputColumn.Y2) + 1)
_OUT_TRACK_ID, _OUT_SCORE, _OUT_CLASS_ID, _OUT_DETECTION_INDEX = (
    int(OutputColumn.TRACK_ID),
    int(OutputColumn.SCORE),
    int(OutputColumn.CLASS_ID),
    int(OutputColumn.DETECTION_INDEX),
)


class _TrackTable:
    """All live tracks as aligned arrays, in the reference's track order."""

    _FIELDS = (
        "means",
        "covariances",
        "saved_means",
        "saved_covariances",
        "last_xyxy",
        "ring_xyxy",
        "ring_age",
        "velocity",
        "scores",
        "ints",
        "flags",
    )

    def __init__(self, ring_size: int) -> None:
        self.means = np.zeros((0, STATE_DIM))
        self.covariances = np.zeros((0, STATE_DIM, STATE_DIM))
        # Filter state frozen when the track was lost (valid where _FROZEN).
        self.saved_means = np.zeros((0, STATE_DIM))
        self.saved_covariances = np.zeros((0, STATE_DIM, STATE_DIM))
        # Last observation (valid where _HAS_OBSERVATION) and the observations of the last
        # ring_size ages: slot age % ring_size holds the box observed at ring_age.
        self.last_xyxy = np.zeros((0, 4))
        self.ring_xyxy = np.zeros((0, ring_size, 4))
        self.ring_age = np.zeros((0, ring_size), dtype=np.int64)
        # Unit direction (dy, dx) between two observations; zero before the second one.
        self.velocity = np.zeros((0, 2))
        self.scores = np.zeros(0)  # score of this frame's detection, NaN if none
        self.ints = np.zeros((0, _INT_FIELDS), dtype=np.int64)
        self.flags = np.zeros((0, _FLAG_FIELDS), dtype=bool)

    def __len__(self) -> int:
        return len(self.ints)

    def append(self, **arrays: np.ndarray) -> None:
        for name in self._FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), arrays[name]]))

    def keep(self, mask: np.ndarray) -> None:
        if np.count_nonzero(mask) == len(mask):
            return
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name)[mask])


class OcSortTracker:
    """OC-SORT with the reference's defaults; knobs are plain keyword arguments (Hydra-friendly).

    Parameters
    ----------
    det_thresh:
        Detections scoring above this (strictly) are associated and may start tracks.
        noahcao/OC_SORT ``utils/args.py`` ``--track_thresh``: 0.6 (its MOT17 runs).
    max_age:
        A track missed for more than this many consecutive frames is deleted. Reference: 30.
    min_hits:
        Consecutive matches (``hit_streak``) before a track is reported; during the first
        ``min_hits`` frames of a sequence every updated track is reported. Reference: 3.
    iou_threshold:
        Minimum IoU of every association stage. Reference: 0.3.
    delta_t:
        Frames between the two observations whose displacement gives a track's direction (the
        oldest observation within the last ``delta_t`` frames, else the newest). Reference: 3.
    asso_func:
        Similarity of the stages; only ``"iou"`` (the reference default) is implemented.
    inertia:
        Weight of the momentum (angle-consistency) term in the first association. Reference: 0.2.
    use_byte:
        Add ByteTrack's low-score stage (remaining tracks x detections scoring in
        ``(low_thresh, det_thresh)``, IoU) before the recovery stage. Reference default: False.
    low_thresh:
        Lower score bound of the BYTE stage (exclusive). Reference (hard-coded): 0.1.
    output:
        ``"observation"`` (default, the reference: the box of the detection that updated the
        track) or ``"state"`` (the Kalman-filtered box, SORT's ``get_state()``).
    per_class:
        If True a track only ever matches detections of its own class (all stages).
    """

    def __init__(
        self,
        det_thresh: float = 0.6,
        max_age: int = 30,
        min_hits: int = 3,
        iou_threshold: float = 0.3,
        delta_t: int = 3,
        asso_func: AssociationFunction | str = AssociationFunction.IOU,
        inertia: float = 0.2,
        use_byte: bool = False,
        low_thresh: float = 0.1,
        output: OutputBox | str = OutputBox.OBSERVATION,
        per_class: bool = False,
    ) -> None:
        _require(np.isfinite(det_thresh), f"det_thresh must be finite, got {det_thresh}")
        _require(np.isfinite(low_thresh), f"low_thresh must be finite, got {low_thresh}")
        _require(
            _is_int(max_age) and max_age >= 0, f"max_age must be an integer >= 0, got {max_age}"
        )
        _require(
            _is_int(min_hits) and min_hits >= 0, f"min_hits must be an integer >= 0, got {min_hits}"
        )
        _require(
            np.isfinite(iou_threshold) and 0 <= iou_threshold <= 1,
            f"iou_threshold must be in [0, 1], got {iou_threshold}",
        )
        _require(
            _is_int(delta_t) and delta_t >= 1, f"delta_t must be an integer >= 1, got {delta_t}"
        )
        _require(np.isfinite(inertia) and inertia >= 0, f"inertia must be >= 0, got {inertia}")
        self.asso_func = _parse_enum(AssociationFunction, asso_func, "asso_func")
        self.output = _parse_enum(OutputBox, output, "output")
        self.det_thresh = float(det_thresh)
        self.max_age = int(max_age)
        self.min_hits = int(min_hits)
        self.iou_threshold = float(iou_threshold)
        self.delta_t = int(delta_t)
        self.inertia = float(inertia)
        self.use_byte = bool(use_byte)
        self.low_thresh = float(low_thresh)
        self.per_class = bool(per_class)
        self.kf = KalmanFilterXYSR()
        self.reset()

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all tracks and restart ids at 1 and the frame count at 0."""
        self._tracks = _TrackTable(self.delta_t)
        self._next_id = FIRST_TRACK_ID
        self.frame_count = 0

    @property
    def num_tracks(self) -> int:
        return len(self._tracks)

    @property
    def track_ids(self) -> np.ndarray:
        return self._tracks.ints[:, _TRACK_ID].copy()

    @property
    def means_xysr(self) -> np.ndarray:
        """Kalman means ``(T, 7)`` ``(x, y, s, r, vx, vy, vs)`` of all live tracks, track order."""
        return self._tracks.means.copy()

    @property
    def covariances(self) -> np.ndarray:
        """Kalman covariances ``(T, 7, 7)`` of all live tracks, track order."""
        return self._tracks.covariances.copy()

    @property
    def time_since_update(self) -> np.ndarray:
        return self._tracks.ints[:, _TIME_SINCE_UPDATE].copy()

    # -- one frame ---------------------------------------------------------------------------
    def update(
        self,
        dets: np.ndarray,
        embeddings: np.ndarray | None = None,
        *,
        warp: np.ndarray | None = None,
    ) -> np.ndarray:
        """Track one frame; returns ``(M, 8)`` ``[x1, y1, x2, y2, track_id, score, cls,
        det_index]`` (see :class:`~reidsort.tracking.tracker.OutputColumn`).

        ``dets`` is ``(N, 6)`` ``[x1, y1, x2, y2, score, cls]`` (or ``(N, 5)``, class 0); rows
        with non-finite values or non-positive width/height are ignored. ``embeddings`` is
        accepted for the common tracker interface and unused (OC-SORT is motion-only).
        ``warp`` is an optional ``(2, 3)`` affine map from the previous frame's pixel
        coordinates to this frame's (camera motion), applied to the predicted states, the frozen
        states and the stored observations before association.
        Call once per frame, also for frames without detections.
        """
        raw, valid = self._parse(dets, embeddings)
        affine = _parse_warp(warp)
        self.frame_count += 1
        scores = raw[:, 4]
        high = (valid & (scores > self.det_thresh)).nonzero()[0]
        if self.use_byte:
            low = (valid & (scores > self.low_thresh) & (scores < self.det_thresh)).nonzero()[0]
        else:
            low = np.zeros(0, dtype=np.int64)

        predicted_xyxy = self._predict(affine)
        table = self._tracks
        previous_xyxy = self._previous_observations()
        has_observation = table.flags[:, _HAS_OBSERVATION]
        det_xyxy = raw[:, :4]
        det_classes = raw[:, 5].astype(np.int64) if self.per_class else None

        # 1. High-score detections x predicted boxes, IoU + momentum.
        high_xyxy = det_xyxy[high]
        iou = self._iou(predicted_xyxy, high_xyxy)
        similarity = self._momentum(previous_xyxy, has_observation, high_xyxy, scores[high])
        similarity += iou  # iou + momentum: the sum commutes exactly
        feasible = self._feasible(np.arange(len(table)), det_classes, high)
        appearance = self._appearance_similarity(high, feasible)
        if appearance is not None:
            similarity += appearance
        matches, unmatched_high, unmatched_tracks = self._assign(
            iou, similarity, feasible, shortcut=True
        )
        track_rows = [t for t, _ in matches]  # local track indices are the table rows here
        det_rows = high[[d for _, d in matches]].tolist()

        # 2. BYTE: remaining tracks' predicted boxes x low-score detections.
        if len(low) and unmatched_tracks:
            candidates = np.array(unmatched_tracks)
            iou = self._iou(predicted_xyxy[candidates], det_xyxy[low])
            feasible = self._feasible(candidates, det_classes, low)
            if self._any_above_threshold(iou, feasible):
                matches, _, _ = self._assign(iou, iou, feasible, shortcut=False)
                matched = {t for t, _ in matches}
                track_rows += [int(candidates[t]) for t, _ in matches]
                det_rows += [int(low[d]) for _, d in matches]
                unmatched_tracks = sorted(
                    int(candidates[t]) for t in range(len(candidates)) if t not in matched
                )

        # 3. OCR: remaining tracks' last observations x remaining high-score detections.
        if unmatched_high and unmatched_tracks:
            candidates = np.array(unmatched_tracks)
            remaining = high[np.array(unmatched_high)]
            iou = self._iou(table.last_xyxy[candidates], det_xyxy[remaining])
            iou[~has_observation[candidates]] = 0.0  # the reference's placeholder box
            feasible = self._feasible(candidates, det_classes, remaining)
            if self._any_above_threshold(iou, feasible):
                matches, _, _ = self._assign(iou, iou, feasible, shortcut=False)
                matched_tracks = {t for t, _ in matches}
                matched_dets = {d for _, d in matches}
                track_rows += [int(candidates[t]) for t, _ in matches]
                det_rows += [int(remaining[d]) for _, d in matches]
                unmatched_tracks = sorted(
                    int(candidates[t]) for t in range(len(candidates)) if t not in matched_tracks
                )
                # The reference re-sorts the leftovers here (np.setdiff1d).
                unmatched_high = sorted(
                    d for j, d in enumerate(unmatched_high) if j not in matched_dets
                )

        self._apply_matches(
            np.array(track_rows, dtype=np.int64), np.array(det_rows, np.int64), raw, previous_xyxy
        )
        self._mark_missed(np.array(unmatched_tracks, dtype=np.int64))
        self._initiate(high[np.array(unmatched_high, dtype=np.int64)], raw)
        output = self._output()
        self._tracks.keep(self._tracks.ints[:, _TIME_SINCE_UPDATE] <= self.max_age)
        return output

    # -- input -------------------------------------------------------------------------------
    @staticmethod
    def _parse(dets, embeddings) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 6)`` float detections and the mask of usable rows."""
        raw = np.asarray(dets, dtype=np.float64)
        if raw.size == 0 and raw.ndim <= 2:
            raw = raw.reshape(0, DETECTION_COLUMNS)
        if raw.ndim != 2 or raw.shape[1] not in (
            DETECTION_COLUMNS,
            DETECTION_COLUMNS_WITHOUT_CLASS,
        ):
            raise ValueError(
                "dets must have shape (N, 6) [x1, y1, x2, y2, score, cls] or (N, 5), "
                f"got {raw.shape}"
            )
        if raw.shape[1] == DETECTION_COLUMNS_WITHOUT_CLASS:
            raw = np.column_stack([raw, np.full(len(raw), float(DEFAULT_CLASS_ID))])
        if embeddings is not None and len(embeddings) != len(raw):
            raise ValueError(
                f"embeddings must have one row per detection ({len(raw)}), got {len(embeddings)}"
            )
        # detection.invalid_box_mask's rule (finite box, score and class; width, height > 0)
        wh = raw[:, 2:4] - raw[:, :2]
        # The all-valid case (almost every frame) is settled by two counts; masks only if not.
        if (
            np.count_nonzero(np.isfinite(raw)) == raw.size
            and np.count_nonzero(wh > 0) == wh.size
            and np.count_nonzero(np.isfinite(wh)) == wh.size  # x2 - x1 can overflow to inf
        ):
            return raw, np.ones(len(raw), dtype=bool)
        valid = np.isfinite(raw).all(axis=1) & np.isfinite(wh).all(axis=1) & (wh > 0).all(axis=1)
        if not valid.all():
            raw = raw.copy()
            raw[~valid] = 0.0  # never reaches a computation; keeps the arrays NaN-free
        return raw, valid

    # -- motion ------------------------------------------------------------------------------
    def _predict(self, affine: np.ndarray | None) -> np.ndarray:
        """Predict (and warp) all tracks; returns their predicted ``xyxy`` boxes."""
        table = self._tracks
        if len(table) == 0:
            return np.zeros((0, 4))
        table.means, table.covariances = self.kf.predict(table.means, table.covariances)
        ints = table.ints
        ints[:, _AGE] += 1
        ints[ints[:, _TIME_SINCE_UPDATE] > 0, _HIT_STREAK] = 0
        ints[:, _TIME_SINCE_UPDATE] += 1
        ints[:, _DETECTION_INDEX] = NO_DETECTION
        table.scores[:] = np.nan
        if affine is not None:
            self._warp(affine)
        # The reference deletes tracks whose predicted box is NaN (area or aspect <= 0).
        predicted_xyxy = xysr_to_xyxy(table.means[:, :4])
        if np.count_nonzero(np.isfinite(predicted_xyxy)) != predicted_xyxy.size:
            finite = np.isfinite(predicted_xyxy).all(axis=1)
            table.keep(finite)
            predicted_xyxy = predicted_xyxy[finite]
        return predicted_xyxy

    def _warp(self, affine: np.ndarray) -> None:
        """Camera motion: states, frozen states and stored boxes into this frame's coordinates.

        Boxes move like the state: centre ``M c + t``, width and height scaled by
        ``sqrt(|det M|)`` (area by ``|det M|``, aspect kept); directions are rotated by ``M``.
        """
        table = self._tracks
        table.means, table.covariances = self.kf.warp(table.means, table.covariances, affine)
        frozen = table.flags[:, _FROZEN].nonzero()[0]
        if len(frozen):
            table.saved_means[frozen], table.saved_covariances[frozen] = self.kf.warp(
                table.saved_means[frozen], table.saved_covariances[frozen], affine
            )
        table.last_xyxy = _warp_xyxy(table.last_xyxy, affine)
        table.ring_xyxy = _warp_xyxy(table.ring_xyxy, affine)
        # velocity is (dy, dx): rotate (dx, dy) by M, renormalise, keep zero vectors zero.
        moved = table.velocity[:, ::-1] @ affine[:, :2].T
        norm = np.linalg.norm(moved, axis=1, keepdims=True)
        np.divide(moved, norm, out=moved, where=norm > 0)
        table.velocity = moved[:, ::-1].copy()

    def _previous_observations(self) -> np.ndarray:
        """Per track, the observation the momentum is measured from: the oldest one within the
        last ``delta_t`` frames, else the newest (reference ``k_previous_obs``). Rows of tracks
        without any observation are meaningless (callers mask them with _HAS_OBSERVATION)."""
        table = self._tracks
        k = self.delta_t
        if len(table) == 0:
            return np.zeros((0, 4))
        wanted = table.ints[:, _AGE, None] - np.arange(k, 0, -1)[None, :]  # age-k .. age-1
        slots = wanted % k
        rows = np.arange(len(table))[:, None]
        found = (table.ring_age[rows, slots] == wanted) & (wanted >= 0)
        first = found.argmax(axis=1)
        previous = table.last_xyxy.copy()
        in_window = found.any(axis=1).nonzero()[0]
        previous[in_window] = table.ring_xyxy[in_window, slots[in_window, first[in_window]]]
        return previous

    # -- association -------------------------------------------------------------------------
    @staticmethod
    def _iou(track_xyxy: np.ndarray, det_xyxy: np.ndarray) -> np.ndarray:
        """IoU of tracks x detections (both ``xyxy``), ``(T, N)``."""
        if len(track_xyxy) == 0 or len(det_xyxy) == 0:
            return np.zeros((len(track_xyxy), len(det_xyxy)))
        return iou_tlwh(xyxy_to_tlwh(track_xyxy), xyxy_to_tlwh(det_xyxy))

    def _momentum(
        self,
        previous_xyxy: np.ndarray,
        has_observation: np.ndarray,
        det_xyxy: np.ndarray,
        det_scores: np.ndarray,
    ) -> np.ndarray:
        """OCM term ``(T, N)``: ``inertia * score * (pi/2 - |angle|) / pi`` in ``[-w/2, w/2]``,
        positive when the detection lies in the direction the track has been moving."""
        table = self._tracks
        if len(table) == 0 or len(det_xyxy) == 0:
            return np.zeros((len(table), len(det_xyxy)))
        previous_centre = (previous_xyxy[:, :2] + previous_xyxy[:, 2:]) / 2.0
        det_centre = (det_xyxy[:, :2] + det_xyxy[:, 2:]) / 2.0
        dx = det_centre[None, :, 0] - previous_centre[:, 0, None]  # (T, N)
        dy = det_centre[None, :, 1] - previous_centre[:, 1, None]
        norm = np.sqrt(dx * dx + dy * dy)
        norm += DIRECTION_EPS
        # velocity is (dy, dx): cos of the angle between it and the unit (dx, dy) / norm.
        dx *= table.velocity[:, 1, None]
        dy *= table.velocity[:, 0, None]
        cosine = np.add(dx, dy, out=dx)
        cosine /= norm
        # np.clip(cosine, -1, 1) without np.clip's dispatch overhead (the same values)
        np.maximum(np.minimum(cosine, 1.0, out=cosine), -1.0, out=cosine)
        bonus = (np.pi / 2.0 - np.abs(np.arccos(cosine))) / np.pi
        bonus *= self.inertia * has_observation[:, None]
        bonus *= det_scores[None, :]
        return bonus

    def _appearance_similarity(
        self, det_rows: np.ndarray, feasible: np.ndarray | None
    ) -> np.ndarray | None:
        """Appearance term ``(T, len(det_rows))`` added to the first association's similarity
        (all tracks x the high-score detections ``det_rows``), or None for none.

        OC-SORT is motion-only; the hook exists for Deep OC-SORT
        (:class:`reidsort.tracking.deepocsort.DeepOcSortTracker`), whose appearance enters the
        first association only. ``feasible`` is the class mask of :meth:`_feasible`.
        """
        return None

    def _feasible(
        self, track_rows: np.ndarray, det_classes: np.ndarray | None, det_rows: np.ndarray
    ) -> np.ndarray | None:
        """Class-compatibility mask ``(T, N)`` of ``track_rows`` x ``det_rows`` with
        ``per_class`` (``det_classes``: all the frame's classes), else None (all feasible)."""
        if not self.per_class:
            return None
        classes = self._tracks.ints[track_rows, _CLASS_ID]
        return classes[:, None] == det_classes[None, det_rows]

    def _any_above_threshold(self, iou: np.ndarray, feasible: np.ndarray | None) -> bool:
        """The reference only solves a stage when some IoU exceeds the threshold."""
        if iou.size == 0:
            return False
        if feasible is not None:
            iou = np.where(feasible, iou, 0.0)
        return bool(iou.max() > self.iou_threshold)

    def _assign(
        self,
        iou: np.ndarray,
        similarity: np.ndarray,
        feasible: np.ndarray | None,
        shortcut: bool,
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """One stage: ``(matches, unmatched detections, unmatched tracks)`` (local indices).

        As in the reference, the assignment maximises ``similarity`` over *all* pairs (no cost
        ceiling; the shared solver with an infinite threshold), and the assigned pairs whose IoU
        is below ``iou_threshold`` are rejected afterwards. With ``shortcut``, a one-to-one set
        of pairs above the threshold is accepted without solving. Matches are ordered by
        detection; unmatched detections are the unassigned ones, then the rejected ones (the
        reference's order, which decides the order of new ids).
        """
        track_count, det_count = iou.shape
        if track_count == 0 or det_count == 0:
            return [], list(range(det_count)), list(range(track_count))
        confident = iou > self.iou_threshold
        if feasible is not None:
            confident &= feasible
        # One-to-one: as many tracks and as many detections take part as there are pairs.
        pairs = np.count_nonzero(confident)
        if (
            shortcut
            and pairs
            and np.count_nonzero(confident.any(axis=0)) == pairs
            and np.count_nonzero(confident.any(axis=1)) == pairs
        ):
            tracks, dets = confident.nonzero()
            order = np.argsort(dets, kind="stable")
            matches = list(zip(tracks[order].tolist(), dets[order].tolist()))
            matched_dets, matched_tracks = set(dets.tolist()), set(tracks.tolist())
            return (
                matches,
                [d for d in range(det_count) if d not in matched_dets],
                [t for t in range(track_count) if t not in matched_tracks],
            )
        cost = np.negative(similarity)
        if feasible is not None:
            cost[~feasible] = INFEASIBLE_COST
        assigned = min_cost_matching(cost, np.inf, range(track_count), range(det_count)).matches
        assigned.sort(key=lambda pair: pair[1])
        accepted = [
            (t, d)
            for t, d in assigned
            if iou[t, d] >= self.iou_threshold and (feasible is None or feasible[t, d])
        ]
        assigned_dets = {d for _, d in assigned}
        accepted_dets = {d for _, d in accepted}
        accepted_tracks = {t for t, _ in accepted}
        unmatched_dets = [d for d in range(det_count) if d not in assigned_dets] + [
            d for _, d in assigned if d not in accepted_dets
        ]
        unmatched_tracks = [t for t in range(track_count) if t not in accepted_tracks]
        return accepted, unmatched_dets, unmatched_tracks

    # -- track management --------------------------------------------------------------------
    def _apply_matches(
        self,
        track_rows: np.ndarray,
        det_rows: np.ndarray,
        raw: np.ndarray,
        previous_xyxy: np.ndarray,
    ) -> np.ndarray:
        """Correct the matched tracks; returns their ``xysr`` measurements (for subclasses)."""
        if len(track_rows) == 0:
            return np.zeros((0, 4))
        table = self._tracks
        boxes = raw[det_rows, :4]
        measurements = xyxy_to_xysr(boxes)
        flags = table.flags[track_rows]
        replay = ~flags[:, _OBSERVED] & flags[:, _FROZEN]
        if replay.any():
            self._replay(track_rows[replay], measurements[replay])

        # Direction from the momentum's reference observation (``previous_xyxy``, taken before
        # this frame's observations are stored, as in the reference's update()) to the new one.
        with_history = flags[:, _HAS_OBSERVATION]
        if with_history.all():
            table.velocity[track_rows] = _direction(previous_xyxy[track_rows], boxes)
        elif with_history.any():
            rows = track_rows[with_history]
            table.velocity[rows] = _direction(previous_xyxy[rows], boxes[with_history])

        table.means[track_rows], table.covariances[track_rows] = self.kf.update(
            table.means[track_rows], table.covariances[track_rows], measurements
        )
        ints = table.ints[track_rows]
        slots = ints[:, _AGE] % self.delta_t
        table.ring_xyxy[track_rows, slots] = boxes
        table.ring_age[track_rows, slots] = ints[:, _AGE]
        table.last_xyxy[track_rows] = boxes
        ints[:, _TIME_SINCE_UPDATE] = 0
        ints[:, _HITS] += 1
        ints[:, _HIT_STREAK] += 1
        ints[:, _CLASS_ID] = raw[det_rows, 5].astype(np.int64)
        ints[:, _DETECTION_INDEX] = det_rows
        table.ints[track_rows] = ints
        table.scores[track_rows] = raw[det_rows, 4]
        table.flags[track_rows] = _MATCHED_FLAGS
        return measurements

    def _replay(self, rows: np.ndarray, new_xysr: np.ndarray) -> None:
        """ORU: restore the frozen filters of ``rows`` and replay the virtual trajectory.

        For a gap of ``g`` frames since the last observation, the virtual boxes at steps
        ``1..g`` interpolate centre, width and height linearly between the last observation and
        the new one; each is an update, followed by a predict (without the area-velocity
        clamp, as the reference's raw filter step) except after the last. The regular update
        with the new observation follows in :meth:`_apply_matches`, so the new observation
        enters the filter twice, exactly as in noahcao/OC_SORT (``KalmanFilterNew.unfreeze``
        replays up to the new box, then ``update`` applies it).
        All re-found tracks replay together, longest gap first, so that the tracks still
        replaying at step ``i`` (those with ``g > i``) are a leading slice.
        """
        table = self._tracks
        gaps = table.ints[rows, _TIME_SINCE_UPDATE]
        order = np.argsort(-gaps, kind="stable")
        rows, new_xysr, gaps = rows[order], new_xysr[order], gaps[order].astype(np.float64)
        start = self._replay_start_xysr(rows)
        start_wh = _xysr_width_height(start)
        end_wh = _xysr_width_height(new_xysr)
        step_centre = (new_xysr[:, :2] - start[:, :2]) / gaps[:, None]
        step_wh = (end_wh - start_wh) / gaps[:, None]
        means = table.saved_means[rows]
        covariances = table.saved_covariances[rows]
        longest = int(gaps[0])
        replaying = np.searchsorted(-gaps, -np.arange(1, longest + 2), side="right")
        # replaying[i] = number of rows with gap >= i + 1 (i.e. g > i), a non-increasing count.
        # All virtual boxes at once, (steps, rows, 4): the same per-step arithmetic, batched.
        # (Steps past a row's own gap are computed too, never used: hence the errstate.)
        steps = np.arange(1, longest + 1, dtype=np.float64)[:, None, None]
        centre = start[None, :, :2] + steps * step_centre[None]
        wh = start_wh[None] + steps * step_wh[None]
        with np.errstate(divide="ignore", invalid="ignore"):
            aspect = wh[..., 0] / wh[..., 1]
        virtual = np.concatenate(
            [centre, (wh[..., 0] * wh[..., 1])[..., None], aspect[..., None]], -1
        )
        for i in range(longest):
            n = replaying[i]
            means[:n], covariances[:n] = self.kf.update(means[:n], covariances[:n], virtual[i, :n])
            m = replaying[i + 1]
            if m:
                means[:m], covariances[:m] = self.kf.predict(
                    means[:m], covariances[:m], clamp_area_velocity=False
                )
        table.means[rows] = means
        table.covariances[rows] = covariances

    def _replay_start_xysr(self, rows: np.ndarray) -> np.ndarray:
        """Where the ORU's virtual trajectory of ``rows`` starts: their last observation (the
        reference's last measurement of the frozen filter, the same box)."""
        return xyxy_to_xysr(self._tracks.last_xyxy[rows])

    def _mark_missed(self, rows: np.ndarray) -> None:
        """Freeze the filters of tracks that were observed until now (for a later ORU)."""
        if len(rows) == 0:
            return
        table = self._tracks
        freeze = rows[table.flags[rows, _OBSERVED]]
        if len(freeze):
            table.saved_means[freeze] = table.means[freeze]
            table.saved_covariances[freeze] = table.covariances[freeze]
            table.flags[freeze, _FROZEN] = True
            table.flags[freeze, _OBSERVED] = False

    def _initiate(self, det_rows: np.ndarray, raw: np.ndarray) -> None:
        count = len(det_rows)
        if count == 0:
            return
        means, covariances = self.kf.initiate(xyxy_to_xysr(raw[det_rows, :4]))
        ints = np.zeros((count, _INT_FIELDS), dtype=np.int64)
        ints[:, _TRACK_ID] = np.arange(self._next_id, self._next_id + count)
        ints[:, _CLASS_ID] = raw[det_rows, 5].astype(np.int64)
        ints[:, _DETECTION_INDEX] = det_rows
        self._next_id += count
        ring = self.delta_t
        self._tracks.append(
            means=means,
            covariances=covariances,
            saved_means=np.zeros_like(means),
            saved_covariances=np.zeros_like(covariances),
            last_xyxy=np.zeros((count, 4)),
            ring_xyxy=np.zeros((count, ring, 4)),
            ring_age=np.full((count, ring), EMPTY_AGE, dtype=np.int64),
            velocity=np.zeros((count, 2)),
            scores=raw[det_rows, 4].copy(),
            ints=ints,
            flags=np.zeros((count, _FLAG_FIELDS), dtype=bool),
        )

    def _output(self) -> np.ndarray:
        """Tracks updated this frame and past ``min_hits`` (or in the first ``min_hits``
        frames), newest track first (the reference iterates its list in reverse)."""
        table = self._tracks
        ints = table.ints
        reported = ints[:, _TIME_SINCE_UPDATE] == 0
        if self.frame_count > self.min_hits:
            reported &= ints[:, _HIT_STREAK] >= self.min_hits
        rows = reported.nonzero()[0][::-1]
        out = np.empty((len(rows), OUTPUT_COLUMNS))
        if len(rows) == 0:
            return out
        if self.output is OutputBox.OBSERVATION:
            observed = table.flags[rows, _HAS_OBSERVATION]
            if observed.all():
                out[:, _OUT_BOX] = table.last_xyxy[rows]
            else:
                boxes = xysr_to_xyxy(table.means[rows, :4])
                boxes[observed] = table.last_xyxy[rows[observed]]
                out[:, _OUT_BOX] = boxes
        else:
            out[:, _OUT_BOX] = xysr_to_xyxy(table.means[rows, :4])
        out[:, _OUT_TRACK_ID] = ints[rows, _TRACK_ID]
        out[:, _OUT_SCORE] = table.scores[rows]
        out[:, _OUT_CLASS_ID] = ints[rows, _CLASS_ID]
        out[:, _OUT_DETECTION_INDEX] = ints[rows, _DETECTION_INDEX]
        return out


# -- helpers -----------------------------------------------------------------------------------
def _direction(start_xyxy: np.ndarray, end_xyxy: np.ndarray) -> np.ndarray:
    """Unit ``(dy, dx)`` from the centres of ``start`` to those of ``end`` (reference
    ``speed_direction``: the norm gets ``DIRECTION_EPS`` added)."""
    start_centre = (start_xyxy[:, :2] + start_xyxy[:, 2:]) / 2.0
    delta = (end_xyxy[:, :2] + end_xyxy[:, 2:]) / 2.0 - start_centre
    norm = np.sqrt(delta[:, 0] ** 2 + delta[:, 1] ** 2) + DIRECTION_EPS
    return delta[:, ::-1] / norm[:, None]


def _xysr_width_height(xysr: np.ndarray) -> np.ndarray:
    """``(w, h) = (sqrt(s r), sqrt(s / r))``, the reference's inversion in its re-update."""
    return np.column_stack([np.sqrt(xysr[:, 2] * xysr[:, 3]), np.sqrt(xysr[:, 2] / xysr[:, 3])])


def _warp_xyxy(xyxy: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Boxes ``(..., 4)`` under an affine camera motion: centre mapped, size scaled by the
    square root of the area factor (consistent with :meth:`KalmanFilterXYSR.warp`)."""
    linear, translation = affine[:, :2], affine[:, 2]
    scale = np.sqrt(abs(float(np.linalg.det(linear))))
    centre = ((xyxy[..., :2] + xyxy[..., 2:]) / 2.0) @ linear.T + translation
    half = (xyxy[..., 2:] - xyxy[..., :2]) * (scale / 2.0)
    return np.concatenate([centre - half, centre + half], axis=-1)


def _parse_warp(warp) -> np.ndarray | None:
    if warp is None:
        return None
    affine = np.asarray(warp, dtype=np.float64)
    if affine.shape != WARP_SHAPE or not np.isfinite(affine).all():
        raise ValueError(
            f"warp must be a finite (2, 3) affine matrix [M | t] or None, got shape {affine.shape}"
        )
    if not abs(np.linalg.det(affine[:, :2])) > 0:
        raise ValueError(f"warp must be invertible (det M != 0), got {affine.tolist()}")
    return affine


def _parse_enum(kind: type[Enum], value, name: str):
    try:
        return kind(value)
    except ValueError:
        raise ValueError(
            f"{name} must be one of {[member.value for member in kind]}, got {value!r}"
        ) from None


def _is_int(value) -> bool:
    try:
        return int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False
