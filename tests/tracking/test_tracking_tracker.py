"""DeepSortTracker behaviour: API, lifecycle, options, errors, configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reidsort.tracking import (
    DeepSortTracker,
    Detection,
    DetectionBatch,
    OutputColumn,
    TrackState,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "tracker" / "deepsort.yaml"


def _frame(centres, score=0.9, cls=0, size=(40.0, 100.0)):
    """Boxes around ``centres``; scores decrease slightly row by row, so NMS (which orders by
    descending score, as the reference) keeps the row order."""
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    half = np.array(size) / 2
    scores = score - 0.001 * np.arange(len(centres))
    return np.column_stack([centres - half, centres + half, scores, np.full(len(centres), cls)])


def _embeddings(ids, dim=8):
    """Unit vectors e_id: same id -> cosine distance 0, different -> 1."""
    out = np.zeros((len(ids), dim), np.float32)
    out[np.arange(len(ids)), ids] = 1
    return out


def test_lifecycle_ids_and_output_columns():
    tracker = DeepSortTracker(n_init=3, max_age=2)
    states = []
    for frame in range(3):
        out = tracker.update(_frame([[100 + 2 * frame, 100], [300, 100]]), _embeddings([0, 1]))
        states.append([s.state for s in tracker.tracks])
    assert states[0] == [TrackState.TENTATIVE] * 2 and states[2] == [TrackState.CONFIRMED] * 2
    assert out.shape == (2, 8) and out[:, OutputColumn.TRACK_ID].tolist() == [1, 2]
    assert out[:, OutputColumn.DETECTION_INDEX].tolist() == [0, 1]
    np.testing.assert_allclose(out[:, OutputColumn.SCORE], [0.9, 0.899])
    np.testing.assert_allclose(
        out[0, :4], _frame([[104, 100]])[0, :4], atol=2.0
    )  # Kalman box near the detection
    # object 2 disappears: missed 1, 2 frames -> kept (not reported), 3 -> deleted (max_age=2)
    for frame, expected_ids in [(3, [1]), (4, [1]), (5, [1])]:
        out = tracker.update(_frame([[100 + 2 * frame, 100]]), _embeddings([0]))
        assert out[:, OutputColumn.TRACK_ID].tolist() == expected_ids
    assert tracker.track_ids.tolist() == [1] and tracker.last_deleted_track_ids.tolist() == [2]
    # it comes back: a new tentative track with a new id, never the deleted one
    tracker.update(_frame([[112, 100], [300, 100]]), _embeddings([0, 1]))
    assert tracker.track_ids.tolist() == [1, 3]


def test_tentative_track_dies_on_first_miss():
    tracker = DeepSortTracker()
    tracker.update(_frame([[100, 100]]), _embeddings([0]))
    tracker.update(np.zeros((0, 6)), np.zeros((0, 8), np.float32))
    assert tracker.num_tracks == 0 and tracker.last_deleted_track_ids.tolist() == [1]


def test_appearance_reidentifies_after_occlusion():
    """A confirmed track missed for several frames is re-acquired by the cascade by appearance,
    even though a second track sits closer to the detection in IoU terms."""
    tracker = DeepSortTracker(max_age=30)
    for _ in range(5):
        tracker.update(_frame([[100, 100], [400, 100]]), _embeddings([0, 1]))
    for _ in range(5):  # person 0 occluded
        tracker.update(_frame([[400, 100]]), _embeddings([1]))
    out = tracker.update(_frame([[400, 100], [102, 101]]), _embeddings([1, 0]))
    by_detection = dict(
        zip(
            out[:, OutputColumn.DETECTION_INDEX].astype(int),
            out[:, OutputColumn.TRACK_ID].astype(int),
        )
    )
    assert by_detection == {0: 2, 1: 1}


def test_confidence_filter_nms_and_detection_index():
    tracker = DeepSortTracker(min_confidence=0.5, nms_max_overlap=0.5, n_init=1)
    dets = np.array(
        [
            [0, 0, 10, 10, 0.4, 0],  # below min_confidence
            [100, 100, 150, 200, 0.7, 0],
            [101, 101, 151, 201, 0.95, 0],  # suppresses row 1
            [300, 100, 350, 200, 0.8, 0],
        ]
    )
    tracker.update(dets, _embeddings([0, 1, 2, 3]))
    snapshots = tracker.tracks
    # survivors in descending score order -> ids 1, 2 go to rows 2, 3
    assert [(s.track_id, s.detection_index) for s in snapshots] == [(1, 2), (2, 3)]
    out = tracker.update(dets, _embeddings([0, 1, 2, 3]))
    assert sorted(out[:, OutputColumn.DETECTION_INDEX].astype(int).tolist()) == [2, 3]


def test_two_phase_and_object_inputs_equal_one_call():
    rng = np.random.default_rng(0)
    frames = [
        (_frame(rng.uniform(50, 500, (4, 2))), rng.standard_normal((4, 8)).astype(np.float32))
        for _ in range(3)
    ]
    frames = [
        (_frame([[100 + 3 * f, 100], [300, 100 + f]]), _embeddings([0, 1])) for f in range(6)
    ] + frames
    one_call, two_phase, objects = DeepSortTracker(), DeepSortTracker(), DeepSortTracker()
    for dets, embeddings in frames:
        expected = one_call.update(dets, embeddings)
        two_phase.predict()
        np.testing.assert_array_equal(two_phase.update(dets, embeddings), expected)
        batch = DetectionBatch.from_xyxy_array(dets, embeddings)
        np.testing.assert_array_equal(objects.update(batch.to_list()), expected)
    with pytest.raises(ValueError, match="inside the Detection"):
        objects.update([Detection([0, 0, 5, 5], 0.9)], np.ones((1, 8)))


def test_per_class_tracking_never_mixes_classes():
    mixed, separate = DeepSortTracker(n_init=1), DeepSortTracker(n_init=1, per_class=True)
    for tracker in (mixed, separate):
        for _ in range(3):
            tracker.update(_frame([[100, 100]], cls=0), _embeddings([0]))
        # same place, same appearance, other class
        out = tracker.update(_frame([[100, 100]], cls=1), _embeddings([0]))
    assert mixed.track_ids.tolist() == [1]
    assert separate.num_tracks == 2 and sorted(s.class_id for s in separate.tracks) == [0, 1]
    assert out[:, OutputColumn.CLASS_ID].tolist() in ([], [0.0])  # the class-0 track is not updated


def test_motion_only_without_embeddings():
    tracker = DeepSortTracker()
    for frame in range(8):
        out = tracker.update(_frame([[100 + 5 * frame, 100], [400, 100 - 3 * frame]]))
    assert out[:, OutputColumn.TRACK_ID].tolist() == [1, 2] and tracker.embedding_dim is None
    for _ in range(3):  # both missed: only the cascade (Mahalanobis) can re-acquire them
        tracker.update(np.zeros((0, 6)))
    out = tracker.update(_frame([[155, 100], [400, 68]]))
    assert out[:, OutputColumn.TRACK_ID].tolist() == [1, 2]


@pytest.mark.parametrize(
    "row",
    [
        [10, 10, 10, 50, 0.9, 0],
        [10, 10, 5, 50, 0.9, 0],
        [10, 10, 20, 10, 0.9, 0],
        [np.nan, 10, 20, 50, 0.9, 0],
        [10, 10, 20, 50, np.inf, 0],
        [10, 10, 20, 50, 0.9, np.nan],
    ],
)
def test_invalid_boxes_raise_or_are_dropped(row):
    dets = np.array([[100, 100, 140, 200, 0.9, 0], row], dtype=float)
    with pytest.raises(ValueError, match="detection row 1 is invalid"):
        DeepSortTracker().update(dets, _embeddings([0, 1]))
    tracker = DeepSortTracker(drop_invalid_boxes=True, n_init=1)
    tracker.update(dets, _embeddings([0, 1]))
    out = tracker.update(dets, _embeddings([0, 1]))
    assert out[:, OutputColumn.DETECTION_INDEX].tolist() == [0]


def test_embedding_errors():
    tracker = DeepSortTracker()
    tracker.update(_frame([[100, 100]]), _embeddings([0], dim=8))
    with pytest.raises(ValueError, match="dimension 4 but this tracker uses 8"):
        tracker.update(_frame([[100, 100]]), np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"shape \(1, D\)"):
        tracker.update(_frame([[100, 100]]), np.ones((2, 8)))
    with pytest.raises(ValueError, match="embedding of detection row 0"):
        tracker.update(_frame([[100, 100]]), np.zeros((1, 8)))
    with pytest.raises(ValueError, match="embedding of detection row 1"):
        tracker.update(_frame([[100, 100], [300, 100]]), np.array([[1.0] * 8, [np.nan] * 8]))
    with pytest.raises(ValueError, match="dimension 4 but this tracker uses 6"):
        DeepSortTracker(embedding_dim=6, metric="euclidean").update(
            _frame([[1, 1]]), np.ones((1, 4))
        )
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        tracker.update(np.zeros((3, 4)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_dist": -1}, "max_dist"),
        ({"max_iou_distance": 1.5}, "max_iou_distance"),
        ({"max_age": -1}, "max_age"),
        ({"n_init": 0}, "n_init"),
        ({"nn_budget": 0}, "nn_budget"),
        ({"metric": "manhattan"}, "metric"),
        ({"nms_max_overlap": np.nan}, "nms_max_overlap"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeepSortTracker(**kwargs)


def test_reset_restarts_ids():
    tracker = DeepSortTracker(n_init=1)
    tracker.update(_frame([[100, 100]]), _embeddings([0]))
    tracker.reset()
    assert tracker.num_tracks == 0 and tracker.embedding_dim is None
    tracker.update(_frame([[100, 100]]), _embeddings([0], dim=4))
    assert tracker.track_ids.tolist() == [1] and tracker.embedding_dim == 4


def test_repeat_last_embedding_duplicates_gallery_samples():
    plain, compatible = (
        DeepSortTracker(n_init=1),
        DeepSortTracker(n_init=1, repeat_last_embedding=True),
    )
    for tracker in (plain, compatible):
        for _ in range(4):
            tracker.update(_frame([[100, 100]]), _embeddings([0]))
    slot = int(plain._tracks.ints[0, -1])
    assert plain.gallery.sample_count([slot]).tolist() == [4]
    # confirmed from its 2nd update (n_init=1 confirms on the first hit after creation):
    # frames 3 and 4 each store the previous newest again before the new one
    assert compatible.gallery.sample_count([slot]).tolist() == [6]


def test_hydra_config_instantiates_reference_defaults():
    omegaconf = pytest.importorskip("omegaconf")
    hydra_utils = pytest.importorskip("hydra.utils")
    cfg = omegaconf.OmegaConf.load(CONF)
    tracker = hydra_utils.instantiate(cfg)
    assert isinstance(tracker, DeepSortTracker)
    assert (
        tracker.max_dist,
        tracker.max_iou_distance,
        tracker.max_age,
        tracker.n_init,
        tracker.nn_budget,
    ) == (0.2, 0.7, 30, 3, 100)
    assert (tracker.min_confidence, tracker.nms_max_overlap, tracker.metric.value) == (
        0.3,
        1.0,
        "cosine",
    )
    assert not (tracker.per_class or tracker.drop_invalid_boxes or tracker.repeat_last_embedding)
    defaults = DeepSortTracker()
    for key in cfg:
        if key != "_target_":
            assert getattr(tracker, key if key != "embedding_dim" else "embedding_dim") == getattr(
                defaults, key
            ), key
