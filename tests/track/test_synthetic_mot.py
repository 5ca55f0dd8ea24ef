"""The synthetic MOT sequence: MOTChallenge layout, consistent gt and detections, caching."""

from __future__ import annotations

import numpy as np
import pytest
from track_samples import TINY_SYNTHETIC, tiny_sequence

from reidsort.data.synthetic.mot import (
    MIN_CONSIDERED_VISIBILITY,
    SyntheticMotParams,
    _visibility,
    ensure_synthetic_mot,
    person_height,
)
from reidsort.tracking.mot_io import read_mot_detections, read_mot_ground_truth, read_seqinfo


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    return tiny_sequence(tmp_path_factory.mktemp("synth"))


def test_layout_and_seqinfo(sequence):
    info = read_seqinfo(sequence)
    assert (info.name, info.length, info.width, info.height) == ("TINY", 24, 320, 240)
    assert len(list((sequence / "img1").glob("*.jpg"))) == 24
    assert (sequence / "synthetic_meta.json").is_file()


def test_ground_truth_and_detections_are_consistent(sequence):
    gt = read_mot_ground_truth(sequence / "gt" / "gt.txt")
    dets = read_mot_detections(sequence / "det" / "det.txt")
    assert len(np.unique(gt.track_ids)) >= 3 and (gt.class_ids == 1).all()
    assert ((gt.visibility >= 0) & (gt.visibility <= 1)).all()
    np.testing.assert_array_equal(gt.consider, gt.visibility >= MIN_CONSIDERED_VISIBILITY)
    for boxes in (gt.tlwh, dets.tlwh):  # clipped to the 320x240 frame
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] > 0).all()
        assert (boxes[:, 0] + boxes[:, 2] <= 320 + 0.01).all()
        assert (boxes[:, 1] + boxes[:, 3] <= 240 + 0.01).all()
    # a noisy detector: fewer detections of people than visible people, scores in (0, 1)
    assert 0.5 * gt.consider.sum() < len(dets) < 1.5 * gt.consider.sum()
    assert ((dets.scores > 0) & (dets.scores < 1)).all()


def test_rendering_is_cached_and_keyed_by_parameters(sequence, tmp_path):
    first = sequence / "img1" / "000001.jpg"
    stamp = first.stat().st_mtime_ns
    assert tiny_sequence(sequence.parent.parent) == sequence
    assert first.stat().st_mtime_ns == stamp  # reused, not rendered again
    assert SyntheticMotParams(frame_rate=20).key() == SyntheticMotParams(frame_rate=20.0).key()
    assert SyntheticMotParams(seed=1).key() != SyntheticMotParams(seed=2).key()
    with pytest.raises(ValueError, match="unknown synthetic MOT parameters"):
        ensure_synthetic_mot(tmp_path, colour="red")
    with pytest.raises(ValueError, match="num_frames"):
        ensure_synthetic_mot(tmp_path, num_frames=0)
    assert not list(tmp_path.rglob("*"))


def test_an_interrupted_render_leaves_nothing(tmp_path, monkeypatch):
    from reidsort.data.synthetic import mot

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mot, "_detections", explode)  # dies after the first frame's image
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_mot(tmp_path, **TINY_SYNTHETIC)
    assert list((tmp_path / "synthetic_mot").iterdir()) == []


def test_perspective_and_visibility():
    assert person_height(480, 480) > person_height(300, 480) > 0
    boxes = np.array([[0, 0, 40, 40], [20, 0, 60, 40], [100, 0, 140, 40]], float)
    pillars = np.array([[120, 140]], float)
    far_half_covered, near_full, behind_pillar = _visibility(boxes, pillars, 200, 100)
    assert far_half_covered == pytest.approx(0.5) and near_full == 1.0
    assert behind_pillar == pytest.approx(0.5)


def test_same_parameters_same_sequence(sequence, tmp_path):
    again = ensure_synthetic_mot(tmp_path, **TINY_SYNTHETIC)
    assert (again / "gt" / "gt.txt").read_text() == (sequence / "gt" / "gt.txt").read_text()
    assert (again / "det" / "det.txt").read_text() == (sequence / "det" / "det.txt").read_text()
