"""FairMOT's association (Zhang et al., IJCV 2021; JDE's, Wang et al., ECCV 2020), vectorised.

The tracker behind joint detection and embedding models: one network gives the boxes and an
embedding of every box, and this tracker links them. Algorithm (ifzhang/FairMOT
``src/lib/tracker/multitracker.py`` ``JDETracker.update`` and ``matching.py``), per frame:

1. Detections scoring ``> conf_thres`` (0.4) are kept; the others are ignored (no
   high/low split as in ByteTrack).
2. Kalman-predict the *pool*, the activated tracked tracks and the lost tracks (a lost track's
   height velocity zeroed first), with the DeepSORT ``xyah`` filter; unconfirmed tracks (born in
   the previous frame) are not predicted. An optional camera-motion ``warp`` is then applied to
   every track's mean and covariance (not in FairMOT; as DeepSORT's and BoT-SORT's CMC).
3. **Embedding association**, pool x all detections: the cosine distance ``d_emb`` between the
   track's smoothed feature and the detection's embedding (``embedding_distance``), fused with
   the Kalman filter's squared Mahalanobis distance ``d_maha`` of the detection's ``xyah`` box
   (``fuse_motion``): ``cost = mc_lambda * d_emb + (1 - mc_lambda) * d_maha`` with
   ``mc_lambda`` 0.98, and infeasible where ``d_maha`` exceeds the chi-square 95 % quantile
   (4 degrees of freedom, 9.4877; 2 and the centre only with ``gating_only_position``).
   Assignment up to ``match_thresh`` (0.4). A matched lost track is *re-activated* with its id.
4. **IoU association**: the pool's still unmatched *tracked* tracks x the detections left over,
   ``1 - IoU`` up to ``iou_match_thresh`` (0.5). Tracks still unmatched become lost.
5. Unconfirmed tracks x the detections still left, ``1 - IoU`` up to
   ``unconfirmed_match_thresh`` (0.7): matched ones are activated, the others removed.
6. Leftover detections scoring ``>= new_track_thresh`` (FairMOT ``det_thresh`` =
   ``conf_thres``) start tracks (activated at once in the tracker's first frame only).
7. Lost tracks unseen for more than ``int(frame_rate / 30 * track_buffer)`` frames are removed
   (FairMOT ``buffer_size`` / ``max_time_lost``); duplicates between tracked and lost tracks
   (``1 - IoU < 0.15``) lose the one tracked for fewer frames. Both exactly as ByteTrack, which
   inherited them from FairMOT: this class is :class:`ByteTrackTracker` with steps 3-6
   replaced (hook ``_associate``).

Every match (all three associations) blends the detection's unit-length embedding into the
track's feature, ``f <- normalise(ema_alpha f + (1 - ema_alpha) e)`` with ``ema_alpha`` 0.9
(``STrack.update_features``, ``smooth_feat``); a new track starts from its first embedding.

**Without embeddings** (``embeddings=None``, FairMOT has no such mode): step 3 uses the IoU
distance ``1 - IoU`` in place of ``d_emb``, with the same Mahalanobis fusion, gate and
``match_thresh``; steps 4-7 are unchanged. So a tracked track is matched by overlap in step 3 or
4, and a lost track is re-found when its predicted box overlaps the detection well
(``0.98 (1 - IoU) + 0.02 d_maha <= 0.4``, i.e. IoU of about 0.6 or more). The same fallback
applies to a single pair when the track or the detection has no usable embedding (zero or
non-finite vectors are unusable).

Output: the activated tracked tracks with their Kalman-corrected box, the matched detection's
score, class and row (the contract of :class:`reidsort.tracking.protocol.MultiObjectTracker`).
FairMOT keeps a re-activated track's old score; here the output score is always the matched
detection's, as the other trackers. ``per_class`` (not in FairMOT) restricts every association
and the duplicate search to one class.
"""

from __future__ import annotations

import numpy as np

from reidsort.tracking.botsort import BotSortTracker
from reidsort.tracking.bytetrack import (
    REFERENCE_FRAME_RATE,
    Association,
    ByteTrackTracker,
    FrameDetections,
    _match,
    _pairs,
    _require,
)
from reidsort.tracking.detection import tlwh_to_xyah
from reidsort.tracking.kalman_filter import CHI2_INV_95
from reidsort.tracking.linear_assignment import INFEASIBLE_COST

#: FairMOT ``opts.py`` ``--conf_thres``: detections scoring at or below it are not tracked.
DEFAULT_CONF_THRES: float = 0.4
#: ``fuse_motion``'s ``lambda_``: the weight of the embedding distance in the fused cost.
DEFAULT_MC_LAMBDA: float = 0.98


class JDETracker(ByteTrackTracker):
    """FairMOT's tracker with the reference settings; knobs are plain keyword arguments.

    Parameters
    ----------
    conf_thres:
        Detections scoring ``<=`` this are ignored (FairMOT ``opts.py``: 0.4).
    new_track_thresh:
        A leftover detection scoring at least this starts a track; None (default) means
        ``conf_thres`` (``multitracker.py``: ``det_thresh = opt.conf_thres``).
    match_thresh:
        Ceiling of the fused embedding + motion cost in the first association (0.4).
    iou_match_thresh:
        Ceiling of ``1 - IoU`` in the second association of tracked tracks (0.5).
    unconfirmed_match_thresh:
        Ceiling of ``1 - IoU`` for the unconfirmed tracks (0.7).
    mc_lambda:
        Weight of the embedding distance; the squared Mahalanobis distance gets
        ``1 - mc_lambda`` (``fuse_motion`` ``lambda_``: 0.98).
    gating_only_position:
        Gate (and fuse) on the box centre only, 2 degrees of freedom (``fuse_motion``
        ``only_position``: False, i.e. the full ``xyah`` box, 4 degrees of freedom).
    ema_alpha:
        Weight of a track's previous feature in its moving average (``STrack.alpha``: 0.9).
    track_buffer, frame_rate:
        Lost tracks are kept ``int(frame_rate / 30 * track_buffer)`` frames (FairMOT: 30, and
        each sequence's frame rate from its ``seqinfo.ini``); ``frame_rate`` None = 30.
    duplicate_iou_distance:
        A tracked and a lost track closer than this ``1 - IoU`` are duplicates (0.15).
    min_box_area, aspect_ratio_thresh:
        Output filter as in :class:`ByteTrackTracker`; off by default. FairMOT's ``track.py``
        applies ``w * h > 100`` and ``w / h <= 1.6`` outside the tracker.
    output_unconfirmed:
        Also report tracks born this frame (FairMOT: False).
    per_class:
        A track only matches detections of its class (False reproduces FairMOT).
    """

    _uses_appearance = True
    # The EMA of the matched embeddings is the same as BoT-SORT's (both from FairMOT's STrack).
    _store_features = BotSortTracker._store_features
    smooth_features = BotSortTracker.smooth_features

    def __init__(
        self,
        conf_thres: float = DEFAULT_CONF_THRES,
        new_track_thresh: float | None = None,
        match_thresh: float = 0.4,
        iou_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        mc_lambda: float = DEFAULT_MC_LAMBDA,
        gating_only_position: bool = False,
        ema_alpha: float = 0.9,
        track_buffer: int = 30,
        frame_rate: float | None = REFERENCE_FRAME_RATE,
        duplicate_iou_distance: float = 0.15,
        min_box_area: float = 0.0,
        aspect_ratio_thresh: float | None = None,
        output_unconfirmed: bool = False,
        per_class: bool = False,
    ) -> None:
        _require(np.isfinite(conf_thres), f"conf_thres must be finite, got {conf_thres}")
        _require(
            np.isfinite(mc_lambda) and 0 <= mc_lambda <= 1,
            f"mc_lambda must be in [0, 1], got {mc_lambda}",
        )
        _require(
            np.isfinite(ema_alpha) and 0 <= ema_alpha < 1,
            f"ema_alpha must be in [0, 1), got {ema_alpha}",
        )
        self.mc_lambda = float(mc_lambda)
        self.gating_only_position = bool(gating_only_position)
        self.gating_threshold = CHI2_INV_95[2 if self.gating_only_position else 4]
        self.ema_alpha = float(ema_alpha)
        super().__init__(
            track_thresh=conf_thres,
            low_thresh=conf_thres,
            new_track_thresh=conf_thres if new_track_thresh is None else new_track_thresh,
            match_thresh=match_thresh,
            second_match_thresh=iou_match_thresh,
            unconfirmed_match_thresh=unconfirmed_match_thresh,
            track_buffer=track_buffer,
            frame_rate=frame_rate,
            fuse_score=False,
            fuse_score_unconfirmed=False,
            duplicate_iou_distance=duplicate_iou_distance,
            min_box_area=min_box_area,
            aspect_ratio_thresh=aspect_ratio_thresh,
            output_unconfirmed=output_unconfirmed,
            per_class=per_class,
        )

    # FairMOT's names for the thresholds.
    @property
    def conf_thres(self) -> float:
        return self.low_thresh

    @property
    def iou_match_thresh(self) -> float:
        return self.second_match_thresh

    # -- association -------------------------------------------------------------------------
    def _associate(
        self,
        pool: np.ndarray,
        unconfirmed: np.ndarray,
        lost_at_start: np.ndarray,
        iou: np.ndarray | None,
        frame: FrameDetections,
    ) -> Association:
        detections = np.arange(len(frame), dtype=np.int64)
        # Embedding + motion: the pool x every detection (appearance=True: _fuse_appearance).
        cost = self._cost(pool, detections, iou, frame, fuse=False, appearance=True)
        first = _match(cost, self.match_thresh, pool, detections)

        # IoU: the pool's unmatched tracked tracks x the detections left over.
        unmatched_pool = np.array(sorted(first.unmatched_tracks), dtype=np.int64)
        remaining = unmatched_pool[~lost_at_start[unmatched_pool]]
        leftover = np.array(sorted(first.unmatched_detections), dtype=np.int64)
        cost = self._cost(remaining, leftover, iou, frame, fuse=False, appearance=False)
        second = _match(cost, self.second_match_thresh, remaining, leftover)

        # Unconfirmed tracks x the detections still left.
        leftover = np.array(sorted(second.unmatched_detections), dtype=np.int64)
        cost = self._cost(unconfirmed, leftover, iou, frame, fuse=False, appearance=False)
        third = _match(cost, self.unconfirmed_match_thresh, unconfirmed, leftover)
        births = np.array(sorted(third.unmatched_detections), dtype=np.int64)
        return Association(
            with_features=first.matches + second.matches + third.matches,
            without_features=[],
            newly_lost=np.array(sorted(second.unmatched_tracks), dtype=np.int64),
            removed_unconfirmed=np.array(third.unmatched_tracks, dtype=np.int64),
            confirmed=_pairs(third.matches)[0],
            births=births[frame.scores[births] >= self.new_track_thresh],
        )

    def _fuse_appearance(
        self,
        cost: np.ndarray,
        iou_distance: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        frame: FrameDetections,
    ) -> np.ndarray:
        """FairMOT's first-association cost of tracks ``rows`` x detections ``cols``:
        ``mc_lambda * d_emb + (1 - mc_lambda) * d_maha``, infeasible outside the chi-square gate.
        ``d_emb`` is the cosine distance, or ``1 - IoU`` for a pair without embeddings."""
        table = self._tracks
        distance = self.embedding_distance(rows, cols, frame)
        distance = np.where(np.isnan(distance), iou_distance, distance)
        maha = self.kf.gating_distance(
            table.means.take(rows, axis=0),
            table.covariances.take(rows, axis=0),
            tlwh_to_xyah(frame.tlwh.take(cols, axis=0)),
            only_position=self.gating_only_position,
        )
        fused = self.mc_lambda * distance + (1.0 - self.mc_lambda) * maha
        fused[maha > self.gating_threshold] = INFEASIBLE_COST
        return fused

    def embedding_distance(
        self, rows: np.ndarray, cols: np.ndarray, frame: FrameDetections
    ) -> np.ndarray:
        """Cosine distance ``max(0, 1 - f . e)`` of the smoothed features of tracks ``rows`` and
        the unit embeddings of detections ``cols`` (FairMOT ``embedding_distance``); NaN where
        either side has no usable embedding."""
        table = self._tracks
        distance = np.full((len(rows), len(cols)), np.nan)
        if frame.features is None or table.features is None:
            return distance
        track_has = table.has_feature[rows]
        det_has = frame.has_feature[cols]
        if not (track_has.any() and det_has.any()):
            return distance
        similarity = table.features[rows].astype(np.float64) @ frame.features[cols].T.astype(
            np.float64
        )
        both = track_has[:, None] & det_has[None, :]
        distance[both] = np.maximum(0.0, 1.0 - similarity[both])
        return distance
