"""Deep OC-SORT: each added mechanism on a small hand-made case, property tests, one real sequence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reidsort.tracking.deepocsort import DeepOcSortTracker, adaptive_weights
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
E_A, E_B, E_C = np.eye(4)[:3]


def det(x1: float, y1: float, w: float = 40.0, h: float = 100.0, score=0.9, cls=0) -> list:
    return [x1, y1, x1 + w, y1 + h, score, cls]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def random_stream(seed: int, frames: int = 120, objects: int = 12, invalid: bool = False):
    """Moving boxes, some missed, random scores and classes (optionally invalid rows)."""
    rng = np.random.default_rng(seed)
    boxes = rng.uniform([0, 0, 20, 50], [800, 500, 80, 200], (objects, 4))
    velocity = rng.normal(0, 2, (objects, 2))
    stream = []
    for frame in range(frames):
        present = rng.random(objects) < 0.8
        tlwh = boxes[present].copy()
        tlwh[:, :2] += velocity[present] * frame + rng.normal(0, 2, (int(present.sum()), 2))
        dets = np.column_stack(
            [
                tlwh[:, :2],
                tlwh[:, :2] + tlwh[:, 2:],
                rng.uniform(0.3, 1, len(tlwh)),
                rng.integers(0, 2, len(tlwh)),
            ]
        )
        if invalid and len(dets):
            dets[rng.integers(len(dets)), rng.integers(0, 6)] = np.nan
        stream.append(dets[rng.permutation(len(dets))])
    return stream


# -- dynamic appearance (EMA factor from the confidence) -----------------------------------------
def test_dynamic_alpha_is_one_at_det_thresh_and_alpha_fixed_at_score_one():
    tracker = DeepOcSortTracker(det_thresh=0.6, alpha_fixed_emb=0.95)
    np.testing.assert_allclose(tracker.dynamic_alpha([0.6, 1.0, 0.8]), [1.0, 0.95, 0.975])
    tracker = DeepOcSortTracker(det_thresh=0.2, alpha_fixed_emb=0.8)
    np.testing.assert_allclose(tracker.dynamic_alpha([0.2, 1.0, 0.6]), [1.0, 0.8, 0.9])


@pytest.mark.parametrize("score", [1.0, 0.8, 0.6 + 1e-9])
def test_track_embedding_is_the_confidence_weighted_ema(score):
    tracker = DeepOcSortTracker(det_thresh=0.6, alpha_fixed_emb=0.95)
    first, second = np.array([3.0, 0, 0, 4.0]), np.array([0, 2.0, 0, 0])
    tracker.update(np.array([det(100, 100)]), first[None])
    np.testing.assert_allclose(tracker.embeddings, [unit(first)], err_msg="birth: as it is")
    tracker.update(np.array([det(101, 100, score=score)]), second[None])
    alpha = 0.95 + 0.05 * (1 - (score - 0.6) / 0.4)
    expected = unit(alpha * unit(first) + (1 - alpha) * unit(second))
    np.testing.assert_allclose(tracker.embeddings[0], expected, atol=1e-12)
    if score < 0.7:  # a detection at the threshold leaves the appearance as it was
        np.testing.assert_allclose(tracker.embeddings[0], unit(first), atol=1e-8)


def test_unmatched_tracks_and_embedding_free_frames_keep_their_embedding():
    tracker = DeepOcSortTracker()
    tracker.update(np.array([det(100, 100), det(400, 100)]), np.stack([E_A, E_B]))
    tracker.update(np.array([det(101, 100, score=1.0)]), E_C[None])  # only the first is matched
    tracker.update(np.array([det(102, 100), det(400, 100)]))  # no embeddings this frame
    tracker.update(np.array([det(103, 100)]), np.full((1, 4), np.nan))  # an unusable row
    np.testing.assert_allclose(tracker.embeddings[1], E_B)
    np.testing.assert_allclose(tracker.embeddings[0], unit(0.95 * E_A + 0.05 * E_C))
    assert tracker.has_embedding.tolist() == [True, True]


# -- adaptive weighting -------------------------------------------------------------------------
def test_adaptive_weights_on_a_crafted_matrix():
    similarity = np.array([[0.9, 0.2], [0.5, 0.6], [0.1, 0.8]])  # 3 tracks x 2 detections
    # Per track (over detections): gaps 0.7 -> capped 0.5, 0.1, 0.7 -> 0.5.
    # Per detection (over tracks): 0.9 - 0.5 = 0.4, 0.8 - 0.6 = 0.2.
    expected = 0.75 + np.array([[0.25 + 0.2, 0.25 + 0.1], [0.05 + 0.2, 0.05 + 0.1], [0.45, 0.35]])
    np.testing.assert_allclose(adaptive_weights(similarity, 0.75, 0.5), expected)


def reference_weights(similarity_tn: np.ndarray, w: float, max_diff: float) -> np.ndarray:
    """The rule as the paper's association code states it, on detections x tracks, with loops."""
    cost = similarity_tn.T
    bonus = np.zeros_like(cost)
    if cost.shape[1] >= 2:
        for i in range(cost.shape[0]):
            top = np.sort(cost[i])[::-1]
            bonus[i] += min(top[0] - top[1], max_diff) / 2
    if cost.shape[0] >= 2:
        for j in range(cost.shape[1]):
            top = np.sort(cost[:, j])[::-1]
            bonus[:, j] += min(top[0] - top[1], max_diff) / 2
    return (w + bonus).T


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 5), (6, 2)])
def test_adaptive_weights_match_the_loop_rule(shape):
    rng = np.random.default_rng(sum(shape))
    similarity = rng.uniform(-1, 1, shape)
    np.testing.assert_allclose(
        adaptive_weights(similarity, 0.75, 0.3), reference_weights(similarity, 0.75, 0.3)
    )


def test_adaptive_weight_gaps_ignore_masked_candidates():
    similarity = np.array([[0.9, 0.8], [0.1, 0.5]])
    usable = np.array([[True, False], [True, True]])
    # Track 0 has one candidate (no gap); track 1: 0.4. Det 0: 0.9 - 0.1 = 0.8 -> 0.5; det 1: one.
    expected = 1.0 + np.array([[0.25, 0.0], [0.2 + 0.25, 0.2]])
    np.testing.assert_allclose(adaptive_weights(similarity, 1.0, 0.5, usable), expected)


# -- appearance in the first association ---------------------------------------------------------
def two_crossing_tracks(tracker: DeepOcSortTracker, with_embeddings: bool) -> np.ndarray:
    """Tracks A (x=100) and B (x=130) side by side; then two boxes at x=112 and x=118 whose IoU
    says (112 -> A, 118 -> B) while their appearance says the opposite."""
    embeddings = np.stack([E_A, E_B]) if with_embeddings else None
    for _ in range(5):
        tracker.update(np.array([det(100, 100), det(130, 100)]), embeddings)
    swapped = np.stack([E_B, E_A]) if with_embeddings else None
    return tracker.update(np.array([det(112, 100), det(118, 100)]), swapped)


@pytest.mark.parametrize("with_embeddings", [False, True])
def test_appearance_flips_an_assignment_that_iou_alone_gets_wrong(with_embeddings):
    out = two_crossing_tracks(DeepOcSortTracker(), with_embeddings)
    pairs = dict(zip(out[:, DET_INDEX].astype(int).tolist(), out[:, TRACK_ID].astype(int).tolist()))
    if with_embeddings:
        assert pairs == {0: 2, 1: 1}, "appearance: the box at 112 is B"
    else:
        assert pairs == {0: 1, 1: 2}, "IoU: the box at 112 is A"


def test_embedding_off_and_a_zero_weight_remove_the_appearance():
    for kwargs in ({"embedding_off": True}, {"w_association_emb": 0.0, "aw_off": True}):
        out = two_crossing_tracks(DeepOcSortTracker(**kwargs), with_embeddings=True)
        assert out[out[:, DET_INDEX] == 0, TRACK_ID].tolist() == [1], kwargs


def test_recovery_stage_is_iou_only():
    """A lost track found again by its last observation (OCR) takes the box of best IoU, not the
    one that looks like it: the appearance term enters the first association only."""
    tracker = DeepOcSortTracker(min_hits=1)
    for frame in range(8):
        tracker.update(np.array([det(100 + 10.0 * frame, 100)]), E_A[None])
    for _ in range(4):  # it stops behind an occluder; the prediction drifts on to the right
        tracker.update(EMPTY)
    # At its last position (IoU 1) with another appearance, and 8 px off (IoU 0.67) with its own.
    out = tracker.update(np.array([det(170, 100), det(178, 100)]), np.stack([E_B, E_A]))
    assert out[out[:, TRACK_ID] == 1, DET_INDEX].tolist() == [0]
    assert tracker.track_ids.tolist() == [1, 2]


# -- without embeddings: OC-SORT ----------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("per_class", [False, True])
def test_without_embeddings_and_camera_motion_it_is_ocsort(seed, per_class):
    reference, tracker = OcSortTracker(per_class=per_class), DeepOcSortTracker(per_class=per_class)
    switched_off = DeepOcSortTracker(per_class=per_class, embedding_off=True)
    rng = np.random.default_rng(seed)
    for dets in random_stream(seed, invalid=True):
        expected = reference.update(dets)
        np.testing.assert_array_equal(tracker.update(dets), expected)
        embeddings = rng.standard_normal((len(dets), 8))
        np.testing.assert_array_equal(switched_off.update(dets, embeddings), expected)
    assert reference.track_ids.tolist() == tracker.track_ids.tolist()
    assert len(reference.track_ids) > 5


def test_embeddings_change_the_outcome_on_the_same_stream():
    """The counterpart: with (random) embeddings the same stream is tracked differently."""
    reference, tracker = OcSortTracker(), DeepOcSortTracker(w_association_emb=2.0)
    rng = np.random.default_rng(3)
    differs = False
    for dets in random_stream(3, objects=20):
        expected = reference.update(dets)
        out = tracker.update(dets, rng.standard_normal((len(dets), 8)))
        differs |= out.shape != expected.shape or not np.array_equal(out, expected)
    assert differs


# -- camera motion -------------------------------------------------------------------------------
@pytest.mark.parametrize("use_warp", [False, True])
def test_camera_motion_warp_moves_the_tracks(use_warp):
    tracker = DeepOcSortTracker(min_hits=1)
    for _ in range(4):
        tracker.update(np.array([det(100, 100)]))
    pan = np.array([[1.0, 0.0, 200.0], [0.0, 1.0, 0.0]])  # the content moved 200 px right
    tracker.update(np.array([det(300, 100)]), warp=pan if use_warp else None)
    assert tracker.track_ids.tolist() == ([1] if use_warp else [1, 2])


def test_warp_transforms_what_the_reference_transforms():
    """Before predicting: centre M c + t, centre velocity M v, their covariance blocks M P M^T;
    area, aspect and the other covariance entries are left alone; stored boxes by corners."""
    tracker = DeepOcSortTracker()
    for frame in range(5):
        tracker.update(np.array([det(100 + 3.0 * frame, 100 + frame, 40 + frame, 100)]))
    means, covariances = tracker.means_xysr[0], tracker.covariances[0]
    last = np.array(det(112, 104, 44, 100)[:4])
    angle, scale = 0.05, 1.1
    m = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    t = np.array([7.0, -4.0])
    affine = np.column_stack([m, t])

    warped_mean, warped_cov = means.copy(), covariances.copy()
    warped_mean[0:2] = m @ means[0:2] + t
    warped_mean[4:6] = m @ means[4:6]
    warped_cov[0:2, 0:2] = m @ covariances[0:2, 0:2] @ m.T
    warped_cov[4:6, 4:6] = m @ covariances[4:6, 4:6] @ m.T
    expected = tracker.kf.predict(warped_mean[None], warped_cov[None])

    tracker.update(EMPTY, warp=affine)  # predict only: the track is missed
    np.testing.assert_allclose(tracker.means_xysr[0], expected[0][0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(tracker.covariances[0], expected[1][0], rtol=1e-12, atol=1e-9)
    assert tracker.means_xysr[0, 2] == pytest.approx(means[2] + means[6]), "area not scaled"
    corners = np.concatenate([m @ last[:2] + t, m @ last[2:] + t])
    np.testing.assert_allclose(tracker._tracks.last_xyxy[0], corners, atol=1e-9)


def test_warp_of_a_lost_track_moves_its_frozen_state_and_last_measurement():
    """While lost, the state frozen for the re-update is warped like the live one, and so is the
    centre (not the area) of the last measurement where the re-update starts - from the frame
    after the freeze on, as in the reference (its ``last_measurement`` is taken unwarped from
    the filter's history when the track is frozen)."""
    tracker = DeepOcSortTracker(min_hits=1)
    for _ in range(5):
        tracker.update(np.array([det(100, 100)]))
    pan = np.array([[1.0, 0.0, 60.0], [0.0, 1.0, 0.0]])
    tracker.update(EMPTY, warp=pan)  # frame 6: missed, frozen (after this frame's warp)
    frozen = tracker._tracks.saved_means[0].copy()
    np.testing.assert_allclose(frozen, tracker.means_xysr[0])
    tracker.update(EMPTY, warp=pan)
    tracker.update(EMPTY, warp=pan)
    expected = frozen.copy()
    expected[0] += 120.0
    np.testing.assert_allclose(tracker._tracks.saved_means[0], expected)
    measurement = tracker._tracks.last_measurement_xysr[0]
    np.testing.assert_allclose(measurement, [120.0 + 120.0, 150.0, 4000.0, 0.4], rtol=1e-6)
    out = tracker.update(np.array([det(280, 100)]))  # where the static object now appears
    assert out[:, TRACK_ID].tolist() == [1] and tracker.num_tracks == 1


# -- contract: classes, inputs, ids ---------------------------------------------------------------
@pytest.mark.parametrize("per_class", [False, True])
def test_per_class_keeps_tracks_to_their_class(per_class):
    tracker = DeepOcSortTracker(per_class=per_class, min_hits=1)
    for _ in range(3):
        tracker.update(np.array([det(100, 100, cls=0)]), E_A[None])
    out = tracker.update(np.array([det(100, 100, cls=1)]), E_A[None])
    if per_class:
        assert tracker.track_ids.tolist() == [1, 2]
        assert tracker.time_since_update.tolist() == [1, 0]
    else:
        assert out[:, [TRACK_ID, CLASS_ID]].tolist() == [[1, 1]]


def test_invalid_rows_are_dropped_and_indices_refer_to_the_input():
    tracker = DeepOcSortTracker()
    dets = np.array(
        [
            [np.nan, 0, 10, 10, 0.9, 0],
            [50, 50, 50, 90, 0.9, 0],  # zero width
            [60, 60, 100, 160, np.nan, 0],
            [70, 70, 110, 170, 0.9, np.inf],
            det(200, 100),
        ]
    )
    embeddings = np.stack([E_A, E_B, E_C, E_A, E_B])
    out = tracker.update(dets, embeddings)
    assert out[:, DET_INDEX].tolist() == [4] and tracker.num_tracks == 1
    np.testing.assert_allclose(tracker.embeddings, [E_B])
    out = tracker.update(np.array([det(201, 100)])[:, :5])  # (N, 5): class 0
    assert out[:, [TRACK_ID, CLASS_ID]].tolist() == [[1, 0]]
    for empty in (EMPTY, np.zeros((0, 5)), [], np.zeros(0)):
        assert tracker.update(empty).shape == (0, 8)
        assert tracker.update(empty, np.zeros((0, 4))).shape == (0, 8)
    with pytest.raises(ValueError, match="embeddings"):
        tracker.update(np.array([det(1, 1)]), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="embeddings"):
        tracker.update(np.array([det(1, 1)]), np.zeros(1))
    with pytest.raises(ValueError, match="dimension"):
        tracker.update(np.array([det(1, 1)]), np.ones((1, 7)))
    with pytest.raises(ValueError, match="warp"):
        tracker.update(EMPTY, warp=np.eye(3))


def test_ids_start_at_one_and_reset_restarts_them_and_forgets_embeddings():
    tracker = DeepOcSortTracker()
    out = tracker.update(np.array([det(0, 0), det(300, 0)]), np.stack([E_A, E_B]))
    assert sorted(out[:, TRACK_ID].tolist()) == [1, 2]
    tracker.reset()
    assert tracker.num_tracks == 0 and tracker.frame_count == 0
    out = tracker.update(np.array([det(500, 0)]), np.ones((1, 16)))  # another embedder: fine
    assert out[:, TRACK_ID].tolist() == [1] and tracker.embeddings.shape == (1, 16)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"det_thresh": 1.0},
        {"det_thresh": np.nan},
        {"w_association_emb": -0.1},
        {"alpha_fixed_emb": 1.5},
        {"aw_param": np.inf},
        {"max_age": -1},
        {"delta_t": 0},
        {"output": "both"},
    ],
)
def test_bad_constructor_arguments_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DeepOcSortTracker(**kwargs)


# -- properties ----------------------------------------------------------------------------------
DIM = 6


@st.composite
def streams(draw):
    """Frames of (dets, embeddings or None, warp or None) around a few moving objects: clutter,
    missed objects, invalid rows and empty frames, each object with its own appearance."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    objects = rng.uniform([0, 0, 10, 20], [600, 400, 80, 200], (draw(st.integers(0, 8)), 4))
    velocity = rng.normal(0, 6, (len(objects), 2))
    identity = rng.standard_normal((len(objects), DIM))
    presence = draw(st.floats(0.0, 1.0))
    with_invalid, with_warp = draw(st.booleans()), draw(st.booleans())
    embedding_mode = draw(st.sampled_from(["none", "all", "mixed"]))
    stream = []
    for frame in range(draw(st.integers(1, 16))):
        present = rng.random(len(objects)) < presence
        tlwh = objects[present].copy()
        tlwh[:, :2] += velocity[present] * frame + rng.normal(0, 2, (int(present.sum()), 2))
        clutter = rng.uniform([0, 0, 1, 1], [600, 400, 100, 200], (rng.integers(0, 3), 4))
        tlwh = np.concatenate([tlwh, clutter])
        embeddings = np.concatenate([identity[present], rng.standard_normal((len(clutter), DIM))])
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
            dets[rng.integers(len(dets)), rng.integers(0, 6)] = np.nan
            row = rng.integers(len(dets))
            dets[row, 2] = dets[row, 0] - rng.choice([0.0, 5.0])
            embeddings[rng.integers(len(dets))] = rng.choice([np.nan, 0.0])
        warp = None
        if with_warp:
            angle, scale = rng.normal(0, 0.02), rng.uniform(0.95, 1.05)
            warp = np.array(
                [
                    [scale * np.cos(angle), -scale * np.sin(angle), rng.normal(0, 10)],
                    [scale * np.sin(angle), scale * np.cos(angle), rng.normal(0, 10)],
                ]
            )
        if embedding_mode == "none" or (embedding_mode == "mixed" and rng.random() < 0.5):
            embeddings = None
        order = rng.permutation(len(dets))
        stream.append((dets[order], None if embeddings is None else embeddings[order], warp))
    return stream


configs = st.fixed_dictionaries(
    {
        "det_thresh": st.sampled_from([0.0, 0.3, 0.6]),
        "max_age": st.integers(0, 6),
        "min_hits": st.integers(0, 4),
        "iou_threshold": st.sampled_from([0.05, 0.3, 0.7]),
        "delta_t": st.integers(1, 4),
        "w_association_emb": st.sampled_from([0.0, 0.75, 3.0]),
        "alpha_fixed_emb": st.sampled_from([0.0, 0.5, 0.95, 1.0]),
        "aw_param": st.sampled_from([0.0, 0.5, 2.0]),
        "aw_off": st.booleans(),
        "per_class": st.booleans(),
    }
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), config=configs)
def test_random_streams_keep_invariants(stream, config):
    tracker = DeepOcSortTracker(**config)
    ever_seen: set[int] = set()
    for dets, embeddings, warp in stream:
        live_before = set(tracker.track_ids.tolist())
        out = tracker.update(dets, embeddings, warp=warp)
        assert out.shape[1] == 8 and np.isfinite(out).all()
        ids = out[:, TRACK_ID].astype(int)
        assert len(set(ids.tolist())) == len(ids) and (ids >= 1).all()
        rows = out[:, DET_INDEX].astype(int)
        assert len(set(rows.tolist())) == len(rows), "one detection per track"
        assert ((rows >= 0) & (rows < len(dets))).all()
        used = dets[rows]
        assert np.isfinite(used).all(), "invalid rows never reach a track"
        np.testing.assert_array_equal(out[:, SCORE], used[:, 4])
        assert (used[:, 4] > tracker.det_thresh).all()
        if tracker.per_class:
            np.testing.assert_array_equal(out[:, CLASS_ID], used[:, 5])
        live = tracker.track_ids
        assert len(set(live.tolist())) == len(live) and (np.diff(live) > 0).all()
        assert set(ids.tolist()) <= set(live.tolist())
        assert not (set(live.tolist()) - live_before) & ever_seen, "a deleted id came back"
        ever_seen |= set(live.tolist())
        assert np.isfinite(tracker.means_xysr).all() and np.isfinite(tracker.covariances).all()
        features = tracker.embeddings
        assert np.isfinite(features).all()
        norms = np.linalg.norm(features[tracker.has_embedding], axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-9)
        assert (tracker.time_since_update <= tracker.max_age).all()


# -- real data -----------------------------------------------------------------------------------
@pytest.mark.parametrize("with_motion", [True, False])
def test_mot17_moving_camera_sequence_with_camera_motion_from_file(shared_data, with_motion):
    """MOT17-10 (moving camera; public YOLOX-X detections, no images: motion only) with and
    without the sequence's GMC file. Measured HOTA 0.5927 with it, 0.4840 without (OC-SORT:
    0.6005 / 0.4840). On all 7 MOT17-trainhalf sequences, with the same warps and with random
    embeddings, GerardMaggiolino/Deep-OC-SORT's ``OCSort`` (``--grid_off --new_kf_off``) gives
    the same ids and boxes in every frame, once its double warp of the newest observation (see
    the module docstring) is removed (checked while developing; not part of the suite)."""
    from reidsort.evaluation.mot import COMBINED, evaluate_mot
    from reidsort.tracking.cmc import FileCameraMotion
    from reidsort.tracking.mot_io import (
        read_mot_detections,
        read_seqinfo,
        tracker_output_to_mot_rows,
    )

    name = "MOT17-10"
    sequence = shared_data / "mot" / "MOT17-trainhalf" / name
    info = read_seqinfo(sequence)
    detections = read_mot_detections(sequence / "det" / "det.txt")
    motion = FileCameraMotion(path=str(sequence / "gmc.txt"))
    tracker = DeepOcSortTracker()
    rows = []
    for index, dets, _ in detections.iter_frames(1, info.length):
        warp = motion.estimate(None, index) if with_motion else None
        rows.append(tracker_output_to_mot_rows(index, tracker.update(dets, warp=warp)))
    evaluation = evaluate_mot(
        {name: np.concatenate(rows)}, {name: sequence / "gt" / "gt.txt"}, {name: info.length}
    )
    expected = HOTA_MOT17_10_CMC if with_motion else HOTA_MOT17_10_NO_CMC
    assert evaluation.row(COMBINED)["HOTA"] == pytest.approx(expected, abs=0.002)


HOTA_MOT17_10_CMC = 0.5927
HOTA_MOT17_10_NO_CMC = 0.4840
