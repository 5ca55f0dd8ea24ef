"""Re-entry gallery: a person who leaves and comes back gets their old track id.

Every online tracker deletes a track some frames after its object was last seen (DeepSORT
``max_age``, ByteTrack/BoT-SORT ``track_buffer``); the same person walking back in later starts
a new track with a new id, an identity switch that appearance could have prevented. A
:class:`ReentryGallery` keeps one appearance feature per deleted (confirmed) track for
``max_frames`` frames, and when a *new* track becomes confirmed, hands it the id of the
remembered track it looks like, if any is close enough.

Rules (what makes it safe to bolt onto any tracker):

* Only the moment of confirmation can claim an id, and all tracks confirmed in one frame are
  matched against the whole gallery in **one** assignment
  (:func:`~reidsort.tracking.linear_assignment.min_cost_matching`, cosine distance, pairs above
  ``max_dist`` rejected): two returning people cannot both take the best-looking id, and their
  order in the frame does not decide who gets which.
* An id leaves the gallery when it is claimed, and the gallery only ever holds ids of deleted
  tracks, so no two live tracks can share an id; :meth:`ReentryGallery.claim` also refuses any
  entry whose id is in ``live_ids`` (a guard against a caller breaking that rule).
* Ids are never reused otherwise: a claim replaces the new track's fresh id (which the tracker
  simply never uses again), it does not recycle a counter.
* Entries expire ``max_frames`` frames after the frame they were remembered in (the deletion
  frame): the total time from a person's last sighting to a possible re-entry is the tracker's
  own deletion delay plus that window.

Features are compared by cosine distance whatever the tracker's own metric: each remembered and
query feature is scaled to unit length here (rows that are non-finite or zero are ignored).

Integration into a tracker (three calls; see ``DeepSortTracker`` and ``BotSortTracker``)::

    gallery = ReentryGallery.from_seconds(reentry_seconds, frame_rate, reentry_max_dist)
    # 1. in reset():
    gallery.reset()
    # 2. when confirmed tracks are deleted in frame t (features: one row per track):
    gallery.remember(deleted_ids, deleted_features, t)
    # 3. when tracks become confirmed in frame t (after step 2 of the same frame):
    old = gallery.claim(new_features, t, live_ids)   # (K,) old id or -1 (keep the new id)
    track_ids[old >= 0] = old[old >= 0]

Give each deleted track the feature that best summarises it: DeepSORT the mean of its gallery,
trackers with one moving-average feature per track (BoT-SORT, StrongSORT, Deep OC-SORT) that
feature; pass ``class_aware=per_class`` and ``class_ids`` where tracks keep their class. A tracker
that reports tracks before they are confirmed should stop doing so while the gallery is on (see
``BotSortTracker``): otherwise a returning person is shown with a fresh id for a frame and then
with the old one, one more identity switch.

NumPy only, vectorised over entries and queries (one matrix product per claim).
"""

from __future__ import annotations

import numpy as np

from reidsort.tracking.linear_assignment import INFEASIBLE_COST, min_cost_matching

#: Frame rate assumed when a tracker is given none: only converts ``reentry_seconds`` to frames
#: (DeepSORT, StrongSORT and Deep OC-SORT count their own windows in frames).
DEFAULT_FRAME_RATE: float = 30.0
#: Default ``reentry_max_dist`` (cosine distance). DeepSORT's own appearance threshold is 0.2
#: (``max_cosine_distance``), but it is applied inside the Kalman gate, which rules out nearly
#: all wrong pairs; a re-entry match has no motion evidence at all (the person may come back
#: anywhere, seconds later), so it must be stricter: a wrong claim merges two people's tracks,
#: which costs more than the identity switch it tries to save. Measured with the histogram
#: embedder (a deleted track's mean of 100 / EMA feature against a newcomer's mean of 3 / EMA of
#: 2, people matched to the ground truth): different people fall below 0.15 in 0% of the pairs on
#: the synthetic re-entry sequence and in 1.7-2.5% on TUD-Campus + TUD-Stadtmitte, below 0.2 in
#: 5-8% on TUD; the same person after a gap falls below 0.15 in 50% (synthetic) and 75-81% (TUD)
#: of the cases. 0.15 keeps wrong claims rare at the price of missing some returns; a learned
#: Re-ID model separates people better and may afford more (tune it: it is embedder-specific).
DEFAULT_REENTRY_MAX_DIST: float = 0.15
#: ``claim`` result for a query that keeps its new id.
NO_CLAIM: int = -1
#: Entries are features in single precision, like every embedding in the trackers.
FEATURE_DTYPE = np.float32


class ReentryGallery:
    """Features of deleted tracks, kept ``max_frames`` frames, claimable once by a new track.

    Parameters
    ----------
    max_frames:
        How many frames after its deletion an id can still be claimed; 0 disables the gallery
        (:meth:`remember` stores nothing, :meth:`claim` returns all -1).
    max_dist:
        Largest cosine distance (``1 - cos``, in [0, 2]) of an accepted claim.
    class_aware:
        If True, an entry can only be claimed by a query of its own class (``class_ids`` must
        then be given to :meth:`remember` and :meth:`claim`); trackers pass their ``per_class``.
    """

    def __init__(
        self, max_frames: int, max_dist: float = DEFAULT_REENTRY_MAX_DIST, class_aware: bool = False
    ) -> None:
        if not (int(max_frames) == max_frames and max_frames >= 0):
            raise ValueError(f"reentry max_frames must be an integer >= 0, got {max_frames}")
        if not (np.isfinite(max_dist) and 0 <= max_dist <= 2):
            raise ValueError(f"reentry_max_dist must be in [0, 2], got {max_dist}")
        self.max_frames = int(max_frames)
        self.max_dist = float(max_dist)
        self.class_aware = bool(class_aware)
        self.reset()

    @classmethod
    def from_seconds(
        cls,
        reentry_seconds: float | None,
        frame_rate: float,
        max_dist: float = DEFAULT_REENTRY_MAX_DIST,
        class_aware: bool = False,
    ) -> ReentryGallery:
        """A gallery keeping entries ``round(reentry_seconds * frame_rate)`` frames
        (``reentry_seconds`` None or 0: disabled)."""
        seconds = 0.0 if reentry_seconds is None else float(reentry_seconds)
        if not (np.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"reentry_seconds must be >= 0 or null, got {reentry_seconds}")
        if not (np.isfinite(frame_rate) and frame_rate > 0):
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
        return cls(round(seconds * float(frame_rate)), max_dist, class_aware)

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every entry."""
        self._ids = np.zeros(0, dtype=np.int64)
        self._frames = np.zeros(0, dtype=np.int64)
        self._classes = np.zeros(0, dtype=np.int64)
        self._features: np.ndarray | None = None  # (E, D) unit rows once anything was stored

    @property
    def enabled(self) -> bool:
        return self.max_frames > 0

    @property
    def ids(self) -> np.ndarray:
        """Ids currently claimable (before expiry at the next call), in the order remembered."""
        return self._ids.copy()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, track_id: object) -> bool:
        return bool(np.count_nonzero(self._ids == track_id))

    # -- the two calls -------------------------------------------------------------------------
    def remember(self, track_ids, features, frame: int, class_ids=None) -> None:
        """Keep the features of tracks deleted in ``frame`` (``(K,)`` ids, ``(K, D)`` features).

        Rows whose feature is non-finite or zero (a track that never had an embedding) are
        skipped. An id already in the gallery is replaced (a caller should never do that).
        """
        if not self.enabled:
            return
        track_ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        if len(track_ids) == 0:
            return
        features = np.asarray(features, dtype=np.float64).reshape(len(track_ids), -1)
        classes = self._classes_of(class_ids, len(track_ids))
        unit, usable = _unit_rows(features)
        if not np.count_nonzero(usable):
            return
        self._expire(frame)
        if self._features is not None and unit.shape[1] != self._features.shape[1]:
            raise ValueError(
                f"re-entry features have dimension {unit.shape[1]}, "
                f"the gallery holds {self._features.shape[1]}"
            )
        track_ids, unit, classes = track_ids[usable], unit[usable], classes[usable]
        self._keep(~np.isin(self._ids, track_ids))
        self._ids = np.concatenate([self._ids, track_ids])
        self._frames = np.concatenate([self._frames, np.full(len(track_ids), int(frame))])
        self._classes = np.concatenate([self._classes, classes])
        self._features = unit if self._features is None else np.concatenate([self._features, unit])

    def claim(self, features, frame: int, live_ids=None, class_ids=None) -> np.ndarray:
        """Old ids for the tracks confirmed in ``frame`` (``(K, D)`` features), -1 where none.

        Expired entries are dropped first; then one assignment of all ``K`` queries against all
        entries on cosine distance, pairs above ``max_dist`` (or of another class, or of an id
        in ``live_ids``) rejected. Claimed entries leave the gallery.
        """
        features = np.asarray(features, dtype=np.float64)
        count = len(features)
        result = np.full(count, NO_CLAIM, dtype=np.int64)
        if not self.enabled or count == 0:
            return result
        self._expire(frame)
        if len(self._ids) == 0:
            return result
        features = features.reshape(count, -1)
        if features.shape[1] != self._features.shape[1]:
            raise ValueError(
                f"re-entry features have dimension {features.shape[1]}, "
                f"the gallery holds {self._features.shape[1]}"
            )
        classes = self._classes_of(class_ids, count)
        unit, usable = _unit_rows(features)
        cost = np.maximum(0.0, 1.0 - unit @ self._features.T.astype(np.float64))
        infeasible = ~usable[:, None] | np.zeros((1, len(self._ids)), dtype=bool)
        if live_ids is not None:
            infeasible |= np.isin(self._ids, np.asarray(live_ids, dtype=np.int64))[None, :]
        if self.class_aware:
            infeasible |= classes[:, None] != self._classes[None, :]
        cost[infeasible] = INFEASIBLE_COST
        matches = min_cost_matching(cost, self.max_dist, range(count), range(len(self._ids)))
        if not matches.matches:
            return result
        queries, entries = np.array(matches.matches, dtype=np.int64).T
        result[queries] = self._ids[entries]
        keep = np.ones(len(self._ids), dtype=bool)
        keep[entries] = False
        self._keep(keep)
        return result

    # -- helpers -------------------------------------------------------------------------------
    def _expire(self, frame: int) -> None:
        if len(self._ids):
            self._keep(frame - self._frames <= self.max_frames)

    def _keep(self, mask: np.ndarray) -> None:
        if np.count_nonzero(mask) == len(mask):
            return
        self._ids, self._frames, self._classes = (
            self._ids[mask],
            self._frames[mask],
            self._classes[mask],
        )
        self._features = self._features[mask]

    def _classes_of(self, class_ids, count: int) -> np.ndarray:
        if class_ids is None:
            if self.class_aware:
                raise ValueError("a class-aware re-entry gallery needs class_ids")
            return np.zeros(count, dtype=np.int64)
        return np.asarray(class_ids, dtype=np.int64).reshape(count)


def _unit_rows(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit length (float32) and which rows could be (finite, non-zero)."""
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.sqrt((features * features).sum(axis=1))
    usable = np.isfinite(norms) & (norms > 0)
    unit = np.zeros(features.shape, dtype=FEATURE_DTYPE)
    unit[usable] = features[usable] / norms[usable, None]
    return unit, usable
