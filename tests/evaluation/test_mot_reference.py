"""The published reference: py-motmetrics' TUD-Campus / TUD-Stadtmitte tracker output.

Scores from ``../shared/data/README.md`` (py-motmetrics' test-suite, reproduced by TrackEval).
"""

from __future__ import annotations

import pytest

from conftest import compose_config
from reidsort.evaluation.mot import combine_evaluations, evaluate_mot
from reidsort.tasks.evaluate import evaluate
from reidsort.tracking.mot_io import read_mot_results, read_seqinfo
from reidsort.utils.errors import ReidsortError

SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
COMBINED_COUNTS = {"FP": 58, "FN": 602, "IDSW": 14, "MT": 6, "PT": 10, "ML": 2}
COMBINED_SCORES = {"IDF1": (0.624296, 6), "MOTA": (0.555116, 6), "HOTA": (0.4000, 4)}
SEQUENCE_HOTA = {"TUD-Campus": 0.3914, "TUD-Stadtmitte": 0.3978}


def _check(evaluation) -> None:
    combined = evaluation.row()
    for name, value in COMBINED_COUNTS.items():
        assert combined[name] == value, name
    for name, (value, decimals) in COMBINED_SCORES.items():
        assert round(combined[name], decimals) == value, name
    for seq, hota in SEQUENCE_HOTA.items():
        assert round(evaluation.row(seq)["HOTA"], 4) == hota


@pytest.fixture
def reference(shared_data):
    root = shared_data / "mot" / "motmetrics_reference"
    lengths = {seq: read_seqinfo(shared_data / "mot" / seq).length for seq in SEQUENCES}
    return root, lengths


def test_reference_scores_from_files(reference):
    root, lengths = reference
    evaluation = evaluate_mot({s: root / s / "test.txt" for s in SEQUENCES},
                              {s: root / s / "gt.txt" for s in SEQUENCES}, lengths)
    _check(evaluation)
    assert evaluation.benchmarks == {s: "MOT15" for s in SEQUENCES}


def test_reference_scores_from_arrays_in_worker_processes(reference):
    """In-memory results (what task=track hands over) and two workers give the same scores."""
    root, lengths = reference
    results = {s: read_mot_results(root / s / "test.txt") for s in SEQUENCES}
    evaluation = evaluate_mot(results, {s: root / s / "gt.txt" for s in SEQUENCES}, lengths,
                              workers=2)
    _check(evaluation)


def test_reference_scores_combined_from_per_sequence_evaluations(reference):
    """What task=track does when each sequence is tracked and scored on its own."""
    root, lengths = reference
    parts = [evaluate_mot({s: root / s / "test.txt"}, {s: root / s / "gt.txt"}, lengths)
             for s in SEQUENCES]
    _check(combine_evaluations(parts))
    with pytest.raises(ReidsortError, match="evaluated twice"):
        combine_evaluations([parts[0], parts[0]])


def test_reference_scores_through_the_task(reference, shared_data, tmp_path, capsys):
    root, _ = reference
    cfg = compose_config([
        "task=evaluate", f"results={root}", f"gt_root={root}",
        "task.gt_pattern='{seq}/gt.txt'", "task.results_pattern='{seq}/test.txt'",
        f"task.seqinfo_root={shared_data / 'mot'}",
    ], tmp_path / "run")
    metrics = evaluate(cfg)
    assert round(metrics["mot/IDF1"], 6) == 0.624296
    assert metrics["mot/FP"] == 58 and metrics["mot/IDSW"] == 14
    assert cfg.optimized_metric in metrics
    csv_lines = (tmp_path / "run" / "mot_metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in csv_lines] == ["sequence", *SEQUENCES, "COMBINED"]
    markdown = (tmp_path / "run" / "mot_metrics.md").read_text()
    assert "| **COMBINED** | **40.00** |" in markdown
    printed = capsys.readouterr().out
    assert "TUD-Stadtmitte" in printed and "62.43" in printed
