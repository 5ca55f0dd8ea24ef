"""Appearance galleries, Hungarian matching and the cascade, against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from reidsort.tracking import AppearanceGallery, matching_cascade, min_cost_matching
from reidsort.tracking.linear_assignment import (
    INFEASIBLE_COST,
    solver_pairs_diagonal_on_constant_cost,
)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("budget", [1, 3, None])
def test_gallery_distance_matches_reference(metric, budget):
    nn_matching = pytest.importorskip("deep_sort_realtime.deep_sort.nn_matching")
    rng = np.random.default_rng(0)
    ours = AppearanceGallery(metric, budget)
    reference = nn_matching.NearestNeighborDistanceMetric(metric, 0.2, budget)
    slots = ours.allocate(4)
    for _ in range(12):
        # not every track gets a sample every step: galleries of different lengths
        present = np.flatnonzero(rng.random(4) < 0.7)
        features = rng.standard_normal((len(present), 16)).astype(np.float32)
        ours.add(slots[present], features)
        reference.partial_fit(features, present, list(range(4)))
        queries = rng.standard_normal((5, 16)).astype(np.float32)
        filled = [t for t in range(4) if t in reference.samples]
        expected = reference.distance(queries, filled)
        np.testing.assert_allclose(
            ours.distance(slots[filled], queries), expected, rtol=1e-5, atol=1e-5
        )
    for target in filled:
        stored = np.asarray(reference.samples[target], dtype=np.float32)
        if metric == "cosine":
            stored = stored / np.linalg.norm(stored, axis=1, keepdims=True)
        np.testing.assert_allclose(ours.samples(slots[target]), stored, rtol=1e-6)


def test_gallery_candidate_mask_empty_slots_and_reuse():
    gallery = AppearanceGallery("cosine", 2, embedding_dim=3)
    slots = gallery.allocate(2)
    gallery.add(slots[:1], np.array([[1.0, 0, 0]]))
    distances = gallery.distance(
        slots, np.array([[1.0, 0, 0], [0, 1.0, 0]]), np.array([[True, False], [True, True]])
    )
    assert (
        distances[0, 0] == pytest.approx(0.0)
        and np.isinf(distances[0, 1])
        and np.isinf(distances[1]).all()
    )
    for value in ([0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]):
        gallery.add(slots[:1], np.array([value]))
    assert gallery.sample_count(slots[:1]).tolist() == [2]  # budget 2 evicts the oldest
    np.testing.assert_allclose(
        gallery.samples(int(slots[0])), [[0, 0, 1], [2**-0.5, 2**-0.5, 0]], atol=1e-7
    )
    gallery.repeat_newest(slots)
    np.testing.assert_allclose(gallery.samples(int(slots[0]))[-1], [2**-0.5, 2**-0.5, 0], atol=1e-7)
    assert gallery.sample_count(slots[1:]).tolist() == [0]  # empty slots are skipped
    capacity = gallery.slot_capacity
    for _ in range(50):  # allocation churn reuses released slots
        gallery.release(gallery.allocate(3))
    assert gallery.slot_capacity == capacity
    with pytest.raises(ValueError, match="dimension 4 does not match"):
        gallery.add(slots[:1], np.ones((1, 4)))
    with pytest.raises(ValueError, match="nn_budget"):
        AppearanceGallery("cosine", 0)


def test_solver_pairs_diagonal_on_constant_cost_for_all_small_shapes():
    """The cascade shortcut relies on this SciPy behaviour; check it broadly."""
    assert solver_pairs_diagonal_on_constant_cost()
    for rows in range(1, 41):
        for cols in range(1, 41):
            r, c = linear_sum_assignment(np.full((rows, cols), 0.2 + 1e-5))
            k = min(rows, cols)
            assert r.tolist() == list(range(k)) and c.tolist() == list(range(k)), (rows, cols)


def _reference_tracks(ages):
    class FakeTrack:
        def __init__(self, age):
            self.time_since_update = age

    return [FakeTrack(a) for a in ages]


def test_min_cost_matching_order_matches_reference():
    linear_assignment = pytest.importorskip("deep_sort_realtime.deep_sort.linear_assignment")
    rng = np.random.default_rng(0)
    for trial in range(300):
        rows, cols = rng.integers(1, 7, 2)
        # coarse values: many ties, many entries above the threshold
        cost = rng.integers(0, 6, (rows, cols)) / 10.0
        cost[rng.random((rows, cols)) < 0.2] = INFEASIBLE_COST
        track_indices = rng.permutation(20)[:rows].tolist()
        detection_indices = rng.permutation(20)[:cols].tolist()
        full = np.zeros((20, 20))
        full[np.ix_(track_indices, detection_indices)] = cost
        expected = linear_assignment.min_cost_matching(
            lambda t, d, ti, di, full=full: full[np.ix_(ti, di)].copy(),
            0.25,
            None,
            None,
            track_indices,
            detection_indices,
        )
        ours = min_cost_matching(cost, 0.25, track_indices, detection_indices)
        assert (ours.matches, ours.unmatched_tracks, ours.unmatched_detections) == tuple(
            map(list, expected)
        ), trial


def test_matching_cascade_matches_reference():
    linear_assignment = pytest.importorskip("deep_sort_realtime.deep_sort.linear_assignment")
    rng = np.random.default_rng(1)
    for trial in range(200):
        tracks, dets = rng.integers(1, 10), rng.integers(0, 8)
        ages = rng.integers(1, 6, tracks)
        cost = rng.random((tracks, dets)) * 0.4
        cost[rng.random((tracks, dets)) < 0.5] = INFEASIBLE_COST
        track_indices = rng.permutation(tracks).tolist()
        expected = linear_assignment.matching_cascade(
            lambda t, d, ti, di, cost=cost: cost[np.ix_(ti, di)].copy(),
            0.2,
            4,
            _reference_tracks(ages),
            list(range(dets)),
            track_indices,
        )
        ours = matching_cascade(cost[track_indices], 0.2, 4, ages[track_indices], track_indices)
        assert ours.matches == expected[0], trial
        assert ours.unmatched_tracks == list(expected[1]), trial
        assert ours.unmatched_detections == list(expected[2]), trial
