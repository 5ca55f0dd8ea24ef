"""StrongSORT: EMA features, NSA Kalman, MC cost, global assignment, camera motion, contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reidsort.tracking.detection import tlwh_to_xyah
from reidsort.tracking.kalman_filter import (
    MEASUREMENT_DIM,
    POSITION_VARIANCE,
    KalmanFilterXYAH,
    blocks_to_covariance,
)
from reidsort.tracking.strongsort import GATING_THRESHOLD, StrongSortTracker
from reidsort.tracking.track import TrackState
from reidsort.tracking.tracker import OutputColumn

ID, SCORE, DET = OutputColumn.TRACK_ID, OutputColumn.SCORE, OutputColumn.DETECTION_INDEX


def _det(x: float, y: float, w: float = 40.0, h: float = 100.0, score: float = 0.9, cls=0):
    return [x, y, x + w, y + h, score, cls]


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def _embedding_at_distance(base: np.ndarray, distance: float) -> np.ndarray:
    """A unit vector whose cosine distance to the unit vector ``base`` is ``distance``."""
    other = np.zeros_like(base)
    other[np.argmin(np.abs(base))] = 1.0
    other = _unit(other - (other @ base) * base)
    similarity = 1.0 - distance
    return similarity * base + np.sqrt(1.0 - similarity**2) * other


# -- EMA -------------------------------------------------------------------------------------
def test_ema_feature_is_alpha_old_plus_one_minus_alpha_new_normalised():
    rng = np.random.default_rng(0)
    first, second, third = rng.standard_normal((3, 16))
    tracker = StrongSortTracker(ema_alpha=0.9)
    dets = np.array([_det(100, 100)])
    tracker.update(dets, first[None])
    np.testing.assert_allclose(tracker.smooth_features[0], _unit(first), rtol=1e-12)
    tracker.update(dets, 5.0 * second[None])  # the embedding's scale does not matter
    expected = _unit(0.9 * _unit(first) + 0.1 * _unit(second))
    np.testing.assert_allclose(tracker.smooth_features[0], expected, rtol=1e-12)
    tracker.update(dets, third[None])
    expected = _unit(0.9 * expected + 0.1 * _unit(third))
    np.testing.assert_allclose(tracker.smooth_features[0], expected, rtol=1e-12)
    assert np.linalg.norm(tracker.smooth_features[0]) == pytest.approx(1.0)


def test_ema_alpha_zero_keeps_only_the_newest_and_bad_embeddings_are_skipped():
    rng = np.random.default_rng(1)
    first, second = rng.standard_normal((2, 8))
    tracker = StrongSortTracker(ema_alpha=0.0)
    dets = np.array([_det(100, 100)])
    tracker.update(dets, first[None])
    tracker.update(dets, second[None])
    np.testing.assert_allclose(tracker.smooth_features[0], _unit(second), rtol=1e-12)
    tracker.update(dets, np.full((1, 8), np.nan))  # matched by IoU, feature unchanged
    assert tracker.track_ids.tolist() == [1]
    np.testing.assert_allclose(tracker.smooth_features[0], _unit(second), rtol=1e-12)


# -- NSA -------------------------------------------------------------------------------------
def _reference_update(mean, covariance, measurement, confidence):
    """Textbook 8x8 Kalman correction with the reference's NSA: R std times (1 - c)."""
    h = mean[3]
    std = np.array([h / 20, h / 20, 1e-1, h / 20]) * (1.0 - confidence)
    update_mat = np.eye(MEASUREMENT_DIM, 2 * MEASUREMENT_DIM)
    projected = update_mat @ covariance @ update_mat.T + np.diag(std**2)
    gain = covariance @ update_mat.T @ np.linalg.inv(projected)
    new_mean = mean + gain @ (measurement - update_mat @ mean)
    return new_mean, covariance - gain @ projected @ gain.T


def test_nsa_scales_the_measurement_covariance_by_one_minus_c_squared():
    kf = KalmanFilterXYAH()
    means, blocks = kf.initiate(np.array([[100.0, 200.0, 0.4, 120.0], [50.0, 60.0, 0.5, 80.0]]))
    means, blocks = kf.predict(means, blocks)
    confidence = np.array([0.3, 0.8])
    plain = kf.innovation(means, blocks)
    nsa = kf.innovation(means, blocks, confidence)
    plain_noise = plain.variance - blocks[:, POSITION_VARIANCE]
    nsa_noise = nsa.variance - blocks[:, POSITION_VARIANCE]
    np.testing.assert_allclose(nsa_noise, plain_noise * (1 - confidence[:, None]) ** 2, rtol=1e-9)
    # confidence 0 is the plain filter bit for bit, and None is today's code path
    zero = kf.innovation(means, blocks, np.zeros(2))
    assert np.array_equal(zero.variance, plain.variance)

    measurements = means[:, :4] + np.array([[6.0, -4.0, 0.02, 5.0], [-3.0, 2.0, -0.01, -4.0]])
    new_means, new_blocks = kf.update(means, blocks, measurements, confidence=confidence)
    full = blocks_to_covariance(blocks)
    for i in range(2):
        ref_mean, ref_cov = _reference_update(means[i], full[i], measurements[i], confidence[i])
        np.testing.assert_allclose(new_means[i], ref_mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            blocks_to_covariance(new_blocks[i : i + 1])[0], ref_cov, rtol=1e-9, atol=1e-12
        )
    default_means, _ = kf.update(means, blocks, measurements)
    assert np.array_equal(default_means, kf.update(means, blocks, measurements, plain)[0])
    with pytest.raises(ValueError, match="not both"):
        kf.update(means, blocks, measurements, plain, confidence=confidence)


def test_low_confidence_detection_moves_the_state_less():
    kf = KalmanFilterXYAH()
    means, blocks = kf.predict(*kf.initiate(np.array([[100.0, 200.0, 0.4, 120.0]])))
    measurement = means[:, :4] + np.array([[20.0, 10.0, 0.0, 0.0]])
    shifts = [
        kf.update(means, blocks, measurement, confidence=np.array([c]))[0][0, 0] - means[0, 0]
        for c in (0.1, 0.5, 0.95)
    ]
    assert 0 < shifts[0] < shifts[1] < shifts[2] < 20.0
    plain_shift = kf.update(means, blocks, measurement)[0][0, 0] - means[0, 0]
    assert plain_shift < shifts[0]  # no NSA = confidence 0


def test_tracker_uses_nsa_only_when_enabled():
    boxes = [np.array([_det(100 + 3 * f, 100, score=0.7)]) for f in range(3)]
    boxes.append(np.array([_det(130, 100, score=0.7)]))
    on, off = StrongSortTracker(), StrongSortTracker(nsa=False)
    for dets in boxes:
        on.update(dets)
        off.update(dets)
    measured = tlwh_to_xyah(np.array([130.0, 100.0, 40.0, 100.0]))[0]
    # with NSA the (confident) measurement is trusted more: the state ends closer to it
    assert abs(on.tracks[0].mean_xyah[0] - measured) < abs(off.tracks[0].mean_xyah[0] - measured)


# -- MC cost and the global assignment ---------------------------------------------------------
def _confirmed_tracker(feature: np.ndarray, **kwargs) -> StrongSortTracker:
    tracker = StrongSortTracker(n_init=1, **kwargs)
    for _ in range(2):
        tracker.update(np.array([_det(100, 100)]), feature[None])
    assert tracker.tracks[0].state is TrackState.CONFIRMED
    return tracker


def test_mc_cost_is_lambda_appearance_plus_one_minus_lambda_mahalanobis():
    feature = _unit(np.arange(1.0, 9.0))
    tracker = _confirmed_tracker(feature, mc_lambda=0.9)
    tracker.update(np.zeros((0, 6)))  # predict once more, so the track is missed for a frame
    dets = np.array([_det(102, 101), _det(150, 100), _det(103, 99)])
    features = np.stack([_embedding_at_distance(feature, d) for d in (0.1, 0.05, 0.3)])
    xyah = tlwh_to_xyah(dets[:, :4] - np.c_[np.zeros((3, 2)), dets[:, :2]])
    rows = np.array([0])
    table = tracker._tracks
    maha = tracker.kf.gating_distance(table.means, table.covariances, xyah)[0]
    cost, ceiling = tracker.motion_appearance_cost(xyah, features, rows)
    assert ceiling == tracker.max_dist
    feasible = maha <= GATING_THRESHOLD
    assert feasible.tolist() == [True, False, True]
    expected = 0.9 * np.array([0.1, 0.05, 0.3]) + 0.1 * maha
    np.testing.assert_allclose(cost[0, feasible], expected[feasible], rtol=1e-9)
    assert cost[0, 1] >= 1e5  # outside the chi-square gate, whatever the appearance
    motion, motion_ceiling = tracker.motion_appearance_cost(xyah, None, rows)
    assert motion_ceiling == GATING_THRESHOLD
    np.testing.assert_allclose(motion[0, feasible], maha[feasible])


@pytest.mark.parametrize(("mc_lambda", "max_dist", "winner"), [(0.98, 0.45, 1), (0.0, 9.0, 0)])
def test_mc_cost_trades_appearance_against_distance(mc_lambda, max_dist, winner):
    """Detection 0 is closer, detection 1 looks like the track: lambda decides."""
    feature = _unit(np.arange(1.0, 9.0))
    tracker = _confirmed_tracker(feature, mc_lambda=mc_lambda, max_dist=max_dist)
    dets = np.array([_det(101, 100), _det(106, 100)])
    features = np.stack([_embedding_at_distance(feature, 0.3), feature])
    out = tracker.update(dets, features)
    assert out[out[:, ID] == 1, DET].tolist() == [winner]


def test_cost_ceiling_bounds_the_combined_cost():
    feature = _unit(np.arange(1.0, 9.0))
    dets = np.array([_det(100, 100)])
    strict = _confirmed_tracker(feature, max_dist=0.2)
    strict.update(np.zeros((0, 6)))
    strict.update(np.zeros((0, 6)))  # missed twice: no IoU second chance
    out = strict.update(dets, _embedding_at_distance(feature, 0.3)[None])
    assert 1 not in out[:, ID].tolist() and strict.num_tracks == 2
    loose = _confirmed_tracker(feature, max_dist=0.45)
    loose.update(np.zeros((0, 6)))
    loose.update(np.zeros((0, 6)))
    loose.update(dets, _embedding_at_distance(feature, 0.3)[None])
    assert loose.track_ids.tolist() == [1] and loose.tracks[0].time_since_update == 0


def _age_conflict(cascade: bool) -> int:
    """Track 1 (seen last frame) and track 2 (missed for two frames) both gate one detection
    that looks exactly like track 2; return the id that takes it."""
    look_1 = _unit(np.arange(1.0, 9.0))
    look_2 = _embedding_at_distance(look_1, 0.3)
    tracker = StrongSortTracker(n_init=1, cascade=cascade)
    both = np.array([_det(100, 100, score=0.9), _det(106, 100, score=0.8)])  # ids 1, 2
    for _ in range(2):
        tracker.update(both, np.stack([look_1, look_2]))
    for _ in range(2):
        tracker.update(both[:1], look_1[None])
    assert [t.state for t in tracker.tracks] == [TrackState.CONFIRMED] * 2
    assert [t.time_since_update for t in tracker.tracks] == [0, 2]
    out = tracker.update(np.array([_det(106, 100)]), look_2[None])
    assert len(out) == 1
    return int(out[0, ID])


def test_global_assignment_differs_from_the_cascade():
    assert _age_conflict(cascade=False) == 2  # lowest cost wins
    assert _age_conflict(cascade=True) == 1  # the most recently seen track is served first


# -- camera motion -----------------------------------------------------------------------------
def test_warp_moves_the_predicted_state():
    dets = np.array([_det(100, 100)])
    moved, still = StrongSortTracker(), StrongSortTracker()
    for tracker in (moved, still):
        for _ in range(3):  # confirmed: it survives a miss
            tracker.update(dets)
    warp = np.array([[1.0, 0.0, 50.0], [0.0, 1.0, -20.0]])
    moved.update(np.zeros((0, 6)), warp=warp)
    still.update(np.zeros((0, 6)))
    expected_mean, expected_blocks = still.kf.warp(
        still._tracks.means, still._tracks.covariances, warp
    )
    np.testing.assert_allclose(moved.tracks[0].mean_xyah, expected_mean[0])
    assert moved.tracks[0].mean_xyah[:2] - still.tracks[0].mean_xyah[:2] == pytest.approx(
        [50.0, -20.0]
    )
    np.testing.assert_allclose(moved._tracks.covariances, expected_blocks)
    with pytest.raises(ValueError, match="warp"):
        moved.update(dets, warp=np.eye(3))


def test_camera_pan_keeps_the_id_only_with_the_warp():
    """A static person, camera panning 60 px a frame, detections missing every other frame."""
    results = {}
    for use_warp in (True, False):
        tracker = StrongSortTracker(n_init=1)
        ids = set()
        for frame in range(10):
            dets = np.array([_det(400 - 60 * frame, 100)]) if frame % 3 != 2 else np.zeros((0, 6))
            warp = np.array([[1.0, 0, -60.0], [0, 1.0, 0]]) if use_warp and frame else None
            tracker.update(dets, warp=warp)
            ids |= set(tracker.track_ids.tolist())
        results[use_warp] = ids
    assert results[True] == {1}
    assert len(results[False]) >= 5  # a new track for (almost) every detection


# -- contract ----------------------------------------------------------------------------------
def test_per_class_tracks_never_take_another_class():
    frames = [np.array([_det(100, 100, cls=0)])] * 3 + [np.array([_det(101, 100, cls=1)])]
    agnostic, per_class = StrongSortTracker(), StrongSortTracker(per_class=True)
    for frame in frames:
        a, p = agnostic.update(frame), per_class.update(frame)
    assert agnostic.track_ids.tolist() == [1] and a[:, ID].tolist() == [1]
    assert a[0, OutputColumn.CLASS_ID] == 1  # class-agnostic: the last match's class
    assert per_class.track_ids.tolist() == [1, 2] and len(p) == 0
    assert [t.class_id for t in per_class.tracks] == [0, 1]
    assert [t.time_since_update for t in per_class.tracks] == [1, 0]


def test_invalid_rows_are_dropped_and_det_index_names_the_input_row():
    tracker = StrongSortTracker(n_init=1)
    good = _det(100, 100)
    bad = [
        [np.nan, 0, 10, 10, 0.9, 0],
        [0, 0, np.inf, 10, 0.9, 0],
        [50, 50, 50, 90, 0.9, 0],  # zero width
        [50, 50, 40, 90, 0.9, 0],  # negative width
        [0, 0, 10, 10, np.nan, 0],
        [0, 0, 10, 10, 0.9, np.nan],
    ]
    for _ in range(3):
        out = tracker.update(np.array(bad + [good]), np.ones((7, 4)))
    assert tracker.num_tracks == 1
    assert out[:, DET].tolist() == [6.0]
    assert np.isfinite(out).all()
    five_columns = tracker.update(np.array([good[:5]]))
    assert five_columns[:, ID].tolist() == [1] and five_columns[0, OutputColumn.CLASS_ID] == 0
    with pytest.raises(ValueError, match="dets must have shape"):
        tracker.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="embeddings must have shape"):
        tracker.update(np.array([good]), np.ones((2, 4)))
    with pytest.raises(ValueError, match="dimension 3 but this tracker uses 4"):
        tracker.update(np.array([good]), np.ones((1, 3)))


def test_low_confidence_rows_are_ignored():
    tracker = StrongSortTracker(n_init=1)
    for _ in range(3):
        out = tracker.update(np.array([_det(100, 100, score=0.5), _det(300, 100, score=0.6)]))
    assert tracker.num_tracks == 1 and out[:, DET].tolist() == [1.0]


def test_ids_start_at_one_and_reset_restarts_them():
    tracker = StrongSortTracker()
    dets = np.array([_det(100, 100, score=0.8), _det(300, 100, score=0.9)])
    for _ in range(3):
        out = tracker.update(dets)
    # detections are taken in descending score order: the 0.9 one gets id 1
    assert dict(zip(out[:, DET].astype(int).tolist(), out[:, ID].astype(int).tolist())) == {
        1: 1,
        0: 2,
    }
    tracker.reset()
    assert tracker.num_tracks == 0 and tracker.frame_count == 0
    for _ in range(3):
        out = tracker.update(dets[:1])
    assert out[:, ID].tolist() == [1]


@pytest.mark.parametrize("lost_frames", [0, 1])
def test_output_lost_frames(lost_frames):
    tracker = StrongSortTracker(output_lost_frames=lost_frames)
    for _ in range(3):
        out = tracker.update(np.array([_det(100, 100)]))
    assert out[:, ID].tolist() == [1] and out[0, SCORE] == pytest.approx(0.9)
    missed = tracker.update(np.zeros((0, 6)))
    if lost_frames:
        assert missed[:, ID].tolist() == [1]
        assert np.isnan(missed[0, SCORE]) and missed[0, DET] == -1
        np.testing.assert_allclose(missed[0, :4], tracker.tracks[0].xyxy)
    else:
        assert len(missed) == 0
    assert len(tracker.update(np.zeros((0, 6)))) == 0


def test_motion_only_tracks_a_moving_person_and_reacquires_after_a_gap():
    tracker = StrongSortTracker()
    ids = []
    for frame in range(20):
        if 8 <= frame < 11:
            out = tracker.update(np.zeros((0, 6)))
            continue
        out = tracker.update(np.array([_det(100 + 4 * frame, 100)]))
        ids += out[:, ID].astype(int).tolist()
    assert set(ids) == {1} and len(ids) == 15


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_dist": -1}, "max_dist"),
        ({"max_iou_distance": 1.5}, "max_iou_distance"),
        ({"max_age": 2.5}, "max_age"),
        ({"n_init": 0}, "n_init"),
        ({"mc_lambda": 1.2}, "mc_lambda"),
        ({"ema_alpha": 1.0}, "ema_alpha"),
        ({"min_confidence": np.nan}, "min_confidence"),
        ({"nms_max_overlap": -0.1}, "nms_max_overlap"),
        ({"output_lost_frames": -1}, "output_lost_frames"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StrongSortTracker(**kwargs)


def test_defaults_are_the_reference_settings():
    tracker = StrongSortTracker()
    assert (tracker.max_dist, tracker.max_iou_distance, tracker.max_age, tracker.n_init) == (
        0.45,
        0.7,
        30,
        3,
    )
    assert (tracker.mc_lambda, tracker.ema_alpha, tracker.min_confidence) == (0.98, 0.9, 0.6)
    assert tracker.nsa and not tracker.cascade and not tracker.per_class


# -- pinned to the reference (dyhBUPT/StrongSORT deep_sort/, --NSA --EMA --MC --woC) -------------
# The numbers below are what the reference printed for these hand-made scenes when it was run
# (outside this repository) with opts.py's settings and deep_sort_app.py's writer rule
# (confirmed tracks with time_since_update <= 1), i.e. ``output_lost_frames=1`` here. It gave
# the same numbers with sklearn 0.22's Munkres solver (which it imports) and with SciPy's.
def _look(k: int, frame: int, dim: int = 8) -> np.ndarray:
    """Identity ``k``'s embedding in ``frame``: a one-hot vector with a small wobble."""
    vector = np.zeros(dim)
    vector[k] = 1.0
    return vector + 0.1 * np.sin(np.arange(dim) + 0.7 * frame + k)


def _reference_scene() -> list[tuple[np.ndarray, np.ndarray]]:
    """A (x = 100 + 6f) and B (x = 220 - 6f) cross at frame 10; A is missed in frame 6; C
    (static) is gone in frames 5-7; a one-frame false positive in frame 3 (a tentative track,
    deleted); a 0.5-score row every frame (below ``min_confidence``)."""
    frames = []
    for f in range(1, 15):
        rows = []
        if f != 6:
            rows.append((_det(100 + 6 * f, 100, score=0.9), _look(0, f)))
        rows.append((_det(220 - 6 * f, 104, score=0.8), _look(1, f)))
        if f <= 4 or f >= 8:
            rows.append((_det(500, 300, 50, 120, score=0.7), _look(2, f)))
        if f == 3:
            rows.append((_det(700, 50, 30, 60, score=0.65), _look(3, f)))
        rows.append((_det(300, 400, score=0.5), _look(4, f)))
        frames.append((np.array([r[0] for r in rows]), np.array([r[1] for r in rows])))
    return frames


#: Reference output per frame: ``{track id: x1}``; track 1 (A) and 2 (B) are 40 x 100 at
#: y = 100 and 104, track 3 (C) is 50 x 120 at (500, 300). Frames 1-2: nothing confirmed.
_REFERENCE_X1 = {
    3: {1: 117.979463, 2: 202.080041, 3: 500.0},
    4: {1: 123.986789, 2: 196.05223, 3: 500.0},
    5: {1: 129.990409, 2: 190.037799, 3: 500.0},  # C missed once: its predicted box
    6: {1: 135.021965, 2: 184.02924},  # A missed once: its predicted box; C not reported
    7: {1: 141.993928, 2: 178.023541},
    8: {1: 147.995042, 2: 172.019447, 3: 500.0},  # C back after 3 misses: appearance + gate
    9: {1: 153.99583, 2: 166.016348, 3: 500.0},
    10: {1: 159.996449, 2: 160.013913, 3: 500.0},
    11: {1: 165.99695, 2: 154.011947, 3: 500.0},
    12: {1: 171.997363, 2: 148.010326, 3: 500.0},
    13: {1: 177.997709, 2: 142.008969, 3: 500.0},
    14: {1: 183.998002, 2: 136.00782, 3: 500.0},
}
_REFERENCE_BOX = {1: (100.0, 40.0, 100.0), 2: (104.0, 40.0, 100.0), 3: (300.0, 50.0, 120.0)}


@pytest.mark.parametrize("pan", [False, True])
def test_hand_made_scene_matches_the_reference_frame_by_frame(pan):
    """Every output box and id of the reference, without camera motion and with a camera panning
    (-5, +2) px a frame given as the warp. For a pure translation our warp of the predicted state
    and the reference's warp of the previous box before predicting coincide (no scale or rotation
    acts on the velocity, the covariance is unchanged), and the reference's output was exactly the
    static one shifted by the pan."""
    shift = np.array([-5.0, 2.0])
    tracker = StrongSortTracker(output_lost_frames=1)
    for frame, (dets, looks) in enumerate(_reference_scene(), start=1):
        warp = None
        if pan:
            dets = dets.copy()
            dets[:, 0:2] += shift * (frame - 1)
            dets[:, 2:4] += shift * (frame - 1)
            if frame > 1:
                warp = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
        out = tracker.update(dets, looks, warp=warp)
        expected = _REFERENCE_X1.get(frame, {})
        assert sorted(out[:, ID].astype(int).tolist()) == sorted(expected), frame
        for row in out:
            track_id = int(row[ID])
            y1, width, height = _REFERENCE_BOX[track_id]
            x1 = expected[track_id]
            box = np.array([x1, y1, x1 + width, y1 + height])
            if pan:
                box += np.tile(shift * (frame - 1), 2)
            np.testing.assert_allclose(row[:4], box, rtol=0, atol=2e-6, err_msg=f"frame {frame}")
        lost = {5: 3, 6: 1}.get(frame)  # the rows with a predicted box
        assert out[out[:, DET] == -1, ID].astype(int).tolist() == ([lost] if lost else [])
    assert tracker.track_ids.tolist() == [1, 2, 3]  # id 4 (the false positive) was deleted


def test_new_ids_follow_the_rejected_pairs_of_the_iou_stage():
    """Tentative tracks 1 and 2 both overlap one detection (track 1 more); two far detections
    start tracks. In the IoU stage track 1 takes the near detection and track 2 is assigned,
    then rejected, with one of the far ones (every such pair costs the clipped 0.70001): the
    detections left over are the unassigned one first, then the rejected one, and that order
    hands out ids 3 and 4. The reference run with SciPy's solver (ours too) gives 3 to the
    x = 400 detection; with sklearn 0.22's Munkres, which it imports, the equal-cost tie falls
    the other way and ids 3 and 4 are swapped (boxes identical): on MOT17-trainhalf that tie is
    the only difference between the two (benchmarks/RESULTS.md, StrongSORT)."""
    tracker = StrongSortTracker(output_lost_frames=1)
    first = np.array([_det(100, 100, score=0.9), _det(104, 100, score=0.8)])
    tracker.update(first, np.array([_look(0, 1), _look(1, 1)]))
    later = np.array(
        [_det(400, 100, score=0.95), _det(600, 100, score=0.9), _det(102, 100, score=0.7)]
    )
    for frame in (2, 3, 4):
        out = tracker.update(later, np.array([_look(2, frame), _look(3, frame), _look(0, frame)]))
    ids_by_x1 = {round(float(row[0])): int(row[ID]) for row in out}
    assert ids_by_x1 == {102: 1, 400: 3, 600: 4}
    np.testing.assert_allclose(out[out[:, ID] == 1, 0], [102.0126], atol=1e-6)


# -- properties --------------------------------------------------------------------------------
DIM = 6


@st.composite
def streams(draw):
    """Frames of (dets (N, 6), embeddings (N, DIM)) around a few moving objects, with bad rows."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    objects = rng.uniform([0, 0, 10, 20], [600, 400, 80, 200], (draw(st.integers(0, 6)), 4))
    velocity = rng.normal(0, 4, (len(objects), 2))
    identity = rng.standard_normal((len(objects), DIM))
    with_invalid = draw(st.booleans())
    stream = []
    for frame in range(draw(st.integers(1, 12))):
        present = rng.random(len(objects)) < draw(st.floats(0.0, 1.0))
        tlwh = objects[present].copy()
        tlwh[:, :2] += velocity[present] * frame + rng.normal(0, 2, (int(present.sum()), 2))
        clutter = int(rng.integers(0, 3))
        tlwh = np.concatenate([tlwh, rng.uniform([0, 0, 1, 1], [600, 400, 100, 200], (clutter, 4))])
        embeddings = np.concatenate([identity[present], rng.standard_normal((clutter, DIM))])
        embeddings += rng.normal(0, 0.3, embeddings.shape)
        dets = np.column_stack(
            [tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:], rng.uniform(0, 1, len(tlwh)),
             rng.integers(0, 2, len(tlwh))]
        )  # fmt: skip
        if with_invalid and len(dets):
            dets[rng.integers(len(dets)), rng.integers(0, 6)] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf])
            )
            other = rng.integers(len(dets))
            dets[other, 2] = dets[other, 0] - draw(st.sampled_from([0.0, 1.0, 50.0]))
            embeddings[rng.integers(len(dets))] = draw(st.sampled_from([0.0, np.nan]))
        warp = None
        if draw(st.booleans()):
            angle = rng.normal(0, 0.01)
            warp = np.array(
                [[np.cos(angle), -np.sin(angle), rng.normal(0, 10)],
                 [np.sin(angle), np.cos(angle), rng.normal(0, 10)]]
            )  # fmt: skip
        order = rng.permutation(len(dets))
        stream.append((dets[order], embeddings[order], warp))
    return stream


configs = st.fixed_dictionaries(
    {
        "n_init": st.integers(1, 4),
        "max_age": st.integers(0, 6),
        "min_confidence": st.sampled_from([0.0, 0.3, 0.6]),
        "nms_max_overlap": st.sampled_from([0.5, 1.0]),
        "max_dist": st.sampled_from([0.2, 0.45, 2.0]),
        "mc_lambda": st.sampled_from([0.0, 0.98, 1.0]),
        "ema_alpha": st.sampled_from([0.0, 0.9]),
        "nsa": st.booleans(),
        "cascade": st.booleans(),
        "per_class": st.booleans(),
        "output_lost_frames": st.sampled_from([0, 1]),
    }
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), config=configs, embedding_mode=st.sampled_from(["none", "all", "mixed"]))
def test_random_streams_keep_the_output_contract(stream, config, embedding_mode):
    tracker = StrongSortTracker(**config)
    deleted_ever: set[int] = set()
    for frame, (dets, embeddings, warp) in enumerate(stream):
        use = embedding_mode == "all" or (embedding_mode == "mixed" and frame % 2 == 0)
        out = tracker.update(dets, embeddings if use else None, warp=warp)
        assert out.shape[1] == len(OutputColumn)
        ids = out[:, ID].astype(int)
        assert len(set(ids.tolist())) == len(ids), "ids must be unique within a frame"
        lost = out[:, DET] == -1
        assert config["output_lost_frames"] > 0 or not lost.any()
        assert np.isfinite(out[~lost]).all() and np.isnan(out[lost, SCORE]).all()
        assert np.isfinite(np.delete(out, SCORE, axis=1)).all()
        rows = out[~lost, DET].astype(int)
        assert len(set(rows.tolist())) == len(rows), "one track per detection"
        if len(rows):
            valid = np.isfinite(dets[rows]).all(axis=1) & (dets[rows, 2] > dets[rows, 0])
            assert valid.all() and (dets[rows, 4] >= config["min_confidence"]).all()
        live = tracker.track_ids
        assert (live >= 1).all() and (np.diff(live) > 0).all()
        assert set(ids.tolist()) <= set(live.tolist())
        assert not (set(live.tolist()) & deleted_ever), "a deleted id came back"
        deleted_ever |= set(tracker.last_deleted_track_ids.tolist())
        for snapshot in tracker.tracks:
            assert np.isfinite(snapshot.mean_xyah).all() and np.isfinite(snapshot.covariance).all()
        features = tracker.smooth_features
        if features.shape[1]:
            has = ~np.isnan(features).any(axis=1)
            np.testing.assert_allclose(np.linalg.norm(features[has], axis=1), 1.0, rtol=1e-9)


def test_empty_input_forms():
    tracker = StrongSortTracker()
    for empty in (np.zeros((0, 6)), np.zeros((0, 5)), np.zeros(0), []):
        assert tracker.update(empty).shape == (0, len(OutputColumn))
    assert tracker.update(np.zeros((0, 6)), np.zeros((0, 4))).shape == (0, len(OutputColumn))
    assert tracker.frame_count == 5


# -- real data -----------------------------------------------------------------------------------
def test_mot17_sequence_hota_motion_only_with_gmc(shared_data):
    """MOT17-09 with its public detections and BoT-SORT's GMC file, no embeddings (measured:
    HOTA 0.6680, the same as ``task=track tracker=strongsort embedder=none cmc=file``)."""
    from reidsort.evaluation.mot import COMBINED, evaluate_mot
    from reidsort.tracking.mot_io import (
        read_mot_detections,
        read_seqinfo,
        tracker_output_to_mot_rows,
    )

    sequence = shared_data / "mot" / "MOT17-trainhalf" / "MOT17-09"
    info = read_seqinfo(sequence)
    detections = read_mot_detections(sequence / "det" / "det.txt")
    gmc = np.loadtxt(sequence / "gmc.txt", delimiter="\t", ndmin=2)
    warps = {int(line[0]) + 1: line[1:7].reshape(2, 3) for line in gmc}  # line k: frame k+1
    tracker = StrongSortTracker()
    rows = [
        tracker_output_to_mot_rows(index, tracker.update(dets, warp=warps[index]))
        for index, dets, _ in detections.iter_frames(1, info.length)
    ]
    evaluation = evaluate_mot(
        {"MOT17-09": np.concatenate(rows)},
        {"MOT17-09": sequence / "gt" / "gt.txt"},
        {"MOT17-09": info.length},
    )
    assert evaluation.row(COMBINED)["HOTA"] == pytest.approx(0.6680, abs=0.002)
