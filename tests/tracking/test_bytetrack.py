"""ByteTrackTracker: each mechanism on a small hand-made case, property tests, one real sequence.

Frame-by-frame identity with ifzhang/ByteTrack itself was checked outside the test-suite (the
reference is GPL code and is not vendored here); these tests pin the behaviour it showed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reidsort.tracking.bytetrack import ByteTrackState, ByteTrackTracker
from reidsort.tracking.tracker import OutputColumn

TRACK_ID, SCORE, CLASS_ID, DET_INDEX = (
    int(OutputColumn.TRACK_ID),
    int(OutputColumn.SCORE),
    int(OutputColumn.CLASS_ID),
    int(OutputColumn.DETECTION_INDEX),
)


def box(x: float, y: float = 100.0, w: float = 40.0, h: float = 100.0, score=0.9, cls=0):
    """One detection row ``[x1, y1, x2, y2, score, cls]``."""
    return [x, y, x + w, y + h, score, cls]


def frame(*rows) -> np.ndarray:
    return np.array(rows, dtype=float).reshape(-1, 6)


def ids(output: np.ndarray) -> list[int]:
    return sorted(output[:, TRACK_ID].astype(int).tolist())


def states(tracker) -> dict[int, ByteTrackState]:
    return {s.track_id: s.state for s in tracker.tracks}


# -- the two score stages ------------------------------------------------------------------------
def test_low_score_second_stage_recovers_a_track():
    tracker = ByteTrackTracker()
    for step in range(3):
        tracker.update(frame(box(100 + 2 * step)))
    out = tracker.update(frame(box(106, score=0.3)))  # occluded: the detector's score drops
    assert ids(out) == [1]
    assert out[0, SCORE] == pytest.approx(0.3) and out[0, DET_INDEX] == 0
    # the same frame with the low box ignored: the track is lost, nothing reported
    ignoring = ByteTrackTracker(low_thresh=0.35)
    for step in range(3):
        ignoring.update(frame(box(100 + 2 * step)))
    assert len(ignoring.update(frame(box(106, score=0.3)))) == 0
    assert states(ignoring) == {1: ByteTrackState.LOST}


def test_low_score_boxes_neither_start_nor_reactivate_tracks():
    tracker = ByteTrackTracker()
    for _ in range(3):
        tracker.update(frame(box(100)))
    tracker.update(frame())  # lost
    out = tracker.update(frame(box(100, score=0.5), box(400, score=0.5)))
    assert len(out) == 0 and tracker.num_tracks == 1  # no birth from a low box
    assert states(tracker) == {1: ByteTrackState.LOST}  # lost tracks only see high boxes


def test_births_only_at_the_new_track_threshold():
    tracker = ByteTrackTracker()  # track_thresh 0.6 -> new_track_thresh 0.7
    assert tracker.new_track_thresh == pytest.approx(0.7)
    tracker.update(frame(box(100, score=0.69)))  # a high box, but below the birth threshold
    assert tracker.num_tracks == 0
    tracker.update(frame(box(100, score=0.7)))
    assert tracker.num_tracks == 1
    # births come from high boxes only, whatever new_track_thresh says
    lenient = ByteTrackTracker(new_track_thresh=0.5)
    lenient.update(frame(box(100, score=0.55)))
    assert lenient.num_tracks == 0


# -- track life cycle ----------------------------------------------------------------------------
def test_first_frame_activates_later_births_wait_for_a_second_hit():
    tracker = ByteTrackTracker()
    assert ids(tracker.update(frame(box(100)))) == [1]  # frame 1: reported at once
    out = tracker.update(frame(box(100), box(400)))  # frame 2: id 2 is born unconfirmed
    assert ids(out) == [1] and tracker.num_tracks == 2
    assert ids(tracker.update(frame(box(100), box(400)))) == [1, 2]  # confirmed on its 2nd hit


def test_unconfirmed_track_missed_in_its_second_frame_is_removed():
    tracker = ByteTrackTracker()
    tracker.update(frame(box(100)))
    tracker.update(frame(box(100), box(400)))  # id 2 unconfirmed
    tracker.update(frame(box(100)))  # id 2 missed: removed, not lost
    assert tracker.track_ids.tolist() == [1]
    tracker.update(frame(box(100), box(400)))
    assert tracker.track_ids.tolist() == [1, 3]  # a new id, 2 is gone for good
    assert ids(tracker.update(frame(box(100), box(400)))) == [1, 3]


def test_lost_track_is_reactivated_with_its_id():
    tracker = ByteTrackTracker()
    for _ in range(3):
        tracker.update(frame(box(100)))
    for _ in range(5):
        assert len(tracker.update(frame())) == 0
    assert states(tracker) == {1: ByteTrackState.LOST}
    out = tracker.update(frame(box(101)))
    assert ids(out) == [1] and states(tracker) == {1: ByteTrackState.TRACKED}


def _ids_after_gap(frame_rate: float, gap: int) -> list[int]:
    """Track seen in frames 1-3, missed for ``gap`` frames, then seen again."""
    tracker = ByteTrackTracker(frame_rate=frame_rate, track_buffer=30)
    for _ in range(3):
        tracker.update(frame(box(100)))
    for _ in range(gap):
        tracker.update(frame())
    tracker.update(frame(box(100)))
    return tracker.track_ids.tolist()


@pytest.mark.parametrize("frame_rate, expected", [(30, 30), (15, 15), (60, 60), (10, 10)])
def test_buffer_scales_with_frame_rate(frame_rate, expected):
    assert ByteTrackTracker(frame_rate=frame_rate, track_buffer=30).max_time_lost == expected


def test_buffer_length_in_frames_follows_the_reference():
    # max_time_lost = 15 at 15 fps. Last seen in frame 3, the track is removed in frame 19
    # (19 - 3 > 15) but, as in the reference, stays in the lost list for frame 20's first
    # association: a gap of 16 frames (back in frame 20) keeps the id, 17 does not.
    assert _ids_after_gap(15, 16) == [1]
    assert _ids_after_gap(15, 17) == [2]
    assert _ids_after_gap(30, 17) == [1]  # the same gap is short at 30 fps
    assert _ids_after_gap(30, 32) == [2]


def test_lost_track_keeps_its_size_but_not_its_growth():
    tracker = ByteTrackTracker()
    for step in range(6):
        tracker.update(frame(box(100 + 5 * step, h=100 + 4 * step)))
    tracker.update(frame())  # missed: predicted as tracked, then marked lost
    tracker.update(frame())  # predicted as lost
    (snapshot,) = tracker.tracks
    assert snapshot.state is ByteTrackState.LOST
    assert snapshot.mean[7] == 0.0  # height velocity zeroed (STrack.multi_predict)
    assert snapshot.mean[4] > 1.0  # the x velocity is kept


def test_duplicate_lost_track_is_dropped_when_shorter_lived():
    # A moves right (frames 1-8) then vanishes; its lost prediction slides over the static B.
    # B was tracked for longer by the time they overlap, so lost A is dropped.
    for duplicate_iou_distance, survivors in ((0.15, [2]), (0.0, [1, 2])):
        tracker = ByteTrackTracker(duplicate_iou_distance=duplicate_iou_distance)
        for f in range(1, 9):
            rows = [box(100 + 10 * (f - 1))] + ([box(223)] if f >= 6 else [])
            tracker.update(frame(*rows))
        for _ in range(9, 15):  # A's prediction reaches B's box in frame 14
            out = tracker.update(frame(box(223)))
        assert ids(out) == [2]
        assert sorted(tracker.track_ids.tolist()) == survivors


def test_duplicate_tracked_track_is_dropped_when_shorter_lived():
    # As above, but B is born in frame 8: lost A (frames 1-8) is the longer-lived, so the
    # tracked B is dropped in frame 14 and A takes the box over from frame 15, with its old id.
    tracker = ByteTrackTracker()
    for f in range(1, 9):
        rows = [box(100 + 10 * (f - 1))] + ([box(223)] if f >= 8 else [])
        tracker.update(frame(*rows))
    outputs = [ids(tracker.update(frame(box(223)))) for _ in range(9, 16)]
    assert outputs == [[2]] * 5 + [[], [1]]
    assert tracker.track_ids.tolist() == [1]


# -- output --------------------------------------------------------------------------------------
def test_output_is_the_kalman_box_with_the_detection_score_and_row():
    tracker = ByteTrackTracker()
    first = tracker.update(frame(box(100, score=0.95)))
    np.testing.assert_allclose(first[0, :4], [100, 100, 140, 200])  # the detection itself
    for step in range(1, 4):
        out = tracker.update(frame(box(400, score=0.8), box(100 + 8 * step, score=0.75)))
    (row,) = out[out[:, TRACK_ID] == 1]
    assert row[DET_INDEX] == 1 and row[SCORE] == pytest.approx(0.75)
    det = np.array(box(124)[:4])
    assert not np.allclose(row[:4], det) and np.abs(row[:4] - det).max() < 8  # filtered box


def test_invalid_rows_are_dropped_and_det_index_is_the_input_row():
    tracker = ByteTrackTracker()
    dets = frame(
        box(10),
        [np.nan, 0, 10, 10, 0.9, 0],
        box(200, w=0.0),  # zero width
        box(300, score=np.nan),
        [400, 100, 440, 200, 0.9, np.inf],  # non-finite class
        box(500, score=0.95),
    )
    out = tracker.update(dets)
    assert sorted(out[:, DET_INDEX].astype(int).tolist()) == [0, 5]
    assert np.isfinite(out).all()


def test_input_shapes():
    tracker = ByteTrackTracker()
    assert tracker.update(np.zeros((0, 6))).shape == (0, 8)
    assert tracker.update([]).shape == (0, 8)
    out = tracker.update(np.array([[0, 0, 10, 20, 0.9]]))  # (N, 5): class 0
    assert out.shape == (0, 8)  # frame 3: born unconfirmed
    out = tracker.update(np.array([[0, 0, 10, 20, 0.9]]))
    assert out[0, CLASS_ID] == 0
    with pytest.raises(ValueError, match=r"dets must have shape"):
        tracker.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"embeddings must have shape"):
        tracker.update(frame(box(10)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="warp"):
        tracker.update(frame(box(10)), warp=np.eye(3))


def test_output_filters_by_area_and_aspect_ratio():
    dets = frame(box(0, w=5, h=10), box(100, w=200, h=100), box(400))
    assert ids(ByteTrackTracker().update(dets)) == [1, 2, 3]
    assert ids(ByteTrackTracker(min_box_area=100, aspect_ratio_thresh=1.6).update(dets)) == [3]


def test_per_class_never_mixes_classes():
    for per_class, expected in ((False, {1}), (True, {1, 2})):
        tracker = ByteTrackTracker(per_class=per_class)
        tracker.update(frame(box(100, cls=0)))
        for _ in range(3):
            out = tracker.update(frame(box(100, cls=1)))
        assert set(tracker.track_ids.tolist()) == expected
        assert (out[:, CLASS_ID] == 1).all()


def test_warp_moves_predicted_tracks_with_the_camera():
    shift = np.array([[1.0, 0.0, 60.0], [0.0, 1.0, 0.0]])
    for warp, expected in ((shift, [1]), (None, [])):
        tracker = ByteTrackTracker()
        for _ in range(3):
            tracker.update(frame(box(100)))
        out = tracker.update(frame(box(160)), warp=warp)  # a 60 px pan: no overlap without CMC
        assert ids(out) == expected


def test_reset_restarts_ids_and_frames():
    tracker = ByteTrackTracker()
    tracker.update(frame(box(100), box(300)))
    tracker.reset()
    assert tracker.num_tracks == 0 and tracker.frame_count == 0
    assert ids(tracker.update(frame(box(500)))) == [1]  # frame 1 again: activated at once


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"low_thresh": 0.7}, "low_thresh must be <= track_thresh"),
        ({"match_thresh": 1.5}, "match_thresh must be in"),
        ({"track_buffer": -1}, "track_buffer must be"),
        ({"track_buffer": 2.5}, "track_buffer must be"),
        ({"frame_rate": 0}, "frame_rate must be"),
        ({"track_thresh": float("nan")}, "track_thresh must be finite"),
        ({"min_box_area": -1}, "min_box_area"),
        ({"aspect_ratio_thresh": 0}, "aspect_ratio_thresh"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ByteTrackTracker(**kwargs)


# -- property tests ------------------------------------------------------------------------------
@st.composite
def streams(draw, dim: int = 6):
    """Frames ``(dets (N, 6), embeddings (N, dim), warp or None)`` around a few moving objects,
    with clutter, the full score range and invalid rows."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    objects = rng.uniform([0, 0, 10, 20], [600, 400, 80, 200], (draw(st.integers(0, 8)), 4))
    velocity = rng.normal(0, 5, (len(objects), 2))
    identity = rng.standard_normal((len(objects), dim))
    presence = draw(st.floats(0.0, 1.0))
    with_invalid = draw(st.booleans())
    stream = []
    for index in range(draw(st.integers(1, 16))):
        present = rng.random(len(objects)) < presence
        tlwh = objects[present].copy()
        tlwh[:, :2] += velocity[present] * index + rng.normal(0, 2, (int(present.sum()), 2))
        clutter = int(rng.integers(0, 4))
        tlwh = np.concatenate([tlwh, rng.uniform([0, 0, 1, 1], [600, 400, 100, 200], (clutter, 4))])
        embeddings = np.concatenate([identity[present], rng.standard_normal((clutter, dim))])
        embeddings += rng.normal(0, 0.3, embeddings.shape)
        dets = np.column_stack(
            [
                tlwh[:, :2],
                tlwh[:, :2] + tlwh[:, 2:],
                rng.uniform(0, 1, len(tlwh)),
                rng.integers(0, 2, len(tlwh)),
            ]
        )
        if with_invalid and len(dets):
            dets[rng.integers(len(dets)), rng.integers(0, 6)] = rng.choice(
                [np.nan, np.inf, -np.inf]
            )
            other = rng.integers(len(dets))
            dets[other, 2] = dets[other, 0] - rng.choice([0.0, 1.0, 50.0])
            embeddings[rng.integers(len(dets))] = rng.choice([0.0, np.nan])
        warp = None
        if rng.random() < 0.5:
            angle = rng.normal(0, 0.01)
            scale = 1 + rng.normal(0, 0.01)
            warp = np.array(
                [
                    [scale * np.cos(angle), -scale * np.sin(angle), rng.normal(0, 10)],
                    [scale * np.sin(angle), scale * np.cos(angle), rng.normal(0, 10)],
                ]
            )
        order = rng.permutation(len(dets))
        stream.append((dets[order], embeddings[order].astype(np.float32), warp))
    return stream


def check_stream(tracker, stream, with_embeddings: bool) -> None:
    """Run ``stream`` and assert the output contract on every frame."""
    gone: set[int] = set()
    for dets, embeddings, warp in stream:
        before = set(tracker.track_ids.tolist())
        out = tracker.update(dets, embeddings if with_embeddings else None, warp=warp)
        assert out.shape == (len(out), 8) and np.isfinite(out).all()
        track_ids = out[:, TRACK_ID].astype(int)
        assert len(set(track_ids.tolist())) == len(track_ids), "ids unique within a frame"
        assert (track_ids >= 1).all()
        rows = out[:, DET_INDEX].astype(int)
        assert len(set(rows.tolist())) == len(rows), "one track per detection"
        assert ((rows >= 0) & (rows < len(dets))).all()
        used = dets[rows]
        assert np.isfinite(used).all() and (used[:, 2:4] > used[:, 0:2]).all()
        np.testing.assert_array_equal(out[:, SCORE], used[:, 4])
        np.testing.assert_array_equal(out[:, CLASS_ID], used[:, 5].astype(int))
        assert (out[:, SCORE] > tracker.low_thresh).all()
        live = set(tracker.track_ids.tolist())
        assert len(live) == tracker.num_tracks
        assert set(track_ids.tolist()) <= live
        assert not (live & gone), "a removed id came back"
        gone |= before - live
        for snapshot in tracker.tracks:
            assert np.isfinite(snapshot.mean).all() and np.isfinite(snapshot.covariance).all()


configs = st.fixed_dictionaries(
    {
        "track_thresh": st.sampled_from([0.3, 0.6]),
        "low_thresh": st.sampled_from([0.0, 0.1]),
        "match_thresh": st.sampled_from([0.5, 0.8, 1.0]),
        "track_buffer": st.integers(0, 5),
        "frame_rate": st.sampled_from([10, 30]),
        "fuse_score": st.booleans(),
        "per_class": st.booleans(),
        "output_unconfirmed": st.booleans(),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), config=configs)
def test_random_streams_keep_the_output_contract(stream, config):
    check_stream(ByteTrackTracker(**config), stream, with_embeddings=False)


def test_empty_frames_and_hundreds_of_detections():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(20), np.arange(15)), -1).reshape(-1, 2) * 60.0
    tracker = ByteTrackTracker()
    for index in range(8):
        if index in (3, 4):
            out = tracker.update(np.zeros((0, 6)))
            assert len(out) == 0
            continue
        xy = grid + index * 2.0
        dets = np.column_stack(
            [xy, xy + [30.0, 50.0], rng.uniform(0.75, 1, len(grid)), np.zeros(len(grid))]
        )
        out = tracker.update(dets)
    # all 300 activated in frame 1, lost for two frames and re-activated with their ids
    assert len(out) == 300 and out[:, TRACK_ID].max() == 300


# -- real data -----------------------------------------------------------------------------------
def test_mot17_sequence_hota(shared_data):
    """One MOT17-trainhalf sequence with its public YOLOX-X detections (measured: HOTA 0.7742;
    the reference ByteTrack gives the same boxes and ids frame by frame)."""
    from reidsort.evaluation.mot import COMBINED, evaluate_mot
    from reidsort.tracking.mot_io import (
        read_mot_detections,
        read_seqinfo,
        tracker_output_to_mot_rows,
    )

    sequence = shared_data / "mot" / "MOT17-trainhalf" / "MOT17-09"
    info = read_seqinfo(sequence)
    detections = read_mot_detections(sequence / "det" / "det.txt")
    tracker = ByteTrackTracker(frame_rate=info.frame_rate)
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


HOTA_MOT17_09 = 0.7742
