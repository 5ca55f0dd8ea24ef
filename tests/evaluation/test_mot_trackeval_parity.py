"""Our evaluation equals TrackEval run through its own MOTChallenge dataset class, field by field.

Hand-made sequences exercise every branch of the official preprocessing: distractor classes
matched and removed, non-pedestrian and zero-flagged ground truth dropped, MOT20's extra
distractor, MOT15 (no classes), and the val-half split against files cut the ByteTrack way.
"""

from __future__ import annotations

import numpy as np
import pytest
from mot_samples import noisy_copy, run_trackeval, synthetic_ground_truth, write_rows

from reidsort.evaluation.mot import evaluate_mot
from reidsort.evaluation.mot_split import split_frame_range
from reidsort.tracking.mot_io import read_mot_ground_truth, read_seqinfo

NUM_FRAMES = {"seq-a": 40, "seq-b": 25, "seq-c": 33}


def _assert_same(ours: dict, theirs: dict) -> None:
    """Every field of every metric identical (exact floats, not approximately)."""
    for metric, fields in theirs.items():
        for name, value in fields.items():
            if metric == "Count" and name == "Frames":
                continue  # TrackEval's Count keeps frames per sequence only
            np.testing.assert_array_equal(ours[metric][name], value, err_msg=f"{metric}.{name}")


def _compare(evaluation, reference: dict) -> None:
    for seq in evaluation.sequences:
        _assert_same(evaluation.per_sequence[seq], reference[seq])
    _assert_same(evaluation.combined, reference["COMBINED_SEQ"])


def _synthetic(seed: int, with_classes: bool, keep_ignored: bool = True):
    rng = np.random.default_rng(seed)
    gt = {s: synthetic_ground_truth(rng, n, 9, with_classes) for s, n in NUM_FRAMES.items()}
    results = {s: noisy_copy(rows, rng, keep_ignored=keep_ignored) for s, rows in gt.items()}
    return gt, results


def _paths(tmp_path, gt, results):
    """Our inputs: the very files TrackEval read."""
    gt_files = {s: tmp_path / "te" / "gt" / s / "gt" / "gt.txt" for s in gt}
    result_files = {s: tmp_path / "te" / "trackers" / "t" / "data" / f"{s}.txt" for s in gt}
    return result_files, gt_files


# (not named "benchmark": pytest-benchmark owns that fixture name)
@pytest.mark.parametrize("rules", ["MOT17", "MOT20"])
def test_mot17_and_mot20_preprocessing_equal_trackeval(tmp_path, rules):
    gt, results = _synthetic(seed=1 if rules == "MOT17" else 2, with_classes=True)
    reference = run_trackeval(tmp_path / "te", gt, results, NUM_FRAMES, rules)
    evaluation = evaluate_mot(*_paths(tmp_path, gt, results), NUM_FRAMES, benchmark=rules)
    _compare(evaluation, reference)
    assert set(evaluation.benchmarks.values()) == {rules}
    # the data really exercises the class handling: distractor boxes get removed
    counts = evaluation.combined["Count"]
    assert counts["Dets"] < sum(len(r) for r in results.values())
    assert counts["GT_Dets"] < sum(len(g) for g in gt.values())


def test_auto_benchmark_picks_mot20_rules_for_mot20_sequences(tmp_path):
    gt, results = _synthetic(seed=3, with_classes=True)
    names = {"seq-a": "MOT20-01", "seq-b": "MOT20-02", "seq-c": "MOT20-03"}
    gt = {names[s]: rows for s, rows in gt.items()}
    results = {names[s]: rows for s, rows in results.items()}
    lengths = {names[s]: n for s, n in NUM_FRAMES.items()}
    reference = run_trackeval(tmp_path / "te", gt, results, lengths, "MOT20")
    evaluation = evaluate_mot(*_paths(tmp_path, gt, results), lengths)
    _compare(evaluation, reference)
    assert set(evaluation.benchmarks.values()) == {"MOT20"}


def test_mot15_layout_equals_trackeval(tmp_path):
    gt, results = _synthetic(seed=4, with_classes=False)
    reference = run_trackeval(tmp_path / "te", gt, results, NUM_FRAMES, "MOT15")
    evaluation = evaluate_mot(*_paths(tmp_path, gt, results), NUM_FRAMES)
    _compare(evaluation, reference)
    assert set(evaluation.benchmarks.values()) == {"MOT15"}


def _cut(rows: np.ndarray, first: int, last: int) -> np.ndarray:
    """ByteTrack's gt_val_half.txt: keep frames first..last, renumber from 1."""
    kept = rows[(rows[:, 0] >= first) & (rows[:, 0] <= last)].copy()
    kept[:, 0] -= first - 1
    return kept


@pytest.mark.parametrize("results_numbering", ["sequence", "split"])
def test_val_half_equals_trackeval_on_files_cut_the_bytetrack_way(tmp_path, results_numbering):
    gt, results = _synthetic(seed=5, with_classes=True, keep_ignored=False)
    ranges = {s: split_frame_range("val_half", n) for s, n in NUM_FRAMES.items()}
    cut_gt = {s: _cut(rows, ranges[s].first, ranges[s].last) for s, rows in gt.items()}
    cut_results = {s: _cut(rows, ranges[s].first, ranges[s].last) for s, rows in results.items()}
    half_lengths = {s: r.length for s, r in ranges.items()}
    reference = run_trackeval(tmp_path / "te", cut_gt, cut_results, half_lengths, "MOT17")

    full_gt = {s: write_rows(tmp_path / "full" / s / "gt.txt", gt[s]) for s in gt}
    ours_results = {s: (results[s] if results_numbering == "sequence" else cut_results[s])
                    for s in gt}
    evaluation = evaluate_mot(ours_results, full_gt, NUM_FRAMES, split="val_half",
                              results_numbering=results_numbering)
    _compare(evaluation, reference)
    assert evaluation.num_frames == half_lengths
    # n = 40: frames 22..40 form the val half (CenterTrack/ByteTrack), renumbered 1..19
    assert (ranges["seq-a"].first, ranges["seq-a"].last) == (22, 40)


def test_real_mot15_sequence_with_ignored_boxes_equals_trackeval(tmp_path, shared_data):
    seq_dir = shared_data / "mot" / "MOT15-text" / "KITTI-17"
    gt_file = seq_dir / "gt" / "gt.txt"
    gt_rows = np.loadtxt(gt_file, delimiter=",")
    assert (gt_rows[:, 6] == 0).any()  # the sequence has boxes flagged "ignore"
    rows = noisy_copy(gt_rows, np.random.default_rng(6))
    length = {"KITTI-17": read_seqinfo(seq_dir).length}
    reference = run_trackeval(tmp_path / "te", {"KITTI-17": gt_file}, {"KITTI-17": rows},
                              length, "MOT15")
    gt = read_mot_ground_truth(gt_file)
    evaluation = evaluate_mot({"KITTI-17": rows}, {"KITTI-17": gt}, length)
    _compare(evaluation, reference)
    assert 0.3 < evaluation.row()["HOTA"] < 0.95
