"""Box conversions, IoU and NMS (against the reference where it is installed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reidsort.tracking import (
    Detection,
    DetectionBatch,
    invalid_box_mask,
    iou_tlwh,
    non_max_suppression,
    tlwh_to_xyah,
    tlwh_to_xyxy,
    xyah_to_tlwh,
    xyah_to_xyxy,
    xyxy_to_tlwh,
)

finite = st.floats(-1e4, 1e4, allow_nan=False, width=64)
positive = st.floats(0.5, 1e3, allow_nan=False, width=64)


def _boxes(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, 500, (count, 2)), rng.uniform(5, 200, (count, 2))])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite, positive, positive), min_size=1, max_size=20))
def test_conversions_round_trip(rows):
    tlwh = np.array(rows)
    np.testing.assert_allclose(xyxy_to_tlwh(tlwh_to_xyxy(tlwh)), tlwh, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(xyah_to_tlwh(tlwh_to_xyah(tlwh)), tlwh, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(
        xyah_to_xyxy(tlwh_to_xyah(tlwh)), tlwh_to_xyxy(tlwh), rtol=1e-9, atol=1e-6
    )


def test_xyah_is_centre_aspect_height():
    np.testing.assert_allclose(tlwh_to_xyah([10, 20, 30, 60]), [25, 50, 0.5, 60])
    np.testing.assert_allclose(tlwh_to_xyxy([[10, 20, 30, 60]]), [[10, 20, 40, 80]])


def test_invalid_box_mask():
    tlwh = np.array(
        [[0, 0, 10, 10], [0, 0, 0, 10], [0, 0, 10, -1], [np.nan, 0, 1, 1], [0, 0, 1, 1]]
    )
    scores = np.array([1, 1, 1, 1, np.inf])
    assert invalid_box_mask(tlwh, scores).tolist() == [False, True, True, True, True]


def test_detection_batch_validates_shapes():
    with pytest.raises(ValueError, match="shape \\(N, 6\\)"):
        DetectionBatch.from_xyxy_array(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="embeddings must have shape"):
        DetectionBatch(np.zeros((2, 4)), np.zeros(2), np.zeros(2), np.zeros((3, 8)))
    with pytest.raises(ValueError, match="non-finite class"):
        DetectionBatch.from_xyxy_array(np.array([[0, 0, 1, 1, 0.9, np.nan]]))
    batch = DetectionBatch.from_xyxy_array(np.array([[0, 0, 4, 2, 0.9, 3]]), np.ones((1, 5)))
    assert batch.class_ids.tolist() == [3] and batch.embeddings.dtype == np.float32
    assert len(DetectionBatch.from_detections(batch.to_list())) == 1
    with pytest.raises(ValueError, match="every Detection"):
        DetectionBatch.from_detections(
            [Detection([0, 0, 1, 1], 0.5, 0, np.ones(3)), Detection([0, 0, 1, 1], 0.5)]
        )


def test_iou_known_values():
    iou = iou_tlwh([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_iou_matches_reference():
    reference = pytest.importorskip("deep_sort_realtime.deep_sort.iou_matching")
    a, b = _boxes(7, 0), _boxes(9, 1)
    expected = np.stack([reference.iou(box, b) for box in a])
    np.testing.assert_allclose(iou_tlwh(a, b), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("max_overlap", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_nms_matches_reference(max_overlap):
    reference = pytest.importorskip("deep_sort_realtime.utils.nms")
    for seed in range(20):
        rng = np.random.default_rng(seed)
        # integer boxes and distinct scores: float32 (reference) and float64 agree exactly
        tlwh = rng.integers(0, 100, (15, 4)).astype(np.float64) + [0, 0, 5, 5]
        scores = rng.permutation(15) / 15.0
        expected = reference.non_max_suppression(tlwh, max_overlap, scores)
        assert non_max_suppression(tlwh, max_overlap, scores).tolist() == list(expected)


def test_nms_per_class_keeps_other_classes():
    tlwh = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert non_max_suppression(tlwh, 0.5, scores).tolist() == [0]
    assert non_max_suppression(tlwh, 0.5, scores, np.array([0, 1, 0])).tolist() == [0, 1]
    assert non_max_suppression(np.zeros((0, 4)), 0.5, np.zeros(0)).tolist() == []


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.integers(0, 12), elements=st.floats(0, 1)))
def test_nms_at_one_only_orders_by_score(scores):
    tlwh = _boxes(len(scores), 3)
    order = non_max_suppression(tlwh, 1.0, scores)
    assert sorted(order.tolist()) == list(range(len(scores)))
    assert np.all(np.diff(scores[order]) <= 0)
