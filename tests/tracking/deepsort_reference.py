"""Runs deep-sort-realtime's port of nwojke/deep_sort next to our tracker on identical inputs.

Only the reference's core classes are used (``Tracker``, ``NearestNeighborDistanceMetric``,
``Detection`` and its NMS), not its ``DeepSort`` convenience wrapper, which adds its own
defaults. Detections are filtered by confidence and NMS-ed with the reference's own function
before they reach the reference tracker, mirroring nwojke's ``deep_sort_app.py``; our tracker
gets the raw frame and does the same internally. Boxes are handed to the reference in float64
as nwojke's ``Detection`` keeps them (deep-sort-realtime would round them to float32).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from reidsort.tracking import DeepSortTracker, iou_tlwh, read_mot_detections, read_mot_ground_truth
from reidsort.tracking.mot_io import _frame_slices
from reidsort.tracking.tracker import LowConfidenceWarning

#: Sequences the issue asks to compare on (paths relative to the shared data root).
TUD_SEQUENCES = ("mot/TUD-Campus", "mot/TUD-Stadtmitte")
#: The eight MOT15 train sequences shipped as text only (gt + det, no images).
MOT15_TEXT_NAMES = (
    "ADL-Rundle-6",
    "ADL-Rundle-8",
    "ETH-Bahnhof",
    "ETH-Pedcross2",
    "ETH-Sunnyday",
    "KITTI-13",
    "KITTI-17",
    "Venice-2",
)
MOT15_TEXT_SEQUENCES = tuple(f"mot/MOT15-text/{name}" for name in MOT15_TEXT_NAMES)
#: The reference configuration: deep_sort_app.py's settings (min_confidence 0.8 is the app's
#: default; conf/tracker/deepsort.yaml and the library default to 0.3, so it is passed here).
REFERENCE_CONFIG = {
    "max_dist": 0.2,
    "max_iou_distance": 0.7,
    "max_age": 30,
    "n_init": 3,
    "nn_budget": 100,
    "min_confidence": 0.8,
    "nms_max_overlap": 1.0,
    "metric": "cosine",
}


@dataclass(frozen=True)
class TrackRecord:
    """What must agree frame by frame: id, state, misses, hits (and the Kalman mean, approx.)."""

    track_id: int
    state: int
    time_since_update: int
    hits: int


def make_reference_tracker(config: dict, clear_features: bool):
    """A deep-sort-realtime core ``Tracker`` with our config; optionally nwojke's gallery rule.

    deep-sort-realtime keeps each confirmed track's newest feature after storing it, so that
    feature is stored again (a duplicate) on every later frame; nwojke/deep_sort clears the
    list. ``clear_features=True`` restores nwojke's rule by dropping that stale first feature
    of every track when the gallery is updated (clearing the list directly would crash
    deep-sort-realtime, which indexes ``features[-1]``).
    """
    from deep_sort_realtime.deep_sort.nn_matching import NearestNeighborDistanceMetric
    from deep_sort_realtime.deep_sort.tracker import Tracker

    class NwojkeGalleryTracker(Tracker):
        def update(self, detections, today=None):
            # Confirmed now => its feature list starts with the stale, already-stored feature.
            stale = {t.track_id for t in self.tracks if t.is_confirmed()}
            store = self.metric.partial_fit

            def partial_fit_without_stale(features, targets, active_targets):
                seen: set = set()
                keep = []
                for index, target in enumerate(targets.tolist()):
                    if target in stale and target not in seen:
                        seen.add(target)
                        continue
                    keep.append(index)
                store(features[keep], targets[keep], active_targets)

            self.metric.partial_fit = partial_fit_without_stale
            try:
                super().update(detections, today)
            finally:
                del self.metric.partial_fit

    metric = NearestNeighborDistanceMetric(
        config["metric"], config["max_dist"], config["nn_budget"]
    )
    tracker_class = NwojkeGalleryTracker if clear_features else Tracker
    return tracker_class(
        metric,
        max_iou_distance=config["max_iou_distance"],
        max_age=config["max_age"],
        n_init=config["n_init"],
    )


def reference_frame_input(dets: np.ndarray, embeddings: np.ndarray, config: dict):
    """The reference app's preprocessing: confidence filter, then its NMS (score order)."""
    from deep_sort_realtime.deep_sort.detection import Detection
    from deep_sort_realtime.utils.nms import non_max_suppression

    keep = np.flatnonzero(dets[:, 4] >= config["min_confidence"])
    tlwh = dets[keep, :4].copy()
    tlwh[:, 2:] -= tlwh[:, :2]
    picked = (
        non_max_suppression(tlwh, config["nms_max_overlap"], dets[keep, 4]) if len(keep) else []
    )
    detections = []
    for i in picked:
        detection = Detection(tlwh[i], dets[keep[i], 4], embeddings[keep[i]])
        # nwojke's Detection keeps the box in float64; deep-sort-realtime rounds it to float32,
        # which can flip exact ties of the assignment (equal total cost, different leftovers).
        detection.ltwh = np.asarray(tlwh[i], dtype=np.float64)
        detections.append(detection)
    return detections


def reference_records(tracker) -> list[TrackRecord]:
    return [
        TrackRecord(int(t.track_id), int(t.state), t.time_since_update, t.hits)
        for t in tracker.tracks
    ]


def our_records(tracker: DeepSortTracker) -> list[TrackRecord]:
    return [
        TrackRecord(s.track_id, int(s.state), s.time_since_update, s.hits) for s in tracker.tracks
    ]


def random_embeddings(count: int, dim: int, seed: int) -> np.ndarray:
    """Seeded random vectors, one per detection row: appearance never matches (all ~orthogonal)."""
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)


def identity_embeddings(sequence_dir: Path, dim: int, seed: int, noise: float = 0.45) -> np.ndarray:
    """Vectors that behave like a decent Re-ID model: detections matched (IoU >= 0.5) to the same
    ground-truth person share a base vector plus noise; others are random. Cosine distances
    between views of one person straddle the 0.2 threshold, so the cascade is exercised."""
    rng = np.random.default_rng(seed)
    detections = read_mot_detections(sequence_dir / "det" / "det.txt")
    truth = read_mot_ground_truth(sequence_dir / "gt" / "gt.txt")
    bases = {int(i): rng.standard_normal(dim) for i in np.unique(truth.track_ids)}
    out = rng.standard_normal((len(detections), dim))
    truth_rows = _frame_slices(truth.frame_ids)
    for frame, det_rows in _frame_slices(detections.frame_ids).items():
        gt_rows = truth_rows.get(frame)
        if gt_rows is None:
            continue
        overlap = iou_tlwh(detections.tlwh[det_rows], truth.tlwh[gt_rows])
        rows, cols = linear_sum_assignment(-overlap)
        for r, c in zip(rows, cols):
            if overlap[r, c] >= 0.5:
                out[det_rows[r]] = bases[
                    int(truth.track_ids[gt_rows[c]])
                ] + noise * rng.standard_normal(dim)
    return out.astype(np.float32)


def histogram_embeddings(sequence_dir: Path, bins: int = 8) -> np.ndarray:
    """Colour histograms (bins^3, BGR) of each detection's crop; needs OpenCV and the images."""
    import cv2

    detections = read_mot_detections(sequence_dir / "det" / "det.txt")
    out = np.zeros((len(detections), bins**3), dtype=np.float32)
    for frame, rows in _frame_slices(detections.frame_ids).items():
        image = cv2.imread(str(sequence_dir / "img1" / f"{frame:06d}.jpg"), cv2.IMREAD_COLOR)
        height, width = image.shape[:2]
        for row in rows:
            x, y, w, h = detections.tlwh[row]
            x1, y1 = max(int(x), 0), max(int(y), 0)
            x2, y2 = min(int(x + w), width), min(int(y + h), height)
            crop = image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]
            hist = cv2.calcHist([crop], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).reshape(-1)
            out[row] = hist + 1e-3  # never all-zero
    return out


def single_threaded_blas():
    """Pin BLAS to one thread while the reference runs, when threadpoolctl is installed.

    The reference solves tiny triangular systems through BLAS; with multi-threaded OpenBLAS and
    a busy second core each call can take milliseconds. Results do not depend on this.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def reference_output(tracker, output_lost_frames: int) -> dict[int, np.ndarray]:
    """The rows the reference would write: track id -> ``[x1, y1, x2, y2]``.

    ``output_lost_frames=1`` is deep_sort_app.py's rule (``if not track.is_confirmed() or
    track.time_since_update > 1: continue``, then ``track.to_tlwh()``); 0 keeps only tracks
    matched this frame (deep-sort-realtime's wrapper, our default).
    """
    rows = {}
    for track in tracker.tracks:
        if not track.is_confirmed() or track.time_since_update > output_lost_frames:
            continue
        tlwh = np.asarray(track.to_tlwh(), dtype=np.float64)
        rows[int(track.track_id)] = np.concatenate([tlwh[:2], tlwh[:2] + tlwh[2:]])
    return rows


def compare_on_sequence(
    sequence_dir: Path,
    embeddings: np.ndarray,
    config: dict,
    gallery_rule: str = "nwojke",
    max_frames: int | None = None,
    output_lost_frames: int = 0,
    stats: dict | None = None,
) -> tuple[int, str | None]:
    """Run both trackers; returns (frames compared, first difference or None).

    ``gallery_rule="nwojke"``: our default tracker vs the reference core with nwojke's gallery
    rule restored. ``"deep_sort_realtime"``: our tracker with ``repeat_last_embedding=True`` vs
    the unmodified deep-sort-realtime core. Our tracker runs with ``output_lost_frames``; its
    output (ids and boxes) must equal :func:`reference_output` under the same rule, and rows of
    tracks missed this frame must have score NaN and det_index -1. ``stats`` (if given)
    receives ``rows`` and ``lost_rows`` (output rows of tracks missed this frame).
    """
    if gallery_rule not in ("nwojke", "deep_sort_realtime"):
        raise ValueError(f"unknown gallery_rule {gallery_rule!r}")
    dsr_rule = gallery_rule == "deep_sort_realtime"
    detections = read_mot_detections(sequence_dir / "det" / "det.txt")
    last = detections.last_frame if max_frames is None else min(max_frames, detections.last_frame)
    # The app's min_confidence (0.8) drops most detections of some sequences on purpose.
    with single_threaded_blas(), warnings.catch_warnings():
        warnings.simplefilter("ignore", LowConfidenceWarning)
        return _compare(
            sequence_dir,
            detections,
            embeddings,
            config,
            dsr_rule,
            last,
            output_lost_frames,
            {} if stats is None else stats,
        )


def _compare(
    sequence_dir, detections, embeddings, config, dsr_rule, last, output_lost_frames, stats
) -> tuple[int, str | None]:
    ours = DeepSortTracker(
        **config, repeat_last_embedding=dsr_rule, output_lost_frames=output_lost_frames
    )
    stats.update(rows=0, lost_rows=0)
    reference = make_reference_tracker(config, clear_features=not dsr_rule)
    for frame, dets, rows in detections.iter_frames(last_frame=last):
        output = ours.update(dets, embeddings[rows])
        reference.predict()
        reference.update(reference_frame_input(dets, embeddings[rows], config))
        mine, theirs = our_records(ours), reference_records(reference)
        if mine != theirs:
            return frame, f"{sequence_dir.name} frame {frame}: ours {mine} reference {theirs}"
        reported = reference_output(reference, output_lost_frames)
        output_ids = output[:, 4].astype(int).tolist()
        if sorted(output_ids) != sorted(reported):
            return frame, (
                f"{sequence_dir.name} frame {frame}: output ids differ "
                f"(ours {sorted(output_ids)}, reference {sorted(reported)})"
            )
        if len(output):
            boxes = np.array([reported[i] for i in output_ids])
            if not np.allclose(output[:, :4], boxes, rtol=1e-7, atol=1e-6):
                return frame, f"{sequence_dir.name} frame {frame}: output boxes differ"
        missed = {int(t.track_id) for t in reference.tracks if t.time_since_update > 0}
        lost = np.array([i in missed for i in output_ids], dtype=bool)
        matched_ok = np.isfinite(output[~lost, 5]).all() and (output[~lost, 7] >= 0).all()
        lost_ok = np.isnan(output[lost, 5]).all() and (output[lost, 7] == -1).all()
        if not (matched_ok and lost_ok):
            return frame, f"{sequence_dir.name} frame {frame}: score / det_index of output rows"
        stats["rows"] += len(output)
        stats["lost_rows"] += int(np.count_nonzero(lost))
        means_ours = np.array([s.mean_xyah for s in ours.tracks]).reshape(-1, 8)
        means_ref = np.array([t.mean for t in reference.tracks]).reshape(-1, 8)
        if not np.allclose(means_ours, means_ref, rtol=1e-7, atol=1e-6):
            return frame, f"{sequence_dir.name} frame {frame}: Kalman means differ"
    return last, None
