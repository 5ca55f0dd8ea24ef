"""``task=evaluate``: score MOTChallenge tracker results with TrackEval; print and save tables."""

from __future__ import annotations

import logging
from importlib.metadata import version
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from reidsort.evaluation.mot import MotEvaluation, evaluate_mot
from reidsort.evaluation.mot_layout import (
    ground_truth_files,
    list_sequences,
    result_files,
    sequence_lengths,
)
from reidsort.tracking.mot_io import read_mot_results, write_mot_results
from reidsort.tracking.postprocess import Postprocessor
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import build, to_plain

log = logging.getLogger(__name__)

#: Metric keys returned by the task (and by ``task=track``): ``mot/HOTA``, ``mot/IDF1``, ...
METRIC_PREFIX = "mot/"
TABLE_STEM = "mot_metrics"
#: where task=evaluate writes post-processed result files (inside the run dir)
POSTPROCESSED_FOLDER = "postprocessed"


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


def postprocess_results(files: dict[str, Path], postprocessor: Postprocessor,
                        out_dir: Path) -> dict[str, Path] | dict[str, np.ndarray]:
    """Each result file post-processed and written to ``out_dir/<seq>.txt`` (the inputs are
    left as they are); returns the rows to score, or ``files`` when there is nothing to do."""
    if not postprocessor.active:
        return files
    processed = {}
    for seq, path in files.items():
        raw = read_mot_results(path)
        rows = np.column_stack([raw.frame_ids, raw.track_ids, raw.tlwh, raw.scores])
        try:
            processed[seq] = postprocessor(rows)
        except ValueError as error:
            raise ReidsortError(f"{path}: {error}") from None
        write_mot_results(out_dir / f"{seq}.txt", processed[seq])
        log.info("%s: %d rows -> %d after %s", seq, len(rows), len(processed[seq]),
                 postprocessor)
    print(f"post-processed ({postprocessor}) results: {out_dir}", flush=True)
    return processed


def evaluate(cfg: DictConfig) -> dict[str, float]:
    opts = cfg.task
    if not opts.get("results") or not opts.get("gt_root"):
        raise ReidsortError(
            "task=evaluate needs results=<folder of <seq>.txt files> and gt_root=<folder of "
            "sequences with gt/gt.txt>"
        )
    root, sequences = list_sequences(opts.gt_root, to_plain(opts.sequences), opts.gt_pattern)
    lengths = sequence_lengths(Path(opts.seqinfo_root) if opts.seqinfo_root else root, sequences)
    results = result_files(opts.results, sequences, opts.results_pattern)
    if cfg.get("postprocess") is not None:
        results = postprocess_results(results, build(cfg.postprocess),
                                      Path(cfg.paths.output_dir) / POSTPROCESSED_FOLDER)
    evaluation = evaluate_mot(
        results,
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
