"""Finding sequences, ground truth, lengths and result files in MOTChallenge folder layouts.

Ground truth (MOT15/16/17/20, DanceTrack): ``<gt_root>/<seq>/gt/gt.txt`` with
``<gt_root>/<seq>/seqinfo.ini``; ``gt_root`` may also be one sequence folder. Results: a folder
of ``<seq>.txt`` files (TrackEval's ``<tracker>/data/<seq>.txt`` works too), or one file when
there is one sequence. Other layouts are described by patterns in which ``{seq}`` stands for the
sequence name (TrackEval's ``GT_LOC_FORMAT`` convention).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from reidsort.tracking.mot_io import read_seqinfo
from reidsort.utils.errors import ReidsortError

GT_PATTERN = "{seq}/gt/gt.txt"
#: The layout of a ``task=track`` run dir, found when the default layout finds nothing.
TRACK_RUN_RESULTS_PATTERN = "{seq}/{seq}.txt"
RESULTS_PATTERN = "{seq}.txt"
#: TrackEval's tracker layout keeps result files in a ``data`` sub-folder.
TRACKEVAL_RESULTS_SUBFOLDER = "data"
SEQINFO_NAME = "seqinfo.ini"
#: Names listed in an error before it says "and N more".
MAX_NAMES_IN_ERROR = 5


def _pattern_path(root: Path, pattern: str, sequence: str) -> Path:
    if "{seq}" not in pattern:
        raise ReidsortError(f"path pattern {pattern!r} must contain {{seq}}")
    return root / pattern.format(seq=sequence)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_IN_ERROR])
    extra = len(names) - MAX_NAMES_IN_ERROR
    return shown + (f" and {extra} more" if extra > 0 else "")


def read_seqmap(path: str | os.PathLike) -> list[str]:
    """Sequence names from a TrackEval seqmap: a header line (``name``), then one name a line."""
    path = Path(path)
    if not path.is_file():
        raise ReidsortError(f"seqmap file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    names = [line.split(",")[0].strip() for line in lines]
    return [name for name in names if name]


def resolve_gt_root(gt_root: str | os.PathLike, gt_pattern: str = GT_PATTERN
                    ) -> tuple[Path, list[str] | None]:
    """``(split folder, [sequence])`` for one sequence folder, else ``(gt_root, None)``."""
    root = Path(gt_root)
    if not root.is_dir():
        raise ReidsortError(f"gt_root is not a folder: {root}")
    if gt_pattern == GT_PATTERN and (root / "gt" / "gt.txt").is_file():
        return root.parent, [root.name]
    return root, None


def list_sequences(
    gt_root: str | os.PathLike,
    sequences: Sequence[str] | str | os.PathLike | None = None,
    gt_pattern: str = GT_PATTERN,
) -> tuple[Path, list[str]]:
    """The split folder and the sequences to evaluate.

    ``sequences``: names, a seqmap file (one name that is not a file is a sequence name), or
    None for every folder of ``gt_root`` that has ground truth (sorted by name). Every named
    sequence must have its ground-truth file.
    """
    root, single = resolve_gt_root(gt_root, gt_pattern)
    if isinstance(sequences, (str, os.PathLike)):
        names = read_seqmap(sequences) if Path(sequences).is_file() else [str(sequences)]
    elif sequences is not None:
        names = [str(name) for name in sequences]
    elif single is not None:
        names = single
    else:
        names = sorted(
            d.name for d in root.iterdir()
            if d.is_dir() and _pattern_path(root, gt_pattern, d.name).is_file()
        )
        if not names:
            raise ReidsortError(f"no sequences with ground truth {gt_pattern} under {root}")
    if not names:
        raise ReidsortError("the sequence list is empty")
    missing = [name for name in names if not _pattern_path(root, gt_pattern, name).is_file()]
    if missing:
        raise ReidsortError(
            f"no ground truth ({gt_pattern}) under {root} for {_names(missing)}"
        )
    return root, names


def ground_truth_files(root: Path, sequences: Sequence[str], gt_pattern: str = GT_PATTERN
                       ) -> dict[str, Path]:
    return {seq: _pattern_path(root, gt_pattern, seq) for seq in sequences}


def sequence_lengths(root: Path, sequences: Sequence[str]) -> dict[str, int | None]:
    """``seqLength`` from ``<root>/<seq>/seqinfo.ini`` (None where there is none)."""
    lengths: dict[str, int | None] = {}
    for seq in sequences:
        path = root / seq / SEQINFO_NAME
        lengths[seq] = read_seqinfo(path).length if path.is_file() else None
    return lengths


def result_files(
    results: str | os.PathLike,
    sequences: Sequence[str],
    results_pattern: str = RESULTS_PATTERN,
) -> dict[str, Path]:
    """Each sequence's result file; every sequence must have one."""
    path = Path(results)
    if path.is_file():
        if len(sequences) != 1:
            raise ReidsortError(
                f"results={path} is one file but {len(sequences)} sequences are evaluated; "
                "give a folder of <seq>.txt files"
            )
        return {sequences[0]: path}
    if not path.is_dir():
        raise ReidsortError(f"results not found: {path}")
    folder = path
    if not any(_pattern_path(path, results_pattern, s).is_file() for s in sequences):
        if (path / TRACKEVAL_RESULTS_SUBFOLDER).is_dir():
            folder = path / TRACKEVAL_RESULTS_SUBFOLDER
        elif results_pattern == RESULTS_PATTERN and all(
                _pattern_path(path, TRACK_RUN_RESULTS_PATTERN, s).is_file() for s in sequences):
            # a task=track run dir: <run>/<seq>/<seq>.txt
            results_pattern = TRACK_RUN_RESULTS_PATTERN
    files = {seq: _pattern_path(folder, results_pattern, seq) for seq in sequences}
    missing = [seq for seq, file in files.items() if not file.is_file()]
    if missing:
        raise ReidsortError(
            f"no result file ({results_pattern}) in {folder} for {_names(missing)}"
        )
    return files
