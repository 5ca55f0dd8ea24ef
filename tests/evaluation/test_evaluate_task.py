"""``task=evaluate`` on hand-made MOTChallenge folders: layouts, sequence lists, splits, errors."""

from __future__ import annotations

import numpy as np
import pytest
from mot_samples import write_rows

from conftest import compose_config
from reidsort.evaluation.mot_layout import read_seqmap
from reidsort.tasks.evaluate import evaluate
from reidsort.utils.errors import ReidsortError

LENGTHS = {"MOT17-02-FRCNN": 12, "MOT17-04-FRCNN": 8}
BOX = [100.0, 50.0, 40.0, 100.0]


def _gt_rows(length: int) -> np.ndarray:
    """One pedestrian in every frame (9 columns: flag 1, class 1, visibility 1)."""
    return np.array([[f, 1, *BOX, 1, 1, 1.0] for f in range(1, length + 1)])


def _write_split(root, lengths=LENGTHS):
    for seq, length in lengths.items():
        write_rows(root / seq / "gt" / "gt.txt", _gt_rows(length))
        (root / seq / "seqinfo.ini").write_text(
            f"[Sequence]\nname={seq}\nimDir=img1\nframeRate=30\nseqLength={length}\n"
            "imWidth=640\nimHeight=480\nimExt=.jpg\n"
        )


def _write_results(folder, missing_frames=(3,)):
    """Perfect results except ``missing_frames`` (1 FN each) for every sequence."""
    for seq, length in LENGTHS.items():
        rows = [[f, 5, *BOX, 1, -1, -1, -1]
                for f in range(1, length + 1) if f not in missing_frames]
        write_rows(folder / f"{seq}.txt", np.array(rows))


def _run(tmp_path, *overrides):
    cfg = compose_config(["task=evaluate", *overrides], tmp_path / "run")
    return evaluate(cfg)


def test_split_folder_and_results_folder(tmp_path, capsys):
    _write_split(tmp_path / "train")
    _write_results(tmp_path / "res")
    metrics = _run(tmp_path, f"results={tmp_path / 'res'}", f"gt_root={tmp_path / 'train'}")
    assert metrics["mot/FN"] == 2 and metrics["mot/TP"] == 18 and metrics["mot/FP"] == 0
    assert metrics["mot/MOTA"] == pytest.approx(18 / 20)
    csv_lines = (tmp_path / "run" / "mot_metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in csv_lines[1:]] == [*LENGTHS, "COMBINED"]
    assert (tmp_path / "run" / "mot_metrics.md").read_text().startswith("| sequence | HOTA |")
    out = capsys.readouterr().out
    assert "class rules MOT17" in out and "split=full" in out


def test_sequence_list_seqmap_and_trackeval_tracker_layout(tmp_path):
    _write_split(tmp_path / "train")
    _write_results(tmp_path / "tracker" / "data")
    seqmap = tmp_path / "seqmap.txt"
    seqmap.write_text("name\nMOT17-04-FRCNN\n\n")
    assert read_seqmap(seqmap) == ["MOT17-04-FRCNN"]
    common = [f"results={tmp_path / 'tracker'}", f"gt_root={tmp_path / 'train'}"]
    assert _run(tmp_path, *common, f"task.sequences={seqmap}")["mot/GT_Dets"] == 8
    assert _run(tmp_path, *common, "task.sequences=[MOT17-02-FRCNN]")["mot/GT_Dets"] == 12
    assert _run(tmp_path, *common, "task.sequences=MOT17-02-FRCNN")["mot/GT_Dets"] == 12


def test_a_task_track_run_dir_is_found_without_a_pattern(tmp_path):
    # task=track writes <run>/<seq>/<seq>.txt (plus timing, videos, raw files beside them)
    _write_split(tmp_path / "train")
    run = tmp_path / "track_run"
    for seq in LENGTHS:
        _write_results(tmp_path / "flat")
        (run / seq).mkdir(parents=True)
        (tmp_path / "flat" / f"{seq}.txt").rename(run / seq / f"{seq}.txt")
    metrics = _run(tmp_path, f"results={run}", f"gt_root={tmp_path / 'train'}")
    assert metrics["mot/FN"] == 2 and metrics["mot/TP"] == 18
    # an explicit pattern is taken as given: no silent fallback
    with pytest.raises(ReidsortError, match="no result file"):
        _run(tmp_path, f"results={run}", f"gt_root={tmp_path / 'train'}",
             "task.results_pattern='{seq}_tracks.txt'")


def test_one_sequence_folder_and_one_result_file(tmp_path):
    _write_split(tmp_path / "train")
    _write_results(tmp_path / "res", missing_frames=(1, 2, 3, 4))
    seq = "MOT17-02-FRCNN"
    common = [f"results={tmp_path / 'res' / (seq + '.txt')}", f"gt_root={tmp_path / 'train' / seq}"]
    assert _run(tmp_path, *common)["mot/FN"] == 4
    # val half of 12 frames = frames 8..12, all tracked
    metrics = _run(tmp_path, *common, "task.split=val_half")
    assert (metrics["mot/FN"], metrics["mot/GT_Dets"]) == (0, 5)


def test_missing_inputs_are_one_line_errors(tmp_path):
    _write_split(tmp_path / "train")
    (tmp_path / "res").mkdir()
    write_rows(tmp_path / "res" / "MOT17-02-FRCNN.txt", np.array([[1, 1, *BOX, 1, -1, -1, -1]]))
    gt_root = f"gt_root={tmp_path / 'train'}"
    with pytest.raises(ReidsortError, match="needs results="):
        _run(tmp_path, gt_root)
    with pytest.raises(ReidsortError, match="no result file .* for MOT17-04-FRCNN"):
        _run(tmp_path, f"results={tmp_path / 'res'}", gt_root)
    with pytest.raises(ReidsortError, match="no ground truth .* for MOT17-09"):
        _run(tmp_path, f"results={tmp_path / 'res'}", gt_root, "task.sequences=[MOT17-09]")
    with pytest.raises(ReidsortError, match="one file but 2 sequences"):
        _run(tmp_path, f"results={tmp_path / 'res' / 'MOT17-02-FRCNN.txt'}", gt_root)
    with pytest.raises(ReidsortError, match="no sequences with ground truth"):
        _run(tmp_path, f"results={tmp_path / 'res'}", f"gt_root={tmp_path / 'res'}")
    assert not (tmp_path / "run" / "mot_metrics.csv").exists()


def test_postprocess_fills_result_gaps_before_scoring_and_leaves_the_inputs(tmp_path, capsys):
    _write_split(tmp_path / "train")
    _write_results(tmp_path / "res", missing_frames=(3, 4))
    before = {p.name: p.read_text() for p in (tmp_path / "res").iterdir()}
    args = (f"results={tmp_path / 'res'}", f"gt_root={tmp_path / 'train'}")
    assert _run(tmp_path, *args)["mot/FN"] == 4
    metrics = _run(tmp_path, *args, "postprocess=gsi")
    assert metrics["mot/FN"] == 0 and metrics["mot/FP"] == 0 and metrics["mot/IDSW"] == 0
    processed = tmp_path / "run" / "postprocessed" / "MOT17-02-FRCNN.txt"
    assert len(processed.read_text().splitlines()) == LENGTHS["MOT17-02-FRCNN"]
    assert {p.name: p.read_text() for p in (tmp_path / "res").iterdir()} == before
    assert "post-processed (Postprocessor(gsi" in capsys.readouterr().out
    assert _run(tmp_path, *args, "postprocess=linear", "postprocess.max_gap=1")["mot/FN"] == 4
