"""BotSortTracker: camera motion, appearance fusion, features; property tests; one real sequence.

Frame-by-frame identity with NirAharon/BoT-SORT itself (with and without embeddings, with its
GMC files) was checked outside the test-suite (the reference is not vendored here).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bytetrack import box, check_stream, frame, ids, states, streams

from reidsort.tracking.botsort import BotSortTracker
from reidsort.tracking.bytetrack import ByteTrackState, ByteTrackTracker
from reidsort.tracking.kalman_xywh import KalmanFilterXYWH
from reidsort.tracking.tracker import OutputColumn

TRACK_ID, DET_INDEX = int(OutputColumn.TRACK_ID), int(OutputColumn.DETECTION_INDEX)
DIM = 8


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def identities(count: int, seed: int = 0) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((DIM, DIM)))[0][:count]


# -- camera motion -------------------------------------------------------------------------------
def test_warp_applies_to_mean_and_covariance_after_the_prediction():
    tracker = BotSortTracker()
    tracker.update(frame(box(100), box(300)))  # frame 1: both activated
    tracker.update(frame(box(104), box(300)))
    tracker.update(frame(box(108), box(300), box(500)))  # id 3 born unconfirmed
    tracker.update(frame(box(112)))  # id 2 lost, id 3 removed
    tracker.update(frame(box(116), box(700)))  # id 4 unconfirmed
    before = {s.track_id: s for s in tracker.tracks}
    assert {k: s.state for k, s in before.items()} == {
        1: ByteTrackState.TRACKED,
        2: ByteTrackState.LOST,
        4: ByteTrackState.TRACKED,
    }
    angle = np.deg2rad(2.0)
    warp = np.array([[np.cos(angle), -np.sin(angle), 15.0], [np.sin(angle), np.cos(angle), -8.0]])
    r8 = np.zeros((8, 8))
    for block in range(4):
        r8[2 * block : 2 * block + 2, 2 * block : 2 * block + 2] = warp[:, :2]
    tracker.update(frame(), warp=warp)  # nothing matched: states are predicted + warped only
    after = {s.track_id: s for s in tracker.tracks}
    kf = KalmanFilterXYWH()
    for track_id in (1, 2):  # the pool: predicted (lost: size velocity zeroed), then warped
        mean = before[track_id].mean.copy()
        if before[track_id].state is ByteTrackState.LOST:
            mean[6:8] = 0
        mean, cov = kf.predict(mean[None], before[track_id].covariance[None])
        np.testing.assert_allclose(after[track_id].mean, r8 @ mean[0] + np.r_[15, -8, [0] * 6])
        np.testing.assert_allclose(after[track_id].covariance, r8 @ cov[0] @ r8.T, atol=1e-9)
    # the unconfirmed track is warped but not predicted (as in bot_sort.py); it then dies
    assert 4 not in after


def test_unconfirmed_track_is_warped_without_prediction():
    tracker = BotSortTracker(output_unconfirmed=False)
    tracker.update(frame(box(100)))
    tracker.update(frame(box(100), box(400)))  # id 2 unconfirmed
    (unconfirmed,) = [s for s in tracker.tracks if s.track_id == 2]
    shift = np.array([[1.0, 0.0, 30.0], [0.0, 1.0, 0.0]])
    out = tracker.update(frame(box(130), box(430)), warp=shift)  # the camera pans 30 px
    assert ids(out) == [1, 2]
    # its correction started from the warped, unpredicted state
    kf = KalmanFilterXYWH()
    mean, cov = kf.warp(unconfirmed.mean[None], unconfirmed.covariance[None], shift)
    mean, cov = kf.update(mean, cov, np.array([[450.0, 150.0, 40.0, 100.0]]))
    (confirmed,) = [s for s in tracker.tracks if s.track_id == 2]
    np.testing.assert_allclose(confirmed.mean, mean[0])
    np.testing.assert_allclose(confirmed.covariance, cov[0])
    # without CMC a 30 px jump of a 40 px box fails the 0.7 unconfirmed ceiling: id 2 dies
    plain = BotSortTracker(output_unconfirmed=False)
    plain.update(frame(box(100)))
    plain.update(frame(box(100), box(400)))
    plain.update(frame(box(100), box(430)))
    assert 2 not in plain.track_ids.tolist()


def test_camera_pan_keeps_ids_only_with_the_warp():
    pan = np.array([[1.0, 0.0, 50.0], [0.0, 1.0, 0.0]])
    for warp, expected in ((pan, [1, 2]), (None, [])):
        tracker = BotSortTracker(output_unconfirmed=False)
        for _ in range(3):
            tracker.update(frame(box(100), box(300)))
        assert ids(tracker.update(frame(box(150), box(350)), warp=warp)) == expected


# -- appearance ----------------------------------------------------------------------------------
def test_appearance_picks_the_consistent_detection_when_iou_is_ambiguous():
    person, stranger = identities(2)
    for with_embeddings, expected_row in ((True, 1), (False, 0)):
        tracker = BotSortTracker()
        for _ in range(3):
            tracker.update(frame(box(100)), person[None] if with_embeddings else None)
        # two boxes overlap the track almost equally; the closer one is a stranger
        dets = frame(box(104), box(94))
        embeddings = np.stack([stranger, person]) if with_embeddings else None
        out = tracker.update(dets, embeddings)
        (row,) = out[out[:, TRACK_ID] == 1]
        assert row[DET_INDEX] == expected_row


def test_appearance_cannot_match_boxes_that_barely_overlap():
    person = identities(1)[0]
    tracker = BotSortTracker(output_unconfirmed=False)
    for _ in range(3):
        tracker.update(frame(box(100)), person[None])
    # same person, 30 px away (IoU 0.14, 1 - IoU > proximity_thresh): appearance is ignored,
    # and the IoU cost alone is above match_thresh, so the track is not matched
    out = tracker.update(frame(box(130)), person[None])
    assert ids(out) == [] and states(tracker)[1] is ByteTrackState.LOST
    lenient = BotSortTracker(proximity_thresh=0.9)
    for _ in range(3):
        lenient.update(frame(box(100)), person[None])
    assert ids(lenient.update(frame(box(130)), person[None])) == [1]


def test_appearance_threshold_rules_out_dissimilar_embeddings():
    person = identities(1)[0]
    for appearance_thresh, matched in ((0.25, False), (0.6, True)):
        tracker = BotSortTracker(appearance_thresh=appearance_thresh, match_thresh=0.3)
        for _ in range(3):
            tracker.update(frame(box(100)), person[None])
        # IoU 0.6 (cost 0.46 > match_thresh 0.3): only appearance can match; the embedding is
        # about 61 degrees off: halved cosine distance 0.259
        other = unit(person * np.cos(np.pi / 3) + identities(2)[1] * np.sin(np.pi / 3) * 1.05)
        out = tracker.update(frame(box(110)), other[None])
        assert (ids(out) == [1]) is matched


def test_features_are_an_exponential_moving_average():
    a, b = identities(2)
    tracker = BotSortTracker(ema_alpha=0.9)
    tracker.update(frame(box(100)), (3 * a)[None])  # stored at unit length
    np.testing.assert_allclose(tracker.smooth_features[0], a, atol=1e-6)
    tracker.update(frame(box(100)), b[None])
    np.testing.assert_allclose(tracker.smooth_features[0], unit(0.9 * a + 0.1 * b), atol=1e-6)
    # a low-score match (second association) carries no embedding into the track
    tracker.update(frame(box(100, score=0.3)), identities(3)[2][None])
    np.testing.assert_allclose(tracker.smooth_features[0], unit(0.9 * a + 0.1 * b), atol=1e-6)


def test_tracks_without_features_and_bad_embeddings():
    a = identities(1)[0]
    tracker = BotSortTracker(output_unconfirmed=False)
    tracker.update(frame(box(100)))  # no embeddings yet
    assert tracker.smooth_features.shape == (1, 0)
    bad = np.stack([a, np.zeros(DIM), np.full(DIM, np.nan)])
    out = tracker.update(frame(box(100), box(300), box(500)), bad)
    assert ids(out) == [1]
    np.testing.assert_allclose(tracker.smooth_features[0], a, atol=1e-6)  # first feature
    assert np.isnan(tracker.smooth_features[1:]).all()  # births with unusable embeddings
    with pytest.raises(ValueError, match=f"dimension {DIM + 1} but this tracker uses {DIM}"):
        tracker.update(frame(box(100)), np.ones((1, DIM + 1)))


def test_without_embeddings_it_is_bytetrack_with_the_xywh_filter():
    stream = [
        frame(box(100 + 3 * k), box(300, score=0.3 if k == 4 else 0.9), box(500 + k))
        for k in range(8)
    ]
    bot = BotSortTracker(output_unconfirmed=False)
    byte = ByteTrackTracker()
    for dets in stream:
        a, b = bot.update(dets), byte.update(dets)
        assert ids(a) == ids(b)
        np.testing.assert_allclose(a[:, 4:], b[:, 4:])
    assert np.abs(a[:, :4] - b[:, :4]).max() < 2.0  # different filters, nearly the same boxes


def test_unconfirmed_births_are_reported_unless_disabled():
    for output_unconfirmed, expected in ((True, [1, 2]), (False, [1])):
        tracker = BotSortTracker(output_unconfirmed=output_unconfirmed)
        tracker.update(frame(box(100)))
        assert ids(tracker.update(frame(box(100), box(400)))) == expected


def test_lost_track_zeroes_both_size_velocities():
    tracker = BotSortTracker()
    for step in range(6):
        tracker.update(frame(box(100 + 5 * step, w=40 + 2 * step, h=100 + 4 * step)))
    tracker.update(frame())
    tracker.update(frame())
    (snapshot,) = tracker.tracks
    assert snapshot.state is ByteTrackState.LOST
    np.testing.assert_array_equal(snapshot.mean[6:8], 0.0)
    assert snapshot.mean[4] > 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"proximity_thresh": 1.5}, "proximity_thresh"),
        ({"appearance_thresh": -0.1}, "appearance_thresh"),
        ({"ema_alpha": 1.0}, "ema_alpha"),
        ({"track_low_thresh": 0.9}, "low_thresh must be <= track_thresh"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BotSortTracker(**kwargs)


def test_threshold_names_and_defaults():
    tracker = BotSortTracker()
    assert (tracker.track_high_thresh, tracker.track_low_thresh) == (0.6, 0.1)
    assert tracker.new_track_thresh == 0.7 and tracker.max_time_lost == 30
    assert BotSortTracker(frame_rate=14).max_time_lost == 14


# -- property tests ------------------------------------------------------------------------------
configs = st.fixed_dictionaries(
    {
        "track_high_thresh": st.sampled_from([0.3, 0.6]),
        "new_track_thresh": st.sampled_from([0.3, 0.7]),
        "track_buffer": st.integers(0, 5),
        "proximity_thresh": st.sampled_from([0.5, 1.0]),
        "appearance_thresh": st.sampled_from([0.25, 1.0]),
        "fuse_score": st.booleans(),
        "per_class": st.booleans(),
        "output_unconfirmed": st.booleans(),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), config=configs, with_embeddings=st.booleans())
def test_random_streams_keep_the_output_contract(stream, config, with_embeddings):
    check_stream(BotSortTracker(**config), stream, with_embeddings)


# -- real data -----------------------------------------------------------------------------------
def test_mot17_sequence_hota_with_gmc(shared_data):
    """MOT17-09 with its public YOLOX-X detections and BoT-SORT's GMC file (measured: HOTA
    0.7596; the reference BoT-SORT gives the same boxes and ids frame by frame)."""
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
    tracker = BotSortTracker(frame_rate=info.frame_rate)
    rows = [
        tracker_output_to_mot_rows(index, tracker.update(dets, warp=warps[index]))
        for index, dets, _ in detections.iter_frames(1, info.length)
    ]
    evaluation = evaluate_mot(
        {"MOT17-09": np.concatenate(rows)},
        {"MOT17-09": sequence / "gt" / "gt.txt"},
        {"MOT17-09": info.length},
    )
    assert evaluation.row(COMBINED)["HOTA"] == pytest.approx(0.7596, abs=0.002)
