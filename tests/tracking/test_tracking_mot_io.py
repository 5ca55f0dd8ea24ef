"""MOTChallenge readers and the atomic, 1-based result writer."""

from __future__ import annotations

import numpy as np
import pytest

from reidsort.tracking import (
    MotResultsBuffer,
    read_mot_detections,
    read_mot_ground_truth,
    read_mot_results,
    read_seqinfo,
    tracker_output_to_mot_rows,
    write_mot_results,
)


def test_real_sequence_files(shared_data):
    sequence = shared_data / "mot" / "TUD-Campus"
    info = read_seqinfo(sequence)
    assert (info.name, info.length, info.width, info.height, info.frame_rate) == (
        "TUD-Campus",
        71,
        640,
        480,
        25,
    )
    assert read_seqinfo(sequence / "seqinfo.ini") == info
    detections = read_mot_detections(sequence / "det" / "det.txt")
    assert len(detections) == 321 and detections.last_frame == 71
    np.testing.assert_allclose(detections.tlwh[0], [281.931, 187.466, 79.93, 209.537])
    frames = list(detections.iter_frames(last_frame=info.length))
    assert [f for f, _, _ in frames] == list(range(1, 72))
    assert sum(len(rows) for _, _, rows in frames) == len(detections)
    frame, dets, rows = frames[0]
    np.testing.assert_allclose(
        dets[0], [281.931, 187.466, 281.931 + 79.93, 187.466 + 209.537, 0.997784, 0]
    )
    truth = read_mot_ground_truth(sequence / "gt" / "gt.txt")  # MOT15: 10 columns
    assert truth.track_ids.min() >= 1 and (truth.class_ids == -1).all() and truth.consider.all()


def test_seven_column_detections_and_empty_file(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("3,-1,1,2,3,4,0.5\n1,-1,5,6,7,8,0.9\n")
    detections = read_mot_detections(path)
    assert detections.frame_ids.tolist() == [3, 1]
    frames = {f: rows.tolist() for f, _, rows in detections.iter_frames()}
    assert frames == {1: [1], 2: [], 3: [0]}
    (tmp_path / "empty.txt").write_text("")
    assert len(read_mot_detections(tmp_path / "empty.txt")) == 0


def test_mot16_ground_truth_columns(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,4,10,20,30,40,0,7,0.25\n2,4,11,20,30,40,1,1,1.0\n")
    truth = read_mot_ground_truth(path)
    assert truth.class_ids.tolist() == [7, 1] and truth.consider.tolist() == [False, True]
    np.testing.assert_allclose(truth.visibility, [0.25, 1.0])


@pytest.mark.parametrize(
    "content, message",
    [
        ("0,-1,1,2,3,4,0.5\n", "frames are integers starting at 1"),
        ("1.5,-1,1,2,3,4,0.5\n", "frames are integers starting at 1"),
        ("1,-1,1,2,3,4\n", "7 or 10 columns"),
        ("1,-1,1,2,nan,4,0.5\n", "non-finite"),
        ("1;-1;1;2;3;4;0.5\n", "not a comma-separated"),
    ],
)
def test_bad_detection_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "det.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        read_mot_detections(path)
    assert str(path) in str(error.value)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="det.txt"):
        read_mot_detections(tmp_path / "det.txt")
    with pytest.raises(FileNotFoundError, match="seqinfo.ini"):
        read_seqinfo(tmp_path)


def test_bad_seqinfo(tmp_path):
    (tmp_path / "seqinfo.ini").write_text(
        "[Sequence]\nname=x\nframeRate=25\nseqLength=3\nimWidth=10\n"
    )
    with pytest.raises(ValueError, match="imHeight"):
        read_seqinfo(tmp_path)
    (tmp_path / "seqinfo.ini").write_text("[Other]\nname=x\n")
    with pytest.raises(ValueError, match="missing \\[Sequence\\]"):
        read_seqinfo(tmp_path)


def test_results_round_trip_exact_format(tmp_path):
    rows = np.array(
        [[2, 1, 10.123, 20, 30, 40, 0.91], [1, 2, 1, 2, 3, 4, 1.0], [1, 1, 5, 6, 7, 8, 0.5]]
    )
    path = write_mot_results(tmp_path / "out" / "seq.txt", rows)
    lines = path.read_text().splitlines()
    assert lines == [
        "1,1,5.00,6.00,7.00,8.00,0.50,-1,-1,-1",
        "1,2,1.00,2.00,3.00,4.00,1.00,-1,-1,-1",
        "2,1,10.12,20.00,30.00,40.00,0.91,-1,-1,-1",
    ]
    back = read_mot_results(path)
    assert back.frame_ids.tolist() == [1, 1, 2] and back.track_ids.tolist() == [1, 2, 1]
    np.testing.assert_allclose(back.tlwh[2], [10.12, 20, 30, 40])
    assert write_mot_results(tmp_path / "empty.txt", np.zeros((0, 7))).read_text() == ""


@pytest.mark.parametrize(
    "bad",
    [
        [0, 1, 1, 1, 1, 1, 1],
        [1, 0, 1, 1, 1, 1, 1],
        [1, 1.5, 1, 1, 1, 1, 1],
        [1, 1, np.nan, 1, 1, 1, 1],
    ],
)
def test_writer_rejects_bad_rows_and_keeps_old_file(tmp_path, bad):
    path = tmp_path / "seq.txt"
    path.write_text("old\n")
    with pytest.raises(ValueError):
        write_mot_results(path, np.array([bad], dtype=float))
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["seq.txt"]  # no temporary left behind


def test_results_buffer_from_tracker_output(tmp_path):
    output = np.array([[10, 20, 40, 80, 3, 0.75, 0, 1]])
    np.testing.assert_allclose(
        tracker_output_to_mot_rows(5, output), [[5, 3, 10, 20, 30, 60, 0.75]]
    )
    buffer = MotResultsBuffer()
    buffer.add(5, output)
    buffer.add(6, np.zeros((0, 8)))
    with pytest.raises(ValueError, match="1-based"):
        buffer.add(0, output)
    assert (
        buffer.write(tmp_path / "r.txt").read_text()
        == "5,3,10.00,20.00,30.00,60.00,0.75,-1,-1,-1\n"
    )
