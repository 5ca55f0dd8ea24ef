"""JDETracker (FairMOT's association): each mechanism on a small hand-made case, property tests,
config composition.

Boxes are 40 x 100 (``box``); a track that saw the same box three times has zero velocity, so
its prediction is that box and the IoU of a shifted detection is known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bytetrack import box, check_stream, frame, ids, states, streams

from reidsort.tracking import JDETracker, MultiObjectTracker
from reidsort.tracking.bytetrack import ByteTrackState, ByteTrackTracker
from reidsort.tracking.detection import tlwh_to_xyah, xyah_to_tlwh
from reidsort.tracking.kalman_filter import CHI2_INV_95, KalmanFilterXYAH, covariance_to_blocks
from reidsort.tracking.tracker import OutputColumn

TRACK_ID, SCORE, DET_INDEX = (
    int(OutputColumn.TRACK_ID),
    int(OutputColumn.SCORE),
    int(OutputColumn.DETECTION_INDEX),
)
DIM = 8


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def identities(count: int, seed: int = 0) -> np.ndarray:
    """``count`` orthonormal embeddings (cosine distance 1 between any two)."""
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((DIM, DIM)))[0][:count]


def between(a: np.ndarray, b: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at cosine similarity ``cosine`` to the unit vector ``a`` (``b`` orthogonal)."""
    return unit(cosine * a + np.sqrt(1 - cosine**2) * b)


def seen(tracker: JDETracker, embedding, times: int = 3, x: float = 100.0) -> JDETracker:
    for _ in range(times):
        tracker.update(frame(box(x)), embedding[None])
    return tracker


def predicted(snapshot, lost: bool):
    """The Kalman prediction of a snapshot's state (height velocity zeroed if lost), as blocks."""
    mean = snapshot.mean.copy()
    if lost:
        mean[7] = 0.0
    return KalmanFilterXYAH().predict(mean[None], covariance_to_blocks(snapshot.covariance[None]))


def squared_mahalanobis_full(means, blocks, measurement_xyah) -> float:
    """``r^T S^-1 r`` with the full 4 x 4 innovation covariance and a linear solve."""
    projected, covariance = KalmanFilterXYAH().project(means, blocks)
    residual = measurement_xyah - projected[0]
    return float(residual @ np.linalg.solve(covariance[0], residual))


# -- the fused embedding + motion cost and its gate -------------------------------------------
def test_fused_cost_is_098_embedding_plus_002_mahalanobis_against_the_04_ceiling():
    a, b = identities(2)
    detection = box(120, y=110)
    embedding = between(a, b, 0.8)  # cosine distance 0.2
    base = seen(JDETracker(), a)
    base.update(frame())  # lost: only the first association can re-find it
    (snapshot,) = base.tracks
    assert snapshot.state is ByteTrackState.LOST
    means, blocks = predicted(snapshot, lost=True)
    tlwh = np.array(detection[:4]) - [0, 0, detection[0], detection[1]]
    maha = squared_mahalanobis_full(means, blocks, tlwh_to_xyah(tlwh[None])[0])
    assert 1.0 < maha < CHI2_INV_95[4]  # inside the gate, and it matters
    cost = 0.98 * 0.2 + 0.02 * maha
    for ceiling, refound in ((cost + 1e-6, True), (cost - 1e-6, False)):
        tracker = seen(JDETracker(match_thresh=ceiling), a)
        tracker.update(frame())
        out = tracker.update(frame(detection), embedding[None])
        assert (ids(out) == [1]) is refound, (ceiling, out)
        assert (states(tracker)[1] is ByteTrackState.TRACKED) is refound
    # mc_lambda = 1 drops the motion term: the same pair now costs 0.2 exactly
    tracker = seen(JDETracker(match_thresh=0.2 + 1e-9, mc_lambda=1.0), a)
    tracker.update(frame())
    assert ids(tracker.update(frame(detection), embedding[None])) == [1]


def test_the_chi2_gate_makes_a_pair_infeasible_whatever_its_embedding():
    a = identities(1)[0]
    tracker = seen(JDETracker(), a)
    tracker.update(frame())
    (snapshot,) = tracker.tracks
    means, blocks = predicted(snapshot, lost=True)
    _, covariance = KalmanFilterXYAH().project(means, blocks)
    # the predicted box moved along x only: squared Mahalanobis = dx^2 / S_xx
    edge = np.sqrt(CHI2_INV_95[4] * covariance[0, 0, 0])
    for dx, refound in ((0.99 * edge, True), (1.01 * edge, False)):
        trial = seen(JDETracker(match_thresh=1.0), a)  # any finite cost would be accepted
        trial.update(frame())
        xyah = means[0, :4].copy()
        xyah[0] += dx
        x, y, w, h = xyah_to_tlwh(xyah[None])[0]
        out = trial.update(frame(box(x, y, w, h)), a[None])  # the very same embedding
        assert (1 in ids(out)) is refound, dx
    # gating on the centre only (2 degrees of freedom, 5.99) rejects the inside pair too
    strict = seen(JDETracker(match_thresh=1.0, gating_only_position=True), a)
    strict.update(frame())
    assert strict.gating_threshold == CHI2_INV_95[2]
    x, y, w, h = xyah_to_tlwh((means[0, :4] + [0.99 * edge, 0, 0, 0])[None])[0]
    assert 1 not in ids(strict.update(frame(box(x, y, w, h)), a[None]))


def test_appearance_decides_when_two_boxes_overlap_the_track_equally():
    person, stranger = identities(2)
    for with_embeddings, expected_row in ((True, 1), (False, 0)):
        tracker = JDETracker()
        for _ in range(3):
            tracker.update(frame(box(100)), person[None] if with_embeddings else None)
        dets = frame(box(103), box(96))  # the nearer box is the stranger
        embeddings = np.stack([stranger, person]) if with_embeddings else None
        out = tracker.update(dets, embeddings)
        (row,) = out[out[:, TRACK_ID] == 1]
        assert row[DET_INDEX] == expected_row


# -- the IoU stages ------------------------------------------------------------------------------
@pytest.mark.parametrize("dx, kept", [(13, True), (14, False)])  # IoU 27/53 = 0.509, 26/54 = 0.481
def test_second_stage_matches_tracked_tracks_by_iou_up_to_05(dx, kept):
    a, b = identities(2)
    tracker = seen(JDETracker(), a)
    out = tracker.update(frame(box(100 + dx)), b[None])  # embedding 1 away: stage 1 rejects it
    assert (ids(out) == [1]) is kept
    assert states(tracker)[1] is (ByteTrackState.TRACKED if kept else ByteTrackState.LOST)
    # the same shift with the track's own embedding is matched in the first stage
    assert ids(seen(JDETracker(), a).update(frame(box(100 + dx)), a[None])) == [1]
    # a custom ceiling moves the boundary
    assert ids(seen(JDETracker(iou_match_thresh=0.6), a).update(frame(box(114)), b[None])) == [1]


def test_lost_tracks_are_not_in_the_iou_stage():
    a, b = identities(2)
    tracker = seen(JDETracker(), a)
    tracker.update(frame())
    # IoU 36/44 = 0.82 with the lost track's prediction (a tracked track would be matched at
    # 0.5, and it is below the 0.85 of a duplicate), but another person
    out = tracker.update(frame(box(104)), b[None])
    assert ids(out) == [] and tracker.track_ids.tolist() == [2, 1]  # 2 born, 1 lost
    assert states(tracker) == {1: ByteTrackState.LOST, 2: ByteTrackState.TRACKED}
    # at IoU 1 the newborn is a duplicate of the older lost track and is dropped (FairMOT)
    tracker = seen(JDETracker(), a)
    tracker.update(frame())
    assert ids(tracker.update(frame(box(100)), b[None])) == [] and tracker.track_ids.tolist() == [1]


@pytest.mark.parametrize("dx, confirmed", [(21, True), (22, False)])  # IoU 0.311 / 0.290
def test_unconfirmed_tracks_match_by_iou_up_to_07(dx, confirmed):
    a, b = identities(2)
    tracker = JDETracker()
    tracker.update(frame())  # frame 1: no detection, so the next birth waits for its second hit
    assert ids(tracker.update(frame(box(100)), a[None])) == []  # id 1 born unconfirmed
    out = tracker.update(frame(box(100 + dx)), b[None])  # appearance plays no part here
    if confirmed:
        assert ids(out) == [1] and tracker.track_ids.tolist() == [1]
    else:  # id 1 removed (not lost), the detection starts id 2
        assert ids(out) == [] and tracker.track_ids.tolist() == [2]


def test_confidence_threshold_filters_detections_and_births():
    tracker = JDETracker()
    assert tracker.conf_thres == tracker.new_track_thresh == 0.4
    tracker.update(frame(box(100, score=0.4), box(300, score=0.41)))
    assert tracker.num_tracks == 1 and ids(tracker.update(frame(box(300, score=0.41)))) == [1]
    strict = JDETracker(new_track_thresh=0.6)  # kept for matching, too weak to start a track
    strict.update(frame(box(100, score=0.5)))
    assert strict.num_tracks == 0
    strict.update(frame(box(100, score=0.7)))
    assert ids(strict.update(frame(box(100, score=0.45)))) == [1]  # a weak box keeps it alive


# -- track life cycle ------------------------------------------------------------------------------
def _ids_after_gap(frame_rate: float, gap: int) -> list[int]:
    """A person seen in frames 1-3, missed for ``gap`` frames, then seen again."""
    a = identities(1)[0]
    tracker = seen(JDETracker(frame_rate=frame_rate, track_buffer=30), a)
    for _ in range(gap):
        tracker.update(frame(), np.zeros((0, DIM)))
    out = tracker.update(frame(box(100)), a[None])
    assert ids(out) == tracker.track_ids.tolist() or ids(out) == []
    return tracker.track_ids.tolist()


def test_reactivation_with_the_same_id_within_the_buffer_removal_after_it():
    assert JDETracker(frame_rate=15).max_time_lost == 15
    assert JDETracker(frame_rate=60).max_time_lost == 60
    # 15 fps: last seen in frame 3, removed in frame 19 (19 - 3 > 15), still in the lost list
    # for frame 20's first association (FairMOT's list bookkeeping, as ByteTrack's)
    assert _ids_after_gap(15, 16) == [1]
    assert _ids_after_gap(15, 17) == [2]
    assert _ids_after_gap(30, 17) == [1]  # the same gap is short at 30 fps
    assert _ids_after_gap(30, 32) == [2]


def test_reactivated_track_is_reported_with_its_old_id_and_the_detection():
    a = identities(1)[0]
    tracker = seen(JDETracker(), a)
    for _ in range(5):
        assert len(tracker.update(frame(), np.zeros((0, DIM)))) == 0
    out = tracker.update(frame(box(300, score=0.5), box(101, score=0.8)), np.stack([a, a]))
    (row,) = out
    assert row[TRACK_ID] == 1 and row[DET_INDEX] == 1 and row[SCORE] == pytest.approx(0.8)


def test_duplicate_lost_track_is_dropped_when_shorter_lived():
    # A moves right (frames 1-8) then vanishes; its lost prediction slides over the static B
    # (another person: the first stage never gives B's box to A). B was tracked for longer by
    # the time they overlap (IoU > 0.85), so lost A is dropped.
    a, b = identities(2)
    for duplicate_iou_distance, survivors in ((0.15, [2]), (0.0, [1, 2])):
        tracker = JDETracker(duplicate_iou_distance=duplicate_iou_distance)
        for f in range(1, 9):
            rows = [box(100 + 10 * (f - 1))] + ([box(223)] if f >= 6 else [])
            tracker.update(frame(*rows), np.stack([a, b][: len(rows)]))
        for _ in range(9, 15):  # A's prediction reaches B's box in frame 14
            out = tracker.update(frame(box(223)), b[None])
        assert ids(out) == [2]
        assert sorted(tracker.track_ids.tolist()) == survivors


def test_appearance_keeps_ids_through_a_crossing_where_iou_alone_swaps_them():
    # two people standing side by side (frames 1-6) swap places in 4 frames (9 px a frame, 36
    # px): the motion model still expects them where they stood
    a, b = identities(2)

    def run(tracker, with_embeddings: bool) -> list[tuple[int, int]]:
        owners = []
        for k in range(14):
            shift = min(max(k - 5, 0), 4) * 9
            dets = frame(box(100 + shift), box(136 - shift))
            out = tracker.update(dets, np.stack([a, b]) if with_embeddings else None)
            by_row = {int(r[DET_INDEX]): int(r[TRACK_ID]) for r in out}
            owners.append((by_row[0], by_row[1]))
        return owners

    assert set(run(JDETracker(), True)) == {(1, 2)}
    assert run(JDETracker(), False)[-1] == (2, 1)  # motion-only: swapped
    assert run(ByteTrackTracker(), False)[-1] == (2, 1)  # so does ByteTrack


# -- features ------------------------------------------------------------------------------------
def test_features_are_an_ema_updated_in_every_association():
    a, b, c = identities(3)
    tracker = JDETracker(ema_alpha=0.9)
    tracker.update(frame(box(100)), (3 * a)[None])  # stored at unit length
    np.testing.assert_allclose(tracker.smooth_features[0], a, atol=1e-6)
    tracker.update(frame(box(100)), between(a, b, 0.9)[None])  # first stage
    expected = unit(0.9 * a + 0.1 * between(a, b, 0.9))
    np.testing.assert_allclose(tracker.smooth_features[0], expected, atol=1e-6)
    out = tracker.update(frame(box(105)), c[None])  # another embedding: matched by IoU (stage 2)
    assert ids(out) == [1]
    expected = unit(0.9 * expected + 0.1 * c)
    np.testing.assert_allclose(tracker.smooth_features[0], expected, atol=1e-6)
    other = JDETracker(ema_alpha=0.5)
    other.update(frame(box(100)), a[None])
    other.update(frame(box(100)), b[None])
    np.testing.assert_allclose(other.smooth_features[0], unit(a + b), atol=1e-6)


def test_missing_or_bad_embeddings_fall_back_to_iou_for_that_pair():
    a = identities(1)[0]
    tracker = JDETracker()
    tracker.update(frame(box(100)))  # no embeddings: no feature
    assert tracker.smooth_features.shape == (1, 0)
    bad = np.stack([np.full(DIM, np.nan), a, np.zeros(DIM)])
    out = tracker.update(frame(box(100), box(300), box(500)), bad)
    assert ids(out) == [1]  # matched by IoU in the first stage
    assert np.isnan(tracker.smooth_features[[0, 2]]).all()
    np.testing.assert_allclose(tracker.smooth_features[1], a, atol=1e-6)
    with pytest.raises(ValueError, match=f"dimension {DIM + 1} but this tracker uses {DIM}"):
        tracker.update(frame(box(100)), np.ones((1, DIM + 1)))


def test_motion_only_refinds_a_lost_track_by_overlap_in_the_first_stage():
    for dx, refound in ((2, True), (14, False)):  # IoU 0.90 (cost ~0.1) / 0.48 (cost > 0.5)
        tracker = JDETracker()
        for _ in range(3):
            tracker.update(frame(box(100)))
        tracker.update(frame())
        out = tracker.update(frame(box(100 + dx)))
        assert (ids(out) == [1]) is refound
        assert sorted(tracker.track_ids.tolist()) == ([1] if refound else [1, 2])


# -- camera motion, classes, output -------------------------------------------------------------
def test_warp_moves_predicted_tracks_with_the_camera():
    a = identities(1)[0]
    shift = np.array([[1.0, 0.0, 60.0], [0.0, 1.0, 0.0]])
    for warp, expected in ((shift, [1]), (None, [])):
        tracker = seen(JDETracker(), a)
        out = tracker.update(frame(box(160)), a[None], warp=warp)  # outside the gate without CMC
        assert ids(out) == expected


def test_per_class_never_mixes_classes():
    a = identities(1)[0]
    for per_class, expected in ((False, {1}), (True, {1, 2})):
        tracker = JDETracker(per_class=per_class)
        tracker.update(frame(box(100, cls=0)), a[None])
        for _ in range(3):
            out = tracker.update(frame(box(100, cls=1)), a[None])
        assert set(tracker.track_ids.tolist()) == expected
        assert (out[:, int(OutputColumn.CLASS_ID)] == 1).all()


def test_contract_shapes_and_reset():
    tracker = JDETracker()
    assert isinstance(tracker, MultiObjectTracker)
    assert tracker.update(np.zeros((0, 6))).shape == (0, 8)
    assert tracker.update(np.zeros((0, 6)), np.zeros((0, DIM))).shape == (0, 8)
    with pytest.raises(ValueError, match="dets must have shape"):
        tracker.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="embeddings must have shape"):
        tracker.update(frame(box(10)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="warp"):
        tracker.update(frame(box(10)), warp=np.eye(3))
    tracker.update(frame(box(100)))
    tracker.reset()
    assert tracker.num_tracks == 0 and ids(tracker.update(frame(box(300)))) == [1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"conf_thres": float("nan")}, "conf_thres must be finite"),
        ({"mc_lambda": 1.5}, "mc_lambda"),
        ({"ema_alpha": 1.0}, "ema_alpha"),
        ({"match_thresh": -0.1}, "match_thresh"),
        ({"iou_match_thresh": 2}, "second_match_thresh"),
        ({"track_buffer": -1}, "track_buffer"),
        ({"frame_rate": 0}, "frame_rate"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JDETracker(**kwargs)


# -- property tests ------------------------------------------------------------------------------
configs = st.fixed_dictionaries(
    {
        "conf_thres": st.sampled_from([0.0, 0.4]),
        "match_thresh": st.sampled_from([0.4, 1.0]),
        "track_buffer": st.integers(0, 5),
        "frame_rate": st.sampled_from([10, 30]),
        "mc_lambda": st.sampled_from([0.98, 1.0]),
        "gating_only_position": st.booleans(),
        "per_class": st.booleans(),
        "output_unconfirmed": st.booleans(),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), config=configs, with_embeddings=st.booleans())
def test_random_streams_keep_the_output_contract(stream, config, with_embeddings):
    check_stream(JDETracker(**config), stream, with_embeddings)


# -- configuration -------------------------------------------------------------------------------
def test_tracker_config_has_every_knob_and_builds_the_defaults(tmp_path):
    import inspect

    from conftest import compose_config
    from hydra.utils import instantiate

    cfg = compose_config(["task=track", "tracker=jde"], tmp_path)
    knobs = set(inspect.signature(JDETracker).parameters)
    assert set(cfg.tracker) - {"_target_"} == knobs
    built = instantiate(cfg.tracker)
    assert isinstance(built, JDETracker)
    default = JDETracker()
    for name in (
        "conf_thres",
        "new_track_thresh",
        "match_thresh",
        "iou_match_thresh",
        "unconfirmed_match_thresh",
        "mc_lambda",
        "ema_alpha",
        "max_time_lost",
    ):
        assert getattr(built, name) == getattr(default, name), name
