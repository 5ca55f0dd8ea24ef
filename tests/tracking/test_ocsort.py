"""OC-SORT: each mechanism on a small hand-made case, property tests and one real sequence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kalman_sort import PlainSortKalman

from reidsort.tracking.detection import xyxy_to_tlwh
from reidsort.tracking.iou_matching import iou_tlwh
from reidsort.tracking.kalman_sort import xysr_to_xyxy, xyxy_to_xysr
from reidsort.tracking.ocsort import OcSortTracker
from reidsort.tracking.tracker import OutputColumn

TRACK_ID, SCORE, CLASS_ID, DET_INDEX = (
    int(OutputColumn.TRACK_ID),
    int(OutputColumn.SCORE),
    int(OutputColumn.CLASS_ID),
    int(OutputColumn.DETECTION_INDEX),
)
BOX = slice(0, 4)
EMPTY = np.zeros((0, 6))


def det(x1: float, y1: float, w: float = 40.0, h: float = 100.0, score=0.9, cls=0) -> list:
    return [x1, y1, x1 + w, y1 + h, score, cls]


def predicted_xyxy(tracker: OcSortTracker) -> np.ndarray:
    """Where the tracker's next predict puts its tracks (same filter, same step)."""
    means, _ = tracker.kf.predict(tracker.means_xysr, tracker.covariances)
    return xysr_to_xyxy(means[:, :4])


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return iou_tlwh(xyxy_to_tlwh(np.atleast_2d(a)), xyxy_to_tlwh(np.atleast_2d(b)))


# -- observation-centric momentum ---------------------------------------------------------------
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_momentum_breaks_an_iou_tie_towards_the_direction_of_motion(direction):
    tracker = OcSortTracker()
    for frame in range(6):
        tracker.update(np.array([det(300 + 2.0 * direction * frame, 100)]))
    centre = predicted_xyxy(tracker)[0]
    left, right = centre.copy(), centre.copy()
    left[[0, 2]] -= 15.0
    right[[0, 2]] += 15.0
    ious = iou_xyxy(centre, np.stack([left, right]))[0]
    assert ious[0] == pytest.approx(ious[1], abs=1e-12) and ious[0] > 0.3, "an exact IoU tie"
    dets = np.array([[*left, 0.9, 0], [*right, 0.9, 0]])
    out = tracker.update(dets)
    continued = out[out[:, TRACK_ID] == 1]
    assert len(continued) == 1
    # Moving right it takes the right box, moving left the left one (same layout).
    assert continued[0, DET_INDEX] == (1 if direction > 0 else 0)


# -- observation-centric recovery ---------------------------------------------------------------
def test_recovery_matches_the_last_observation_after_the_prediction_drifted_away():
    tracker = OcSortTracker()
    for frame in range(8):
        tracker.update(np.array([det(100 + 10.0 * frame, 100)]))  # 10 px / frame to the right
    last = np.array(det(170, 100))
    for _ in range(4):  # the object stops behind an occluder; the filter keeps moving it
        tracker.update(EMPTY)
    assert iou_xyxy(predicted_xyxy(tracker)[0], last[:4])[0, 0] < tracker.iou_threshold
    tracker.update(np.array([last]))  # it reappears where it was last seen
    assert tracker.track_ids.tolist() == [1], "recovered, no new track"
    assert tracker.time_since_update.tolist() == [0]


# -- observation-centric re-update --------------------------------------------------------------
def test_re_update_replays_the_interpolated_trajectory_step_by_step():
    tracker = OcSortTracker()
    boxes = [det(100 + 8.0 * f, 50 + 2.0 * f, 40 + f, 100 + 2 * f) for f in range(6)]
    for box in boxes:  # frames 1..6
        tracker.update(np.array([box]))
    for _ in range(3):  # frames 7..9: lost
        tracker.update(EMPTY)
    new_box = det(100 + 8.0 * 9 - 10, 50 + 2.0 * 9 + 4, 44, 110)
    tracker.update(np.array([new_box]))  # frame 10: found again, gap of 4 frames
    assert tracker.track_ids.tolist() == [1] and tracker.time_since_update.tolist() == [0]

    # The same by hand: a plain 7x7 filter through frames 1..6, predicted into frame 7 (where
    # the track was lost and the filter frozen), then 4 virtual steps to the new box.
    z = [xyxy_to_xysr(np.array(b[:4])) for b in boxes]
    plain = PlainSortKalman(z[0])
    for measurement in z[1:]:
        plain.predict()
        plain.update(measurement)
    plain.predict()
    z_new = xyxy_to_xysr(np.array(new_box[:4]))
    gap = 4
    (x1, y1, s1, r1), (x2, y2, s2, r2) = z[-1], z_new
    w1, h1, w2, h2 = np.sqrt(s1 * r1), np.sqrt(s1 / r1), np.sqrt(s2 * r2), np.sqrt(s2 / r2)
    no_replay = PlainSortKalman(z[0])
    no_replay.x, no_replay.P = plain.x.copy(), plain.P.copy()
    for step in range(1, gap + 1):
        w = w1 + step * (w2 - w1) / gap
        h = h1 + step * (h2 - h1) / gap
        virtual = [x1 + step * (x2 - x1) / gap, y1 + step * (y2 - y1) / gap, w * h, w / h]
        plain.update(np.array(virtual))
        if step < gap:
            plain.predict(clamp=False)
    plain.update(z_new)  # and the new observation once more, as the reference does
    np.testing.assert_allclose(tracker.means_xysr[0], plain.x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tracker.covariances[0], plain.P, rtol=1e-9, atol=1e-9)

    # Without the replay (plain SORT: keep predicting, then one update) the state differs.
    for _ in range(gap - 1):
        no_replay.predict()
    no_replay.update(z_new)
    assert abs(no_replay.x[0] - plain.x[0]) > 0.2 and abs(no_replay.x[2] - plain.x[2]) > 20
    assert np.abs(no_replay.P - plain.P).max() > 1.0


def test_a_track_lost_before_its_first_match_is_not_replayed():
    tracker = OcSortTracker()
    tracker.update(np.array([det(100, 100)]))  # born; the birth box is no observation
    tracker.update(EMPTY)
    tracker.update(EMPTY)
    before = tracker.kf.predict(tracker.means_xysr, tracker.covariances)
    tracker.update(np.array([det(100, 100)]))
    expected, _ = tracker.kf.update(*before, xyxy_to_xysr(np.array([det(100, 100)[:4]])))
    np.testing.assert_allclose(tracker.means_xysr, expected)


# -- output rules ------------------------------------------------------------------------------
def test_min_hits_and_the_first_frames_rule():
    tracker = OcSortTracker(min_hits=3)
    a, b = det(100, 100), det(400, 100)
    reported = []
    for frame in range(1, 12):
        dets = [a] if frame < 4 else [a, b]
        if frame == 8:
            dets = [b]  # a missed once: its hit streak restarts
        out = tracker.update(np.array(dets))
        reported.append(sorted(out[:, TRACK_ID].astype(int).tolist()))
    assert reported[:3] == [[1], [1], [1]], "first min_hits frames: every updated track"
    assert reported[3:7] == [[1], [1], [1], [1, 2]], "track 2 (born in frame 4) from frame 7"
    assert reported[7] == [2], "a missed track is not reported"
    assert reported[8:11] == [[2], [2], [1, 2]], "track 1 needs 3 new consecutive hits"


def test_a_track_born_in_the_first_frames_is_reported_at_birth():
    tracker = OcSortTracker(min_hits=3)
    tracker.update(np.array([det(100, 100)]))
    out = tracker.update(np.array([det(100, 100), det(400, 100)]))
    assert sorted(out[:, TRACK_ID].tolist()) == [1, 2]


@pytest.mark.parametrize("output", ["observation", "state"])
def test_reported_box_is_the_observation_or_the_state(output):
    tracker = OcSortTracker(min_hits=1, output=output)
    rng = np.random.default_rng(0)
    for frame in range(8):
        dets = np.array([det(100 + 5.0 * frame + rng.normal(0, 3), 100 + rng.normal(0, 3))])
        out = tracker.update(dets)
    assert len(out) == 1
    if output == "observation":
        np.testing.assert_array_equal(out[0, BOX], dets[0, :4])
    else:
        np.testing.assert_allclose(out[0, BOX], xysr_to_xyxy(tracker.means_xysr[0, :4]))
        assert np.abs(out[0, BOX] - dets[0, :4]).max() > 0.1
    assert out[0, SCORE] == 0.9 and out[0, DET_INDEX] == 0


# -- BYTE stage --------------------------------------------------------------------------------
@pytest.mark.parametrize("use_byte", [False, True])
def test_byte_stage_uses_low_score_boxes_only_when_enabled(use_byte):
    tracker = OcSortTracker(use_byte=use_byte, min_hits=1)
    for _ in range(4):
        tracker.update(np.array([det(100, 100)]))
    out = tracker.update(np.array([det(400, 300, score=0.3), det(101, 100, score=0.3)]))
    assert tracker.track_ids.tolist() == [1], "low-score boxes never start tracks"
    if use_byte:
        assert out[:, [TRACK_ID, DET_INDEX]].tolist() == [[1, 1]]
        assert out[0, SCORE] == 0.3
    else:
        assert len(out) == 0 and tracker.time_since_update.tolist() == [1]
    out = tracker.update(np.array([det(100, 100, score=0.05)]))  # below low_thresh: ignored
    assert len(out) == 0


# -- per class, inputs, camera motion ----------------------------------------------------------
@pytest.mark.parametrize("per_class", [False, True])
def test_per_class_keeps_tracks_to_their_class(per_class):
    tracker = OcSortTracker(per_class=per_class, min_hits=1)
    for _ in range(3):
        tracker.update(np.array([det(100, 100, cls=0)]))
    out = tracker.update(np.array([det(100, 100, cls=1)]))
    if per_class:
        assert tracker.track_ids.tolist() == [1, 2]
        assert tracker.time_since_update.tolist() == [1, 0]
    else:
        assert out[:, [TRACK_ID, CLASS_ID]].tolist() == [[1, 1]]


def test_invalid_rows_are_dropped_and_indices_refer_to_the_input():
    tracker = OcSortTracker()
    dets = np.array(
        [
            [np.nan, 0, 10, 10, 0.9, 0],
            [50, 50, 50, 90, 0.9, 0],  # zero width
            [60, 60, 100, 160, np.nan, 0],
            [70, 70, 110, 170, 0.9, np.nan],
            det(200, 100),
        ]
    )
    out = tracker.update(dets)
    assert out[:, DET_INDEX].tolist() == [4] and tracker.num_tracks == 1
    out = tracker.update(np.array([det(201, 100)])[:, :5])  # (N, 5): class 0
    assert out[:, [TRACK_ID, CLASS_ID]].tolist() == [[1, 0]]
    for empty in (EMPTY, np.zeros((0, 5)), [], np.zeros(0)):
        assert tracker.update(empty).shape == (0, 8)
    with pytest.raises(ValueError, match="shape"):
        tracker.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="embeddings"):
        tracker.update(np.array([det(1, 1)]), np.zeros((2, 8)))


@pytest.mark.parametrize("use_warp", [False, True])
def test_camera_motion_warp_moves_the_predicted_tracks(use_warp):
    tracker = OcSortTracker(min_hits=1)
    for _ in range(4):
        tracker.update(np.array([det(100, 100)]))
    pan = np.array([[1.0, 0.0, 200.0], [0.0, 1.0, 0.0]])  # the image content moved 200 px right
    tracker.update(np.array([det(300, 100)]), warp=pan if use_warp else None)
    if use_warp:
        assert tracker.track_ids.tolist() == [1] and tracker.time_since_update.tolist() == [0]
    else:
        assert tracker.track_ids.tolist() == [1, 2]


def test_warp_must_be_a_finite_2x3_matrix():
    tracker = OcSortTracker()
    with pytest.raises(ValueError, match="warp"):
        tracker.update(EMPTY, warp=np.eye(3))
    with pytest.raises(ValueError, match="warp"):
        tracker.update(EMPTY, warp=np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="invertible"):
        tracker.update(EMPTY, warp=np.zeros((2, 3)))


def test_ids_start_at_one_and_reset_restarts_them():
    tracker = OcSortTracker()
    out = tracker.update(np.array([det(0, 0), det(300, 0)]))
    assert sorted(out[:, TRACK_ID].tolist()) == [1, 2]
    tracker.reset()
    assert tracker.num_tracks == 0 and tracker.frame_count == 0
    out = tracker.update(np.array([det(500, 0)]))
    assert out[:, TRACK_ID].tolist() == [1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"det_thresh": np.nan},
        {"max_age": -1},
        {"min_hits": 1.5},
        {"iou_threshold": 1.5},
        {"delta_t": 0},
        {"inertia": -0.1},
        {"asso_func": "giou"},
        {"output": "both"},
    ],
)
def test_bad_constructor_arguments_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        OcSortTracker(**kwargs)


# -- properties --------------------------------------------------------------------------------
@st.composite
def streams(draw):
    """Frames of (dets (N, 6), warp or None) around a few moving objects, with clutter, missed
    objects, invalid rows and empty frames."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    objects = rng.uniform([0, 0, 10, 20], [600, 400, 80, 200], (draw(st.integers(0, 8)), 4))
    velocity = rng.normal(0, 6, (len(objects), 2))
    presence = draw(st.floats(0.0, 1.0))
    with_invalid = draw(st.booleans())
    with_warp = draw(st.booleans())
    stream = []
    for frame in range(draw(st.integers(1, 16))):
        present = rng.random(len(objects)) < presence
        tlwh = objects[present].copy()
        tlwh[:, :2] += velocity[present] * frame + rng.normal(0, 2, (int(present.sum()), 2))
        clutter = rng.uniform([0, 0, 1, 1], [600, 400, 100, 200], (rng.integers(0, 3), 4))
        tlwh = np.concatenate([tlwh, clutter])
        dets = np.column_stack(
            [
                tlwh[:, :2],
                tlwh[:, :2] + tlwh[:, 2:],
                rng.uniform(0, 1, len(tlwh)),
                rng.integers(0, 2, len(tlwh)),
            ]
        )
        if with_invalid and len(dets):
            dets[rng.integers(len(dets)), rng.integers(0, 6)] = np.nan
            row = rng.integers(len(dets))
            dets[row, 2] = dets[row, 0] - rng.choice([0.0, 5.0])
        warp = None
        if with_warp:
            angle, scale = rng.normal(0, 0.02), rng.uniform(0.95, 1.05)
            warp = np.array(
                [
                    [scale * np.cos(angle), -scale * np.sin(angle), rng.normal(0, 10)],
                    [scale * np.sin(angle), scale * np.cos(angle), rng.normal(0, 10)],
                ]
            )
        stream.append((dets[rng.permutation(len(dets))], warp))
    return stream


configs = st.fixed_dictionaries(
    {
        "det_thresh": st.sampled_from([0.0, 0.3, 0.6]),
        "max_age": st.integers(0, 6),
        "min_hits": st.integers(0, 4),
        "iou_threshold": st.sampled_from([0.05, 0.3, 0.7]),
        "delta_t": st.integers(1, 4),
        "inertia": st.sampled_from([0.0, 0.2, 1.0]),
        "use_byte": st.booleans(),
        "output": st.sampled_from(["observation", "state"]),
        "per_class": st.booleans(),
    }
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), config=configs)
def test_random_streams_keep_invariants(stream, config):
    tracker = OcSortTracker(**config)
    ever_seen: set[int] = set()
    for dets, warp in stream:
        live_before = set(tracker.track_ids.tolist())
        out = tracker.update(dets, warp=warp)
        assert out.shape[1] == 8 and np.isfinite(out).all()
        ids = out[:, TRACK_ID].astype(int)
        assert len(set(ids.tolist())) == len(ids) and (ids >= 1).all()
        rows = out[:, DET_INDEX].astype(int)
        assert len(set(rows.tolist())) == len(rows), "one detection per track"
        assert ((rows >= 0) & (rows < len(dets))).all()
        used = dets[rows]
        assert np.isfinite(used).all(), "invalid rows never reach a track"
        np.testing.assert_array_equal(out[:, SCORE], used[:, 4])
        np.testing.assert_array_equal(out[:, CLASS_ID], used[:, 5])
        low_bound = tracker.det_thresh
        if tracker.use_byte:
            low_bound = min(low_bound, tracker.low_thresh)
        assert (used[:, 4] > low_bound).all()
        if tracker.output == "observation":  # the detection box (or its round trip at birth)
            np.testing.assert_allclose(out[:, BOX], used[:, :4], rtol=1e-6, atol=1e-3)
        live = tracker.track_ids
        assert len(set(live.tolist())) == len(live) and (np.diff(live) > 0).all()
        assert set(ids.tolist()) <= set(live.tolist())
        reborn = (set(live.tolist()) - live_before) & ever_seen
        assert not reborn, "a deleted id came back"
        ever_seen |= set(live.tolist())
        assert np.isfinite(tracker.means_xysr).all() and np.isfinite(tracker.covariances).all()
        assert (tracker.time_since_update <= tracker.max_age).all()


# -- real data ---------------------------------------------------------------------------------
def test_mot17_sequence_hota(shared_data):
    """One MOT17-trainhalf sequence with its public YOLOX-X detections. Measured: HOTA 0.6861;
    the reference noahcao/OC_SORT ``OCSort`` gives the same boxes and ids in every frame of all
    7 sequences (checked while developing, with and without use_byte)."""
    from reidsort.evaluation.mot import COMBINED, evaluate_mot
    from reidsort.tracking.mot_io import (
        read_mot_detections,
        read_seqinfo,
        tracker_output_to_mot_rows,
    )

    sequence = shared_data / "mot" / "MOT17-trainhalf" / "MOT17-09"
    info = read_seqinfo(sequence)
    detections = read_mot_detections(sequence / "det" / "det.txt")
    tracker = OcSortTracker()
    rows = [
        tracker_output_to_mot_rows(index, tracker.update(dets))
        for index, dets, _ in detections.iter_frames(1, info.length)
    ]
    evaluation = evaluate_mot(
        {"MOT17-09": np.concatenate(rows)},
        {"MOT17-09": sequence / "gt" / "gt.txt"},
        {"MOT17-09": info.length},
    )
    assert evaluation.row(COMBINED)["HOTA"] == pytest.approx(HOTA_MOT17_09, abs=0.002)


HOTA_MOT17_09 = 0.6861
