"""Deep OC-SORT (Maggiolino, Ahmad, Cao & Kitani, ICIP 2023): OC-SORT plus camera motion,
dynamic appearance and adaptive weighting, built on :class:`~reidsort.tracking.ocsort.OcSortTracker`.

What it adds to OC-SORT (GerardMaggiolino/Deep-OC-SORT
``trackers/integrated_ocsort_embedding/ocsort.py`` ``OCSort.update`` and ``association.py``
``associate`` / ``compute_aw_new_metric``; the paper's MOT17 configuration runs it with
``--grid_off --new_kf_off``, i.e. one global embedding per box and SORT's ``xysr`` Kalman filter,
which is what this class implements):

* **Camera-motion compensation** (``update(..., warp=A)``, ``A = [M | t]``), applied before the
  Kalman prediction, to exactly what the reference's ``apply_affine_correction`` touches for the
  ``xysr`` filter: the centre ``M c + t`` and the centre velocity ``M v`` of the state, the
  centre and centre-velocity blocks of the covariance (``M P M^T``; area, aspect and the
  cross-covariances between blocks are left as they are), the same for the state frozen by a
  lost track and for the centre of its last measurement (where the re-update's virtual
  trajectory starts; warped from the frame after the freeze on, as the reference's
  ``last_measurement`` is), and both corners of the stored observations (``M p + t``). Unlike
  :class:`OcSortTracker`'s warp the area is not scaled and the momentum direction is not
  rotated (the reference does neither).
* **Dynamic appearance**: one L2-normalised embedding per track, updated at every match by an
  EMA whose factor depends on the detection's confidence,
  ``alpha = alpha_fixed_emb + (1 - alpha_fixed_emb) * (1 - (score - det_thresh) / (1 - det_thresh))``,
  i.e. 1 (embedding kept) for a detection at ``det_thresh`` and ``alpha_fixed_emb`` for score 1:
  unreliable detections barely change a track's appearance. A new track takes its detection's
  embedding as it is.
* **Adaptive weighting** of the appearance term in the *first* association only (the recovery
  stage stays IoU-only, as in the reference): the cosine similarity ``S`` (tracks x detections)
  is multiplied by ``w_association_emb + gap_track / 2 + gap_det / 2``, where ``gap`` is, per
  track (over detections) and per detection (over tracks), ``min(top1 - top2, aw_param)`` of the
  similarities (0 with fewer than two candidates): an appearance that singles out one partner
  counts more. The similarity maximised is ``IoU + momentum + w * S``; pairs below
  ``iou_threshold`` IoU are still rejected after the assignment, and a one-to-one set of pairs
  above the threshold is still taken without solving (appearance then plays no part).

**Without embeddings** (``embeddings=None``, ``embedding_off=True`` or an embedder-less run) the
appearance term is zero and the tracker is OC-SORT (without the BYTE stage, which Deep OC-SORT
does not have) plus the camera motion above; with ``warp=None`` it gives exactly
:class:`OcSortTracker`'s output (tested). The reference's own ``--emb_off`` also makes the
appearance term zero (it needs ``--aw_off`` too, else ``compute_aw_new_metric`` fails on the
scalar 0). Frames may mix: a detection without a usable embedding (None for the frame, or a
non-finite / zero row) contributes no appearance and leaves its track's embedding unchanged;
a track without an embedding yet gets the first one it is matched with.

Differences from the reference, all by design (``conf/tracker/deepocsort.yaml`` lists them too):

* ids, invalid rows, ``per_class`` and the "has an observation" flag as in
  :class:`OcSortTracker`; with ``per_class`` the adaptive-weight gaps are taken over same-class
  candidates only (BoxMOT's ``per_class`` runs one tracker per class, so its gaps are per
  class too);
* the reference stores a track's newest observation and its entry in the observation history as
  one array (a view of the detections), so ``apply_affine_correction`` warps that box twice per
  frame while it is within the last ``delta_t`` + 1 ages; here every stored box is warped once
  (MOT17-trainhalf, ``cmc=file``, motion only: HOTA 77.05 here, 76.90 with the double warp);
* the EMA factor is clipped to ``[0, 1]`` (only matters for scores above 1).

Fidelity (checked while developing, with the reference's ``OCSort`` and stubs feeding it the
same warps and embeddings): on the 7 MOT17-trainhalf sequences the same ids and boxes in every
frame, with random embeddings with and without camera motion and motion-only with it, the
reference's double warp removed where camera motion is on.
"""

from __future__ import annotations

import numpy as np

from reidsort.tracking.kalman_sort import VX, VY, X, Y
from reidsort.tracking.ocsort import (
    _CLASS_ID,
    _FROZEN,
    _TIME_SINCE_UPDATE,
    _TRACK_ID,
    AssociationFunction,
    OcSortTracker,
    OutputBox,
    _TrackTable,
)
from reidsort.tracking.reentry import (
    DEFAULT_FRAME_RATE,
    DEFAULT_REENTRY_MAX_DIST,
    NO_CLAIM,
    ReentryGallery,
)
from reidsort.tracking.tracker import OutputColumn
from reidsort.tracking.validation import require as _require

#: Embeddings are ``(N, D)``: one row per detection.
EMBEDDING_NDIM: int = 2
#: The similarity entries that take no part in an adaptive-weight gap.
_EXCLUDED: float = -np.inf
_CENTRE = [X, Y]
_CENTRE_VELOCITY = [VX, VY]


class _EmbeddingTrackTable(_TrackTable):
    """OC-SORT's track table plus one unit embedding per track (``(T, D)``, D fixed on first
    use) and the filter's last measurement, where a re-update starts."""

    _FIELDS = (*_TrackTable._FIELDS, "embeddings", "has_embedding", "last_measurement_xysr")

    def __init__(self, ring_size: int) -> None:
        super().__init__(ring_size)
        self.embeddings = np.zeros((0, 0))
        self.has_embedding = np.zeros(0, dtype=bool)
        # The measurement of the last match, camera-warped (centre only) while frozen.
        self.last_measurement_xysr = np.zeros((0, 4))

    def append(self, **arrays: np.ndarray) -> None:
        count = len(arrays["ints"])
        arrays.setdefault("last_measurement_xysr", np.zeros((count, 4)))
        arrays.setdefault("embeddings", np.zeros((count, self.embeddings.shape[1])))
        arrays.setdefault("has_embedding", np.zeros(count, dtype=bool))
        super().append(**arrays)


class DeepOcSortTracker(OcSortTracker):
    """Deep OC-SORT with the reference's MOT17 settings; plain keyword arguments (Hydra-friendly).

    Parameters
    ----------
    det_thresh, max_age, min_hits, iou_threshold, delta_t, asso_func, inertia, output, per_class:
        As in :class:`~reidsort.tracking.ocsort.OcSortTracker`; defaults from
        GerardMaggiolino/Deep-OC-SORT (``trackers/integrated_ocsort_embedding/args.py``:
        ``--track_thresh 0.6``, ``--iou_thresh 0.3``, ``--deltat 3``, ``--inertia 0.2``;
        ``OCSort``: ``max_age=30``, ``min_hits=3``, which ``main.py`` does not override).
        ``det_thresh`` must be below 1 (it normalises the EMA factor).
    w_association_emb:
        Base weight of the appearance similarity in the first association. Reference
        ``--w_assoc_emb``: 0.75 (MOT17 / MOT20; 1.25 for DanceTrack).
    alpha_fixed_emb:
        EMA factor of a track's embedding for a detection of score 1 (it rises to 1 at
        ``det_thresh``). Reference ``--alpha_fixed_emb``: 0.95.
    aw_param:
        Cap on each top-1/top-2 similarity gap of the adaptive weighting. Reference
        ``--aw_param``: 0.5 (MOT17 / MOT20; 1 for DanceTrack).
    embedding_off:
        Ignore embeddings (motion only: OC-SORT plus camera motion). Reference ``--emb_off``.
    aw_off:
        Plain weight ``w_association_emb`` instead of the adaptive one. Reference ``--aw_off``.
    reentry_seconds, reentry_max_dist, frame_rate:
        Re-entry gallery (not in the reference; off by default, :mod:`.reentry`): a deleted
        track that was reported keeps its embedding ``round(reentry_seconds * frame_rate)``
        frames, and a track reported for the first time takes that id when its embedding is
        within ``reentry_max_dist`` cosine distance. ``frame_rate`` None: 30.
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
        w_association_emb: float = 0.75,
        alpha_fixed_emb: float = 0.95,
        aw_param: float = 0.5,
        embedding_off: bool = False,
        aw_off: bool = False,
        output: OutputBox | str = OutputBox.OBSERVATION,
        per_class: bool = False,
        reentry_seconds: float | None = None,
        reentry_max_dist: float = DEFAULT_REENTRY_MAX_DIST,
        frame_rate: float | None = DEFAULT_FRAME_RATE,
    ) -> None:
        self.frame_rate = DEFAULT_FRAME_RATE if frame_rate is None else float(frame_rate)
        self.reentry = ReentryGallery.from_seconds(
            reentry_seconds, self.frame_rate, reentry_max_dist, class_aware=bool(per_class)
        )
        self.reentry_seconds = None if reentry_seconds is None else float(reentry_seconds)
        _require(
            np.isfinite(det_thresh) and det_thresh < 1, f"det_thresh must be < 1, got {det_thresh}"
        )
        _require(
            np.isfinite(w_association_emb) and w_association_emb >= 0,
            f"w_association_emb must be >= 0, got {w_association_emb}",
        )
        _require(
            np.isfinite(alpha_fixed_emb) and 0 <= alpha_fixed_emb <= 1,
            f"alpha_fixed_emb must be in [0, 1], got {alpha_fixed_emb}",
        )
        _require(np.isfinite(aw_param) and aw_param >= 0, f"aw_param must be >= 0, got {aw_param}")
        self.w_association_emb = float(w_association_emb)
        self.alpha_fixed_emb = float(alpha_fixed_emb)
        self.aw_param = float(aw_param)
        self.embedding_off = bool(embedding_off)
        self.aw_off = bool(aw_off)
        super().__init__(
            det_thresh=det_thresh,
            max_age=max_age,
            min_hits=min_hits,
            iou_threshold=iou_threshold,
            delta_t=delta_t,
            asso_func=asso_func,
            inertia=inertia,
            use_byte=False,  # Deep OC-SORT has no BYTE stage
            output=output,
            per_class=per_class,
        )

    def reset(self) -> None:
        """Forget all tracks (and their embeddings); ids restart at 1."""
        super().reset()
        self._tracks = _EmbeddingTrackTable(self.delta_t)
        self.reentry.reset()
        # ids already reported once: only a track's first report can claim a remembered id
        self._reported_ids: set[int] = set()
        # This frame's unit embeddings (N, D) and which rows are usable; None: no appearance.
        self._features: np.ndarray | None = None
        self._has_feature: np.ndarray | None = None

    @property
    def embeddings(self) -> np.ndarray:
        """Unit embeddings ``(T, D)`` of all live tracks, track order (zero rows: none yet)."""
        return self._tracks.embeddings.copy()

    @property
    def has_embedding(self) -> np.ndarray:
        return self._tracks.has_embedding.copy()

    def dynamic_alpha(self, scores: np.ndarray) -> np.ndarray:
        """EMA factor per detection score: ``alpha_fixed + (1 - alpha_fixed) * (1 - trust)``,
        ``trust = (score - det_thresh) / (1 - det_thresh)``, clipped to ``[0, 1]``."""
        trust = (np.asarray(scores, dtype=np.float64) - self.det_thresh) / (1.0 - self.det_thresh)
        alpha = self.alpha_fixed_emb + (1.0 - self.alpha_fixed_emb) * (1.0 - trust)
        # np.clip's result, without its dispatch overhead (alpha is never -0.0)
        return np.minimum(np.maximum(alpha, 0.0), 1.0)

    # -- hooks into OcSortTracker.update ---------------------------------------------------------
    def _parse(self, dets, embeddings) -> tuple[np.ndarray, np.ndarray]:
        raw, valid = super()._parse(dets, embeddings)
        self._features = self._has_feature = None
        if embeddings is None or self.embedding_off:
            return raw, valid
        features = np.asarray(embeddings, dtype=np.float64)
        if features.ndim != EMBEDDING_NDIM or (len(features) and features.shape[1] == 0):
            raise ValueError(f"embeddings must have shape (N, D) with D >= 1, got {features.shape}")
        if len(features) == 0:
            return raw, valid
        dim = features.shape[1]
        table = self._tracks
        if table.embeddings.shape[1] == 0:
            table.embeddings = np.zeros((len(table), dim))
        elif table.embeddings.shape[1] != dim:
            raise ValueError(
                f"embedding dimension changed from {table.embeddings.shape[1]} to {dim}; "
                "call reset() between sequences of different embedders"
            )
        with np.errstate(invalid="ignore", over="ignore"):
            norms = _row_norms(features)
        usable = np.isfinite(norms) & (norms > 0) & valid
        if usable.all():
            features = features / norms[:, None]
        else:
            features = np.where(usable[:, None], features, 0.0)
            features[usable] /= norms[usable, None]
        self._features, self._has_feature = features, usable
        return raw, valid

    def _predict(self, affine: np.ndarray | None) -> np.ndarray:
        """The reference warps the tracks *before* predicting them (``apply_affine_correction``
        precedes ``predict``); with its block-wise covariance warp the order matters."""
        if affine is not None and len(self._tracks):
            self._warp(affine)
        return super()._predict(None)

    def _warp(self, affine: np.ndarray) -> None:
        """Camera motion as the reference applies it to the ``xysr`` filter (see module doc)."""
        table = self._tracks
        table.means, table.covariances = _warp_centre(table.means, table.covariances, affine)
        frozen = table.flags[:, _FROZEN].nonzero()[0]
        if len(frozen):
            table.saved_means[frozen], table.saved_covariances[frozen] = _warp_centre(
                table.saved_means[frozen], table.saved_covariances[frozen], affine
            )
            measurement = table.last_measurement_xysr[frozen]
            measurement[:, :2] = measurement[:, :2] @ affine[:, :2].T + affine[:, 2]
            table.last_measurement_xysr[frozen] = measurement
        table.last_xyxy = _warp_corners(table.last_xyxy, affine)
        table.ring_xyxy = _warp_corners(table.ring_xyxy, affine)

    def _replay_start_xysr(self, rows: np.ndarray) -> np.ndarray:
        """The reference's ``last_measurement``: the last match's measurement, whose centre is
        warped only from the frame after the track was frozen on (its area never)."""
        return self._tracks.last_measurement_xysr[rows]

    def _appearance_similarity(
        self, det_rows: np.ndarray, feasible: np.ndarray | None
    ) -> np.ndarray | None:
        """``weights * S`` (tracks x ``det_rows``), ``S`` the cosine similarity, zero for pairs
        where either side has no embedding; None when no pair has one."""
        table = self._tracks
        if self._features is None or len(table) == 0 or len(det_rows) == 0:
            return None
        usable = table.has_embedding[:, None] & self._has_feature[det_rows][None, :]
        if not usable.any():
            return None
        similarity = table.embeddings @ self._features[det_rows].T
        if not usable.all():
            similarity[~usable] = 0.0
        if self.aw_off:
            return similarity * self.w_association_emb
        if feasible is not None:
            usable &= feasible
        weights = adaptive_weights(similarity, self.w_association_emb, self.aw_param, usable)
        return similarity * weights

    def _apply_matches(
        self,
        track_rows: np.ndarray,
        det_rows: np.ndarray,
        raw: np.ndarray,
        previous_xyxy: np.ndarray,
    ) -> np.ndarray:
        measurements = super()._apply_matches(track_rows, det_rows, raw, previous_xyxy)
        if len(track_rows) == 0:
            return measurements
        table = self._tracks
        table.last_measurement_xysr[track_rows] = measurements
        if self._features is None:
            return measurements
        with_feature = self._has_feature[det_rows]
        if with_feature.all():
            rows, dets = track_rows, det_rows
        else:
            rows, dets = track_rows[with_feature], det_rows[with_feature]
            if len(rows) == 0:
                return measurements
        features = self._features[dets]
        alpha = self.dynamic_alpha(raw[dets, 4])[:, None]
        blended = table.embeddings[rows]
        blended *= alpha
        blended += (1.0 - alpha) * features
        norms = _row_norms(blended)
        # A track's first embedding is taken as it is; a blend that cancels out (only possible
        # for opposite embeddings with alpha near 1/2) falls back to the detection's.
        replace = ~table.has_embedding[rows] | ~(norms > 0)
        if replace.any():
            blended[replace] = features[replace]
            norms[replace] = 1.0
        blended /= norms[:, None]
        table.embeddings[rows] = blended
        table.has_embedding[rows] = True
        return measurements

    def _initiate(self, det_rows: np.ndarray, raw: np.ndarray) -> None:
        first = len(self._tracks)
        super()._initiate(det_rows, raw)
        if self._features is None or len(det_rows) == 0:
            return
        table = self._tracks
        new_rows = np.arange(first, len(table))
        with_feature = self._has_feature[det_rows]
        table.embeddings[new_rows[with_feature]] = self._features[det_rows[with_feature]]
        table.has_embedding[new_rows[with_feature]] = True

    # -- helpers -----------------------------------------------------------------------------------

    # -- re-entry gallery (reidsort; off by default) ------------------------------------------
    def _output(self) -> np.ndarray:
        """OC-SORT's output; with the gallery, tracks about to be deleted (missed more than
        ``max_age`` frames) are remembered by their embedding first, and a track reported for
        the first time takes a remembered id when its embedding matches one."""
        if not self.reentry.enabled:
            return super()._output()
        table = self._tracks
        ints = table.ints
        dying = np.flatnonzero(ints[:, _TIME_SINCE_UPDATE] > self.max_age)
        dying = dying[table.has_embedding[dying]]
        dying = dying[[int(i) in self._reported_ids for i in ints[dying, _TRACK_ID]]]
        if len(dying):
            self.reentry.remember(
                ints[dying, _TRACK_ID],
                table.embeddings[dying],
                self.frame_count,
                ints[dying, _CLASS_ID],
            )
        out = super()._output()
        ids = out[:, OutputColumn.TRACK_ID].astype(np.int64)
        first = np.array([int(i) not in self._reported_ids for i in ids], dtype=bool)
        if first.any() and len(self.reentry):
            rows = np.flatnonzero(np.isin(ints[:, _TRACK_ID], ids[first]))
            rows = rows[table.has_embedding[rows]]
            if len(rows):
                new_ids = ints[rows, _TRACK_ID].copy()
                old = self.reentry.claim(
                    table.embeddings[rows],
                    self.frame_count,
                    ints[:, _TRACK_ID],
                    ints[rows, _CLASS_ID],
                )
                claimed = old != NO_CLAIM
                ints[rows[claimed], _TRACK_ID] = old[claimed]
                for new_id, old_id in zip(new_ids[claimed].tolist(), old[claimed].tolist()):
                    out[ids == new_id, OutputColumn.TRACK_ID] = old_id
        self._reported_ids.update(out[:, OutputColumn.TRACK_ID].astype(np.int64).tolist())
        return out


def adaptive_weights(
    similarity: np.ndarray,
    w_association_emb: float,
    max_gap: float,
    usable: np.ndarray | None = None,
) -> np.ndarray:
    """Adaptive appearance weights ``(T, N)`` for a similarity matrix ``(T, N)`` (tracks x
    detections): ``w + gap_track[:, None] / 2 + gap_det[None, :] / 2``, where ``gap`` is the
    difference between the best and second-best similarity of a track over detections
    (resp. of a detection over tracks), capped at ``max_gap``, and 0 with fewer than two
    candidates (reference ``compute_aw_new_metric``, which works on the transposed matrix).
    ``usable`` masks the entries that may be candidates (all by default).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    every_pair = usable is None or bool(np.asarray(usable).all())
    # _top_gap does not write to the candidates
    candidates = similarity if every_pair else np.where(usable, similarity, _EXCLUDED)
    gap_track = _top_gap(candidates, axis=1, max_gap=max_gap, all_finite=every_pair)
    gap_det = _top_gap(candidates, axis=0, max_gap=max_gap, all_finite=every_pair)
    return w_association_emb + gap_track[:, None] / 2.0 + gap_det[None, :] / 2.0


def _top_gap(
    candidates: np.ndarray, axis: int, max_gap: float, all_finite: bool = False
) -> np.ndarray:
    """``min(top1 - top2, max_gap)`` along ``axis``; 0 where fewer than two candidates.
    ``all_finite``: the caller knows every candidate is a finite similarity (none excluded)."""
    if candidates.shape[axis] < 2:
        return np.zeros(candidates.shape[1 - axis])
    # Ascending sort of the negated values: the same top two as a partition (NaN last), and
    # cheaper for the few rows / columns of a frame.
    ordered = np.sort(-candidates, axis=axis)
    if axis == 0:
        first, second = ordered[0], ordered[1]
    else:
        first, second = ordered[:, 0], ordered[:, 1]
    if all_finite:  # the same values as below, without the masks
        gap = second - first
        return np.minimum(gap, max_gap, out=gap)
    gap = np.zeros(len(first))
    # second (or both) excluded: the gap stays 0 (-inf - -inf is never evaluated)
    np.subtract(second, first, out=gap, where=np.isfinite(second))
    gap[~np.isfinite(gap)] = 0.0
    return np.minimum(gap, max_gap, out=gap)


def _row_norms(rows: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(rows, axis=1)`` for real rows (the same sum, without its dispatch)."""
    return np.sqrt(np.add.reduce(rows * rows, axis=1))


def _warp_centre(
    means: np.ndarray, covariances: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's ``xysr`` warp: centre ``M c + t``, centre velocity ``M v``, the two
    matching diagonal covariance blocks ``M P M^T``; area, aspect and the rest untouched."""
    linear, translation = affine[:, :2], affine[:, 2]
    means = means.copy()
    covariances = covariances.copy()
    means[:, _CENTRE] = means[:, _CENTRE] @ linear.T + translation
    means[:, _CENTRE_VELOCITY] = means[:, _CENTRE_VELOCITY] @ linear.T
    for block in (_CENTRE, _CENTRE_VELOCITY):
        index = np.ix_(range(len(covariances)), block, block)
        covariances[index] = linear @ covariances[index] @ linear.T
    return means, covariances


def _warp_corners(xyxy: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Boxes ``(..., 4)`` with both corners mapped by ``M p + t`` (reference
    ``apply_affine_correction`` on observations)."""
    linear, translation = affine[:, :2], affine[:, 2]
    top_left = xyxy[..., :2] @ linear.T + translation
    bottom_right = xyxy[..., 2:] @ linear.T + translation
    return np.concatenate([top_left, bottom_right], axis=-1)
