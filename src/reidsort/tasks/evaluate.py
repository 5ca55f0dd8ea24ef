"""``task=evaluate``: score MOTChallenge tracker results with TrackEval; print and save tables."""

from __future__ import annotations

import logging
from importlib.metadata import version
from pathlib import Path

from omegaconf import DictConfig

from reidsort.evaluation.mot import MotEvaluation, evaluate_mot
from reidsort.evaluation.mot_layout import (
    ground_truth_files,
    list_sequences,
    result_files,
    sequence_lengths,
)
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain

log = logging.getLogger(__name__)

#: Metric keys returned by the task (and by ``task=track``): ``mot/HOTA``, ``mot/IDF1``, ...
METRIC_PREFIX = "mot/"
TABLE_STEM = "mot_metrics"


def report(evaluation: MotEvaluation, output_dir: str | Path, stem: str = TABLE_STEM) -> None:
    """Print the per-sequence + combined table and save it (CSV + Markdown) in ``output_dir``."""
    paths = evaluation.save(output_dir, stem)
    rules = sorted(set(evaluation.benchmarks.values()))
    print(
        f"MOT evaluation with TrackEval {version('trackeval')}: {len(evaluation.sequences)} "
        f"sequence(s), split={evaluation.split}, class rules {'/'.join(rules)}; scores in %",
        flush=True,
    )
    print(evaluation.format_text(), end="", flush=True)
    print(f"tables: {paths['csv']} and {paths['markdown']}", flush=True)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    opts = cfg.task
    if not opts.get("results") or not opts.get("gt_root"):
        raise ReidsortError(
            "task=evaluate needs results=<folder of <seq>.txt files> and gt_root=<folder of "
            "sequences with gt/gt.txt>"
        )
    root, sequences = list_sequences(opts.gt_root, to_plain(opts.sequences), opts.gt_pattern)
    lengths = sequence_lengths(Path(opts.seqinfo_root) if opts.seqinfo_root else root, sequences)
    evaluation = evaluate_mot(
        result_files(opts.results, sequences, opts.results_pattern),
        ground_truth_files(root, sequences, opts.gt_pattern),
        lengths,
        benchmark=opts.benchmark,
        split=opts.split,
        results_numbering=opts.results_numbering,
        metrics=list(opts.metrics),
        workers=int(opts.workers),
    )
    report(evaluation, cfg.paths.output_dir)
    return evaluation.summary(prefix=METRIC_PREFIX)
