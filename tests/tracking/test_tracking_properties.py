"""Property tests: random detection streams never break the tracker's invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reidsort.tracking import DeepSortTracker, OutputColumn, TrackState

DIM = 6


@st.composite
def streams(draw, allow_invalid: bool = False):
    """A list of frames (dets (N, 6), embeddings (N, DIM)) drawn around a few moving objects."""
    seed = draw(st.integers(0, 2**31 - 1))
    frames = draw(st.integers(1, 14))
    rng = np.random.default_rng(seed)
    objects = rng.uniform([0, 0, 10, 20], [600, 400, 80, 200], (draw(st.integers(0, 8)), 4))
    velocity = rng.normal(0, 4, (len(objects), 2))
    identity = rng.standard_normal((len(objects), DIM))
    stream = []
    for frame in range(frames):
        present = rng.random(len(objects)) < draw(st.floats(0.0, 1.0))
        tlwh = objects[present].copy()
        tlwh[:, :2] += velocity[present] * frame + rng.normal(0, 2, (int(present.sum()), 2))
        clutter = rng.integers(0, 4) if draw(st.booleans()) else 0
        tlwh = np.concatenate([tlwh, rng.uniform([0, 0, 1, 1], [600, 400, 100, 200], (clutter, 4))])
        embeddings = np.concatenate([identity[present], rng.standard_normal((clutter, DIM))])
        embeddings += rng.normal(0, 0.3, embeddings.shape)
        dets = np.column_stack(
            [
                tlwh[:, :2],
                tlwh[:, :2] + tlwh[:, 2:],
                rng.uniform(0, 1, len(tlwh)),
                rng.integers(0, 2, len(tlwh)),
            ]
        )
        if allow_invalid and len(dets):
            row = rng.integers(len(dets))
            dets[row, rng.integers(0, 5)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            other = rng.integers(len(dets))
            dets[other, 2] = dets[other, 0] - draw(
                st.sampled_from([0.0, 1.0, 50.0])
            )  # zero/negative width
        order = rng.permutation(len(dets))
        stream.append((dets[order], embeddings[order].astype(np.float32)))
    return stream


configs = st.fixed_dictionaries(
    {
        "n_init": st.integers(1, 4),
        "max_age": st.integers(0, 6),
        "nn_budget": st.sampled_from([1, 3, None]),
        "min_confidence": st.sampled_from([0.0, 0.3, 0.8]),
        "nms_max_overlap": st.sampled_from([0.3, 0.7, 1.0]),
        "metric": st.sampled_from(["cosine", "euclidean"]),
        "max_dist": st.sampled_from([0.2, 0.5, 3.0]),
        "per_class": st.booleans(),
        "repeat_last_embedding": st.booleans(),
        "output_lost_frames": st.sampled_from([0, 1]),
    }
)


def _check_invariants(tracker, output, dets, deleted_ever, seen_ever):
    ids = output[:, OutputColumn.TRACK_ID].astype(int)
    assert len(set(ids.tolist())) == len(ids), "ids must be unique within a frame"
    detection_rows = output[:, OutputColumn.DETECTION_INDEX].astype(int)
    lost = detection_rows == -1  # output_lost_frames > 0: missed this frame, predicted box
    assert tracker.output_lost_frames > 0 or not lost.any()
    assert np.isfinite(output[~lost]).all()
    assert np.isnan(output[lost, OutputColumn.SCORE]).all()
    assert np.isfinite(np.delete(output[lost], OutputColumn.SCORE, axis=1)).all()
    detection_rows = detection_rows[~lost]
    assert len(set(detection_rows.tolist())) == len(detection_rows), "one track per detection"
    assert ((detection_rows >= 0) & (detection_rows < len(dets))).all()
    live = tracker.track_ids
    assert len(set(live.tolist())) == len(live)
    assert not (set(live.tolist()) & deleted_ever), "a deleted id came back"
    assert set(ids.tolist()) <= set(live.tolist())
    assert (live >= 1).all() and (np.diff(live) > 0).all(), "ids increase in track order"
    for snapshot in tracker.tracks:
        assert np.isfinite(snapshot.mean_xyah).all() and np.isfinite(snapshot.covariance).all()
        assert snapshot.state in (TrackState.TENTATIVE, TrackState.CONFIRMED)
        assert snapshot.time_since_update <= tracker.max_age + 1
    deleted_ever |= set(tracker.last_deleted_track_ids.tolist())
    seen_ever |= set(live.tolist())
    assert set(tracker.last_deleted_track_ids.tolist()) <= seen_ever


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), config=configs, with_embeddings=st.booleans())
@pytest.mark.filterwarnings("ignore::reidsort.tracking.tracker.LowConfidenceWarning")
def test_random_streams_keep_invariants(stream, config, with_embeddings):
    tracker = DeepSortTracker(**config)
    deleted_ever: set[int] = set()
    seen_ever: set[int] = set()
    for dets, embeddings in stream:
        output = tracker.update(dets, embeddings if with_embeddings else None)
        assert output.shape[1] == 8
        _check_invariants(tracker, output, dets, deleted_ever, seen_ever)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(allow_invalid=True))
def test_invalid_rows_raise_or_are_dropped(stream):
    strict = DeepSortTracker(min_confidence=0.0)
    lenient = DeepSortTracker(min_confidence=0.0, drop_invalid_boxes=True)
    deleted_ever: set[int] = set()
    seen_ever: set[int] = set()
    for dets, embeddings in stream:
        if len(dets):
            with pytest.raises(ValueError, match="is invalid"):
                strict.update(dets, embeddings)
        output = lenient.update(dets, embeddings)
        _check_invariants(lenient, output, dets, deleted_ever, seen_ever)
        finite = (
            np.isfinite(dets).all(axis=1) & (dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])
        )
        assert finite[output[:, OutputColumn.DETECTION_INDEX].astype(int)].all()


@settings(max_examples=20, deadline=None)
@given(dim=st.integers(1, 12).filter(lambda d: d != DIM), rows=st.integers(1, 5))
def test_wrong_embedding_dimension_is_rejected(dim, rows):
    tracker = DeepSortTracker(min_confidence=0.0)
    tracker.update(np.array([[0, 0, 10, 20, 0.9, 0]]), np.ones((1, DIM), np.float32))
    dets = np.tile([0, 0, 10, 20, 0.9, 0], (rows, 1)).astype(float)
    with pytest.raises(ValueError, match=f"dimension {dim} but this tracker uses {DIM}"):
        tracker.update(dets, np.ones((rows, dim), np.float32))


def test_empty_frames_and_hundreds_of_detections():
    rng = np.random.default_rng(0)
    tracker = DeepSortTracker(min_confidence=0.0)
    grid = np.stack(np.meshgrid(np.arange(20), np.arange(15)), -1).reshape(-1, 2) * [
        60.0,
        60.0,
    ]  # 300 objects
    identity = rng.standard_normal((len(grid), 32)).astype(np.float32)
    deleted_ever: set[int] = set()
    seen_ever: set[int] = set()
    for frame in range(8):
        if frame in (3, 4):
            dets, embeddings = np.zeros((0, 6)), np.zeros((0, 32), np.float32)
        else:
            tlwh = np.column_stack([grid + frame * 2.0, np.full((len(grid), 2), [30.0, 50.0])])
            dets = np.column_stack(
                [
                    tlwh[:, :2],
                    tlwh[:, :2] + tlwh[:, 2:],
                    rng.uniform(0.5, 1, len(grid)),
                    np.zeros(len(grid)),
                ]
            )
            embeddings = identity + rng.normal(0, 0.05, identity.shape).astype(np.float32)
        output = tracker.update(dets, embeddings)
        _check_invariants(tracker, output, dets, deleted_ever, seen_ever)
    # all 300 were confirmed by frame 3 and re-acquired by appearance after the two empty frames
    assert len(output) == 300 and output[:, OutputColumn.TRACK_ID].max() == 300
