"""Review fixes of issue 16: app output rule, batched gallery distances, min_confidence default."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from reidsort.tracking import DeepSortTracker, OutputColumn
from reidsort.tracking.nn_matching import (
    BATCHED_MIN_CANDIDATES,
    AppearanceGallery,
    DistanceMetric,
)
from reidsort.tracking.tracker import (
    DEFAULT_MIN_CONFIDENCE,
    LOW_CONFIDENCE_WARN_MIN_DROPPED,
    REFERENCE_APP_MIN_CONFIDENCE,
    LowConfidenceWarning,
)


def _frame(centres, score=0.9, size=(40.0, 100.0)):
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    half = np.array(size) / 2
    scores = np.broadcast_to(score, len(centres)) - 0.001 * np.arange(len(centres))
    return np.column_stack([centres - half, centres + half, scores, np.zeros(len(centres))])


# -- output_lost_frames ------------------------------------------------------------------------
def _track_then_miss(output_lost_frames):
    tracker = DeepSortTracker(n_init=1, output_lost_frames=output_lost_frames)
    moving = [_frame([[100.0 + 5 * t, 200.0], [400.0, 300.0]]) for t in range(4)]
    outputs = [tracker.update(dets) for dets in moving]
    # Track 1 disappears for three frames, track 2 stays.
    for _ in range(3):
        outputs.append(tracker.update(_frame([[400.0, 300.0]])))
    return tracker, outputs


def test_default_output_is_matched_tracks_only():
    _, outputs = _track_then_miss(0)
    assert [sorted(o[:, OutputColumn.TRACK_ID].astype(int).tolist()) for o in outputs[4:]] == [
        [2]
    ] * 3
    assert all((o[:, OutputColumn.DETECTION_INDEX] >= 0).all() for o in outputs)


def test_app_rule_writes_track_missed_this_frame_with_predicted_box():
    tracker, outputs = _track_then_miss(1)
    ids = [sorted(o[:, OutputColumn.TRACK_ID].astype(int).tolist()) for o in outputs]
    assert ids[:4] == [[]] + [[1, 2]] * 3  # tracks are confirmed on their first match
    assert ids[4:] == [[1, 2], [2], [2]]  # missed once: written; missed twice: not
    missed_frame = outputs[4]
    lost = missed_frame[missed_frame[:, OutputColumn.TRACK_ID] == 1][0]
    assert np.isnan(lost[OutputColumn.SCORE])
    assert lost[OutputColumn.DETECTION_INDEX] == -1
    assert lost[OutputColumn.CLASS_ID] == 0
    # The predicted box: the track moved +5 px per frame, so its prediction is ahead of frame 3.
    last_seen = outputs[3][outputs[3][:, OutputColumn.TRACK_ID] == 1][0]
    assert lost[OutputColumn.X1] > last_seen[OutputColumn.X1]
    np.testing.assert_allclose(
        lost[OutputColumn.X2] - lost[OutputColumn.X1],
        last_seen[OutputColumn.X2] - last_seen[OutputColumn.X1],
        rtol=0.05,
    )
    snapshot = next(s for s in tracker.tracks if s.track_id == 1)
    assert snapshot.time_since_update == 3  # still alive, just not written any more
    kept = missed_frame[missed_frame[:, OutputColumn.TRACK_ID] == 2][0]
    assert np.isfinite(kept[OutputColumn.SCORE]) and kept[OutputColumn.DETECTION_INDEX] == 0
    assert missed_frame.shape[1] == len(OutputColumn)


def test_app_rule_never_writes_tentative_tracks():
    tracker = DeepSortTracker(n_init=3, output_lost_frames=1)
    tracker.update(_frame([[100.0, 200.0]]))
    assert len(tracker.update(_frame([[100.0, 200.0]]))) == 0
    assert len(tracker.update(_frame(np.zeros((0, 2))))) == 0


@pytest.mark.parametrize("value", [-1, 1.5])
def test_output_lost_frames_validated(value):
    with pytest.raises(ValueError, match="output_lost_frames"):
        DeepSortTracker(output_lost_frames=value)


# -- min_confidence ----------------------------------------------------------------------------
def test_min_confidence_default_and_reference_value():
    assert DeepSortTracker().min_confidence == DEFAULT_MIN_CONFIDENCE == 0.3
    assert DeepSortTracker(min_confidence=REFERENCE_APP_MIN_CONFIDENCE).min_confidence == 0.8


def test_default_keeps_typical_detector_scores():
    tracker = DeepSortTracker(n_init=1)
    dets = _frame([[100.0, 200.0], [300.0, 200.0], [500.0, 200.0]], score=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowConfidenceWarning)
        tracker.update(dets)
        assert len(tracker.update(dets)) == 3  # confirmed on the second hit


def test_warns_once_per_tracker_when_most_detections_are_dropped():
    centres = [[100.0 * (i + 1), 200.0] for i in range(5)]
    low = _frame(centres, score=0.5)
    tracker = DeepSortTracker(min_confidence=0.8)
    with pytest.warns(LowConfidenceWarning, match=r"dropped 5 of 5 detections in frame 1"):
        tracker.update(low)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowConfidenceWarning)
        tracker.update(low)  # once per instance
        tracker.reset()
        tracker.update(low)  # also across reset()
    with pytest.warns(LowConfidenceWarning):
        DeepSortTracker(min_confidence=0.8).update(low)  # a new tracker warns again


def test_no_warning_when_few_or_a_minority_are_dropped():
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowConfidenceWarning)
        tracker = DeepSortTracker(min_confidence=0.8)
        # below the minimum count, even if all are dropped
        tracker.update(_frame([[100.0, 200.0]] * (LOW_CONFIDENCE_WARN_MIN_DROPPED - 1), 0.5))
        # a minority dropped
        scores = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5])
        dets = _frame([[100.0 * (i + 1), 200.0] for i in range(7)])
        dets[:, 4] = scores
        tracker.update(dets)
        tracker.update(np.zeros((0, 6)))


# -- batched gallery distances -----------------------------------------------------------------
def _naive_distance(gallery: AppearanceGallery, slots, queries, mask, metric):
    out = np.full((len(slots), len(queries)), np.inf)
    for i, slot in enumerate(slots):
        samples = gallery.samples(int(slot)).astype(np.float64)
        if len(samples) == 0:
            continue
        for j, query in enumerate(queries.astype(np.float64)):
            if not mask[i, j]:
                continue
            if metric == "cosine":
                out[i, j] = 1.0 - float((samples @ query).max())
            else:
                out[i, j] = max(0.0, float(((samples - query) ** 2).sum(axis=1).min()))
    return out


@pytest.mark.parametrize("budget", [7, None])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_gallery_distance_matches_naive_per_pair(metric, budget):
    rng = np.random.default_rng(0)
    dim = 24
    gallery = AppearanceGallery(metric, budget, dim, initial_slots=4)
    slots = gallery.allocate(9)
    fills = [0, 1, 3, 6, 7, 8, 15, 20, 2]  # empty, partial, exactly full, wrapped (ring)
    for step in range(max(fills)):
        active = slots[np.array(fills) > step]
        gallery.add(active, rng.standard_normal((len(active), dim)).astype(np.float32))
    gallery.release(slots[-1:])  # a released slot reads as empty
    queries = gallery.prepare_queries(
        rng.standard_normal((2 * BATCHED_MIN_CANDIDATES + 3, dim)).astype(np.float32)
    )
    mask = rng.random((len(slots), len(queries))) < 0.3
    mask[1] = True  # all queries: the one-product path with every query
    mask[2, :BATCHED_MIN_CANDIDATES] = True  # exactly at the batching threshold
    mask[3] = False
    mask[3, 0] = True  # a single candidate: matrix-vector path
    mask[4, : BATCHED_MIN_CANDIDATES - 1] = True
    mask[4, BATCHED_MIN_CANDIDATES - 1 :] = False  # just below the threshold
    for candidate_mask in (mask, None):
        full = np.ones_like(mask) if candidate_mask is None else candidate_mask
        got = gallery.distance(slots, queries, candidate_mask=candidate_mask, prepared=True)
        want = _naive_distance(gallery, slots, queries, full, metric)
        assert np.array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-4)
    assert DistanceMetric(metric) is gallery.metric


def test_gallery_distance_order_of_slots_and_duplicates():
    """Slots need not be sorted or distinct (pairs of a row stay contiguous)."""
    rng = np.random.default_rng(1)
    gallery = AppearanceGallery("cosine", 5, 8)
    slots = gallery.allocate(4)
    for _ in range(6):
        gallery.add(slots, rng.standard_normal((4, 8)).astype(np.float32))
    order = np.array([3, 0, 3, 1])
    queries = gallery.prepare_queries(rng.standard_normal((BATCHED_MIN_CANDIDATES + 1, 8)))
    mask = np.ones((4, len(queries)), bool)
    mask[1, 1:] = False
    got = gallery.distance(slots[order], queries, candidate_mask=mask, prepared=True)
    want = _naive_distance(gallery, slots[order], queries, mask, "cosine")
    np.testing.assert_allclose(got[mask], want[mask], rtol=1e-5, atol=1e-5)
    assert np.isinf(got[~mask]).all()
