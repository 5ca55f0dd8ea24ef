"""Known answers for MOT evaluation: hand-made sequences, scores that follow from definitions."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from reidsort.evaluation import mot_tables
from reidsort.evaluation.mot import evaluate_mot, results_from_rows
from reidsort.evaluation.mot_split import split_frame_range
from reidsort.tracking.mot_io import MotGroundTruth
from reidsort.utils.errors import ReidsortError

BOX = (100.0, 50.0, 40.0, 100.0)


def _gt(rows) -> MotGroundTruth:
    """rows: (frame, id, x, y, w, h, flag, class) - class -1 means "no class column" (MOT15)."""
    rows = np.array(rows, dtype=float).reshape(-1, 8)
    return MotGroundTruth(
        frame_ids=rows[:, 0].astype(np.int64), track_ids=rows[:, 1].astype(np.int64),
        tlwh=rows[:, 2:6].copy(), consider=rows[:, 6] != 0,
        class_ids=rows[:, 7].astype(np.int64), visibility=np.ones(len(rows)),
    )


def _track(track_id: int, frames, box=BOX) -> list[list[float]]:
    return [[f, track_id, *box] for f in frames]


def _evaluate(results_rows, gt, num_frames, **kwargs):
    return evaluate_mot({"s": np.array(results_rows, dtype=float).reshape(-1, 6)}, {"s": gt},
                        {"s": num_frames}, **kwargs)


@pytest.mark.parametrize("length, train, val", [(10, (1, 6), (7, 10)), (9, (1, 5), (6, 9)),
                                                (3, (1, 2), (3, 3))])
def test_half_splits_follow_centertrack_and_bytetrack(length, train, val):
    train_range = split_frame_range("train_half", length)
    val_range = split_frame_range("val_half", length)
    assert (train_range.first, train_range.last) == train
    assert (val_range.first, val_range.last) == val
    assert split_frame_range("full", length).length == length


def test_too_short_for_a_val_half_is_an_error():
    with pytest.raises(ReidsortError, match="too short"):
        split_frame_range("val_half", 2, "tiny")
    with pytest.raises(ReidsortError, match="unknown split"):
        split_frame_range("half", 10)


def test_perfect_results_score_one():
    gt = _gt([[*row, 1, 1] for row in _track(1, range(1, 6)) + _track(2, range(2, 9), (300, 60,
                                                                                    30, 90))])
    results = np.column_stack([gt.frame_ids, gt.track_ids, gt.tlwh])
    row = _evaluate(results, gt, 8).row()
    assert row["HOTA"] == row["MOTA"] == row["IDF1"] == row["LocA"] == 1.0
    assert row["FP"] == row["FN"] == row["IDSW"] == 0
    assert row["MT"] == 2 and row["GT_Dets"] == 12


def test_one_id_switch_known_answer():
    """One person, 4 frames, perfect boxes; the tracker changes its id halfway."""
    gt = _gt([[*row, 1, 1] for row in _track(1, range(1, 5))])
    results = _track(7, [1, 2]) + _track(8, [3, 4])
    row = _evaluate(results, gt, 4).row()
    assert (row["TP"], row["FP"], row["FN"], row["IDSW"]) == (4, 0, 0, 1)
    assert row["MOTA"] == pytest.approx(0.75)          # (TP - FP - IDSW) / GT = 3 / 4
    assert row["IDF1"] == pytest.approx(0.5)           # IDTP 2 / (2 + 0.5 * 2 + 0.5 * 2)
    assert row["DetA"] == 1.0
    assert row["AssA"] == pytest.approx(0.5)           # each match: 2 / (4 + 2 - 2)
    assert row["HOTA"] == pytest.approx(math.sqrt(0.5))


def _class_scene():
    """Frame 1, five separate boxes: pedestrian; static person (7); car (3, flag 0);
    pedestrian flagged 0; non-MOT vehicle (6, flag 0). The tracker has a box on each."""
    boxes = [(0, 0, 40, 100), (100, 0, 40, 100), (200, 0, 40, 100), (300, 0, 40, 100),
             (400, 0, 40, 100)]
    flags_classes = [(1, 1), (1, 7), (0, 3), (0, 1), (0, 6)]
    gt = _gt([[1, i + 1, *box, flag, cls]
              for i, (box, (flag, cls)) in enumerate(zip(boxes, flags_classes))])
    results = [[1, i + 1, *box] for i, box in enumerate(boxes)]
    return gt, results


@pytest.mark.parametrize("rules, dets, tp, fp", [
    ("MOT17", 4, 1, 3),      # static person's box removed; car, ignored pedestrian, vehicle: FP
    ("MOT20", 3, 1, 2),      # MOT20 also removes the box on the non-MOT vehicle
    ("MOT15", 5, 2, 3),      # no classes: flag-1 boxes are ground truth, whatever their class
    ("DanceTrack", 4, 1, 3),
])
def test_distractors_classes_and_flags_like_the_devkit(rules, dets, tp, fp):
    gt, results = _class_scene()
    evaluation = _evaluate(results, gt, 1, benchmark=rules)
    row = evaluation.row()
    assert (row["Dets"], row["TP"], row["FP"], row["FN"]) == (dets, tp, fp, 0)
    assert evaluation.benchmarks == {"s": "MOT15" if rules == "MOT15" else rules}


def test_val_half_scores_only_the_second_half():
    gt = _gt([[*row, 1, 1] for row in _track(1, range(1, 11))])
    first_six = _track(1, range(1, 7))
    assert _evaluate(first_six, gt, 10).row()["FN"] == 4
    assert (_evaluate(first_six, gt, 10, split="train_half").row()["FN"]) == 0
    val = _evaluate(first_six, gt, 10, split="val_half").row()
    assert (val["TP"], val["FN"], val["GT_Dets"]) == (0, 4, 4)
    # results produced on the val half alone are numbered 1..4
    own = _evaluate(_track(1, range(1, 5)), gt, 10, split="val_half", results_numbering="split")
    assert (own.row()["TP"], own.row()["FN"]) == (4, 0)
    assert own.num_frames == {"s": 4}


def test_empty_results_miss_everything():
    gt = _gt([[*row, 1, -1] for row in _track(1, range(1, 4))])
    row = _evaluate(np.zeros((0, 6)), gt, 5).row()
    assert (row["FN"], row["TP"], row["HOTA"], row["IDF1"], row["ML"]) == (3, 0, 0.0, 0.0, 1)


def test_metric_subset_and_its_tables():
    gt = _gt([[*row, 1, 1] for row in _track(1, range(1, 4))])
    evaluation = _evaluate(_track(1, range(1, 4)), gt, 3, metrics=["Identity"])
    assert "IDF1" in evaluation.row() and "HOTA" not in evaluation.row()
    header = evaluation.format_markdown().splitlines()[0]
    assert "IDF1" in header and "MOTA" not in header
    assert evaluation.format_csv().splitlines()[-1].startswith("COMBINED,1.0,1.0,1.0")
    with pytest.raises(ReidsortError, match="unknown MOT metrics"):
        _evaluate([], gt, 3, metrics=["HOTA", "MOTA"])


def test_tables_show_percent_and_keep_fractions():
    rows = {"a": {"HOTA": 0.39139, "FP": 13}, mot_tables.COMBINED: {"HOTA": 0.4, "FP": 58}}
    assert "| a | 39.14 | 13 |" in mot_tables.format_markdown(rows)
    assert "| **COMBINED** | **40.00** | **58** |" in mot_tables.format_markdown(rows)
    assert mot_tables.format_csv(rows).splitlines() == ["sequence,HOTA,FP", "a,0.39139,13",
                                                        "COMBINED,0.4,58"]
    text = mot_tables.format_text(rows).splitlines()
    assert text[0].split() == ["sequence", "HOTA", "FP"] and text[2].split()[1] == "40.00"


def test_unknown_length_uses_the_last_frame_with_a_warning(caplog):
    gt = _gt([[*row, 1, 1] for row in _track(1, range(1, 4))])
    with caplog.at_level(logging.WARNING):
        evaluation = evaluate_mot({"s": np.array(_track(1, range(1, 6)), float)}, {"s": gt})
    assert evaluation.num_frames == {"s": 5} and "no seqLength" in caplog.text
    with pytest.raises(ReidsortError, match="needs the length"):
        evaluate_mot({"s": np.zeros((0, 6))}, {"s": gt}, split="val_half")


@pytest.mark.parametrize("results, gt_rows, kwargs, message", [
    (_track(1, [6]), [[1, 1, *BOX, 1, 1]], {}, "outside 1..5"),
    (_track(1, [1]) * 2, [[1, 1, *BOX, 1, 1]], {}, "id 1 twice in frame 1"),
    (_track(1, [1]), [[1, 1, *BOX, 1, -1]], {"benchmark": "MOT17"}, "no class column"),
    (_track(1, [1]), [[1, 1, *BOX, 1, 14]], {}, "class 14"),
    (_track(1, [1]), [[1, 1, *BOX, 1, 1]], {"benchmark": "KITTI"}, "unknown benchmark"),
    (_track(1, [1]), [[1, 1, *BOX, 1, 1]], {"split": "half"}, "unknown split"),
    (_track(1, [1]), [[1, 1, *BOX, 1, 1]], {"results_numbering": "x"}, "unknown results_num"),
])
def test_inputs_trackeval_rejects_are_errors(results, gt_rows, kwargs, message):
    with pytest.raises(ReidsortError, match=message):
        _evaluate(results, _gt(gt_rows), 5, **kwargs)


def test_every_sequence_needs_results():
    gt = _gt([[1, 1, *BOX, 1, 1]])
    with pytest.raises(ReidsortError, match="no results for sequence"):
        evaluate_mot({"a": np.zeros((0, 6))}, {"a": gt, "b": gt}, {"a": 1, "b": 1})


def test_result_rows_are_validated():
    with pytest.raises(ReidsortError, match="track id 0"):
        results_from_rows(np.array([[1, 0, *BOX]]), "s")
    results = results_from_rows(np.array([[2, 3, *BOX]]))
    assert results.scores.tolist() == [1.0] and results.frame_ids.tolist() == [2]
