"""MOT evaluation with TrackEval: HOTA, CLEAR (MOTA) and Identity (IDF1), per sequence and combined.

The scores are computed by TrackEval's own metric classes (``trackeval.metrics``), the
implementation behind the MOTChallenge and DanceTrack leaderboards, on data that
:mod:`reidsort.evaluation.mot_preprocess` prepares exactly as TrackEval's MOTChallenge dataset
class does; the combined row is each metric's ``combine_sequences``. Tests check the result
against TrackEval driven through its own file layout and against published reference scores.

Typical use::

    from reidsort.evaluation.mot import evaluate_mot
    evaluation = evaluate_mot(
        results={"MOT17-02": "out/MOT17-02.txt"},        # path, MotResults or (M, 6|7) rows
        ground_truth={"MOT17-02": "MOT17/train/MOT17-02/gt/gt.txt"},
        num_frames={"MOT17-02": 600},                    # seqinfo.ini seqLength
        split="val_half",
    )
    print(evaluation.format_text())
    evaluation.summary()["HOTA"]
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
from trackeval.metrics import CLEAR, HOTA, Count, Identity

from reidsort.evaluation import mot_tables
from reidsort.evaluation.mot_preprocess import (
    AUTO,
    BENCHMARKS,
    check_frames,
    class_rules,
    preprocess_sequence,
)
from reidsort.evaluation.mot_split import (
    FULL,
    RESULT_NUMBERINGS,
    SEQUENCE_NUMBERING,
    SPLITS,
    FrameRange,
    cut_rows,
    split_frame_range,
)
from reidsort.tracking.mot_io import (
    MotGroundTruth,
    MotResults,
    read_mot_ground_truth,
    read_mot_results,
)
from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("HOTA", "CLEAR", "Identity")
#: Similarity (IoU) a match needs for CLEAR and Identity: the MOTChallenge value.
MATCH_THRESHOLD = 0.5
COMBINED = mot_tables.COMBINED

ResultsLike = Union[str, os.PathLike, MotResults, np.ndarray]
GroundTruthLike = Union[str, os.PathLike, MotGroundTruth]


def _metric_objects(metrics: Sequence[str]) -> dict[str, Any]:
    """TrackEval metric instances by name (Count always, for the id and box counts)."""
    quiet = {"THRESHOLD": MATCH_THRESHOLD, "PRINT_CONFIG": False}
    factories = {"HOTA": HOTA, "CLEAR": lambda: CLEAR(dict(quiet)),
                 "Identity": lambda: Identity(dict(quiet))}
    unknown = [m for m in metrics if m not in factories]
    if unknown or not metrics:
        raise ReidsortError(f"unknown MOT metrics {unknown}; choose from {', '.join(METRICS)}")
    objects = {name: factories[name]() for name in dict.fromkeys(metrics)}
    objects["Count"] = Count()
    return objects


def results_from_rows(rows: np.ndarray, sequence: str = "") -> MotResults:
    """Results from rows ``(M, >=6)`` ``[frame, id, x, y, w, h, score, ...]``.

    For example ``MotResultsBuffer.rows()``; without a score column every score is 1.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        rows = rows.reshape(0, 7)
    if rows.ndim != 2 or rows.shape[1] < 6:
        raise ReidsortError(f"results of {sequence!r}: rows must be (M, >=6), got {rows.shape}")
    for column, name in ((0, "frame"), (1, "track id")):
        values = rows[:, column]
        bad = ~np.isfinite(values) | (values < 1) | (values != np.round(values))
        if bad.any():
            raise ReidsortError(
                f"results of {sequence!r}: {name} {values[bad][0]:g} is not an integer >= 1"
            )
    scores = rows[:, 6].copy() if rows.shape[1] > 6 else np.ones(len(rows))
    return MotResults(rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64),
                      rows[:, 2:6].copy(), scores)


def _load_results(value: ResultsLike, sequence: str) -> MotResults:
    if isinstance(value, MotResults):
        return value
    if isinstance(value, np.ndarray):
        return results_from_rows(value, sequence)
    return read_mot_results(value)


def _load_ground_truth(value: GroundTruthLike) -> MotGroundTruth:
    return value if isinstance(value, MotGroundTruth) else read_mot_ground_truth(value)


def _cut_ground_truth(gt: MotGroundTruth, frame_range: FrameRange) -> MotGroundTruth:
    keep, frames = cut_rows(gt.frame_ids, frame_range)
    return MotGroundTruth(frames, gt.track_ids[keep], gt.tlwh[keep], gt.consider[keep],
                          gt.class_ids[keep], gt.visibility[keep])


def _cut_results(results: MotResults, frame_range: FrameRange) -> MotResults:
    keep, frames = cut_rows(results.frame_ids, frame_range)
    return MotResults(frames, results.track_ids[keep], results.tlwh[keep], results.scores[keep])


@dataclass(frozen=True)
class _SequenceJob:
    """Everything one sequence's evaluation needs (picklable, for worker processes)."""

    sequence: str
    results: ResultsLike
    ground_truth: GroundTruthLike
    num_frames: int | None
    benchmark: str
    split: str
    results_numbering: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class _SequenceOutcome:
    sequence: str
    benchmark: str
    num_frames: int
    results: dict[str, dict[str, Any]]


def _evaluate_sequence(job: _SequenceJob) -> _SequenceOutcome:
    gt = _load_ground_truth(job.ground_truth)
    results = _load_results(job.results, job.sequence)
    num_frames = job.num_frames
    if num_frames is None:
        if job.split != FULL:
            raise ReidsortError(
                f"split={job.split} needs the length of {job.sequence!r} (seqinfo.ini seqLength)"
            )
        last = max([0, *(int(d.frame_ids.max()) for d in (gt, results) if len(d))])
        num_frames = max(last, 1)
        log.warning("%s: no seqLength given; using its last annotated frame, %d (only CLEAR's "
                    "frame count depends on it)", job.sequence, num_frames)
    num_frames = int(num_frames)
    check_frames(gt.frame_ids, num_frames, "ground truth", job.sequence)
    if job.results_numbering == SEQUENCE_NUMBERING:
        check_frames(results.frame_ids, num_frames, "results", job.sequence)
    rules = class_rules(job.benchmark, job.sequence, gt)  # from the whole file's columns
    frame_range = split_frame_range(job.split, num_frames, job.sequence)
    gt = _cut_ground_truth(gt, frame_range)
    if job.results_numbering == SEQUENCE_NUMBERING:
        results = _cut_results(results, frame_range)
    data = preprocess_sequence(job.sequence, frame_range.length, gt, results, rules)
    scores = {name: metric.eval_sequence(data)
              for name, metric in _metric_objects(job.metrics).items()}
    return _SequenceOutcome(job.sequence, rules.benchmark, frame_range.length, scores)


@dataclass(frozen=True)
class MotEvaluation:
    """Scores of a set of sequences: TrackEval result dicts per sequence and combined.

    ``per_sequence[seq][metric]`` and ``combined[metric]`` are TrackEval's own result
    dictionaries (``metric`` in HOTA, CLEAR, Identity, Count), arrays over alpha included.
    """

    metrics: tuple[str, ...]
    split: str
    per_sequence: dict[str, dict[str, dict[str, Any]]]
    combined: dict[str, dict[str, Any]]
    benchmarks: dict[str, str] = field(default_factory=dict)
    num_frames: dict[str, int] = field(default_factory=dict)

    @property
    def sequences(self) -> tuple[str, ...]:
        return tuple(self.per_sequence)

    def row(self, sequence: str = COMBINED) -> dict[str, float | int]:
        """Headline numbers of one sequence (or the combination): fractions and counts."""
        if sequence == COMBINED:
            return mot_tables.summary_row(self.combined)
        if sequence not in self.per_sequence:
            raise KeyError(f"no sequence {sequence!r}; evaluated: {', '.join(self.sequences)}")
        return mot_tables.summary_row(self.per_sequence[sequence])

    def rows(self) -> dict[str, dict[str, float | int]]:
        """Every sequence's row, then the combined row."""
        rows = {seq: self.row(seq) for seq in self.per_sequence}
        rows[COMBINED] = self.row(COMBINED)
        return rows

    def summary(self, prefix: str = "") -> dict[str, float]:
        """The combined row as floats, keys prefixed (``prefix="mot/"`` gives ``mot/HOTA``)."""
        return {f"{prefix}{key}": float(value) for key, value in self.row(COMBINED).items()}

    def format_text(self, columns: Sequence[str] = mot_tables.MAIN_COLUMNS) -> str:
        return mot_tables.format_text(self.rows(), columns)

    def format_markdown(self, columns: Sequence[str] = mot_tables.MAIN_COLUMNS) -> str:
        return mot_tables.format_markdown(self.rows(), columns)

    def format_csv(self) -> str:
        return mot_tables.format_csv(self.rows())

    def save(self, directory: str | os.PathLike, stem: str = "mot_metrics") -> dict[str, Path]:
        """Write ``<stem>.csv`` and ``<stem>.md`` atomically into ``directory``."""
        directory = Path(directory)
        return {
            "csv": atomic_write_text(directory / f"{stem}.csv", self.format_csv()),
            "markdown": atomic_write_text(directory / f"{stem}.md", self.format_markdown()),
        }


def evaluate_mot(
    results: Mapping[str, ResultsLike],
    ground_truth: Mapping[str, GroundTruthLike],
    num_frames: Mapping[str, int | None] | None = None,
    *,
    benchmark: str = AUTO,
    split: str = FULL,
    results_numbering: str = SEQUENCE_NUMBERING,
    metrics: Sequence[str] = METRICS,
    workers: int = 1,
) -> MotEvaluation:
    """Score tracker ``results`` against ``ground_truth``, sequence by sequence, with TrackEval.

    Args:
        results: per sequence, a MOTChallenge result file, a :class:`MotResults`, or rows
            ``(M, 6|7)`` ``[frame, id, x, y, w, h, score]``.
        ground_truth: per sequence, a ``gt.txt`` path or a :class:`MotGroundTruth`; its keys are
            the sequences evaluated (``results`` must have each of them).
        num_frames: per sequence, the length (``seqinfo.ini`` ``seqLength``). Where missing, the
            last annotated frame is used, which changes only CLEAR's frame count; the half
            splits need it.
        benchmark: class handling, one of :data:`~reidsort.evaluation.mot_preprocess.BENCHMARKS`
            (``auto``: from the ground-truth columns and sequence names).
        split: ``full``, ``train_half`` or ``val_half`` (see :mod:`reidsort.evaluation.mot_split`).
        results_numbering: ``sequence`` (results numbered like the whole sequence, cut like the
            ground truth) or ``split`` (results produced on the split alone, frames from 1).
        metrics: any of ``HOTA``, ``CLEAR``, ``Identity``.
        workers: processes evaluating sequences in parallel (1 = in this process).
    """
    # option errors before any work (worker processes would report them late)
    for name, value, allowed in (("benchmark", benchmark, BENCHMARKS), ("split", split, SPLITS),
                                 ("results_numbering", results_numbering, RESULT_NUMBERINGS)):
        if value not in allowed:
            raise ReidsortError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
    metric_names = tuple(dict.fromkeys(metrics))
    _metric_objects(metric_names)  # validate names before any work
    sequences = list(ground_truth)
    if not sequences:
        raise ReidsortError("no sequences to evaluate")
    missing = [seq for seq in sequences if seq not in results]
    if missing:
        raise ReidsortError(f"no results for sequence(s) {', '.join(missing)}")
    num_frames = dict(num_frames or {})
    jobs = [
        _SequenceJob(seq, results[seq], ground_truth[seq], num_frames.get(seq), benchmark,
                     split, results_numbering, metric_names)
        for seq in sequences
    ]
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        outcomes = [_evaluate_sequence(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(_evaluate_sequence, jobs))

    return _assemble(
        metric_names,
        split,
        per_sequence={o.sequence: o.results for o in outcomes},
        benchmarks={o.sequence: o.benchmark for o in outcomes},
        num_frames={o.sequence: o.num_frames for o in outcomes},
    )


def _assemble(metrics: tuple[str, ...], split: str, per_sequence: dict[str, dict[str, Any]],
              benchmarks: dict[str, str], num_frames: dict[str, int]) -> MotEvaluation:
    """Add the combined scores: each TrackEval metric's ``combine_sequences``."""
    combined = {
        name: metric.combine_sequences({seq: res[name] for seq, res in per_sequence.items()})
        for name, metric in _metric_objects(metrics).items()
    }
    return MotEvaluation(metrics, split, per_sequence, combined, benchmarks, num_frames)


def combine_evaluations(evaluations: Sequence[MotEvaluation]) -> MotEvaluation:
    """One evaluation from several (e.g. one per sequence, each made where it was tracked).

    The combined scores equal those of evaluating all sequences in one call.
    """
    if not evaluations:
        raise ReidsortError("no evaluations to combine")
    first = evaluations[0]
    per_sequence: dict[str, dict[str, Any]] = {}
    benchmarks: dict[str, str] = {}
    num_frames: dict[str, int] = {}
    for evaluation in evaluations:
        if (evaluation.metrics, evaluation.split) != (first.metrics, first.split):
            raise ReidsortError(
                "evaluations to combine need the same metrics and split: "
                f"{first.metrics}/{first.split} vs {evaluation.metrics}/{evaluation.split}"
            )
        repeated = set(per_sequence) & set(evaluation.per_sequence)
        if repeated:
            raise ReidsortError(f"sequence(s) evaluated twice: {', '.join(sorted(repeated))}")
        per_sequence.update(evaluation.per_sequence)
        benchmarks.update(evaluation.benchmarks)
        num_frames.update(evaluation.num_frames)
    return _assemble(first.metrics, first.split, per_sequence, benchmarks, num_frames)
