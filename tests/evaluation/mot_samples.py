"""Hand-made MOT ground truth and tracker output, and TrackEval run through its own file layout.

Used by the evaluation tests (parity with TrackEval's ``MotChallenge2DBox``) and by
``benchmarks/mot_eval_speed.py`` (the noisy copy of real ground truth).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

#: MOTChallenge classes drawn for synthetic ground truth: mostly pedestrians, plus each
#: distractor (2, 7, 8, 12), a non-distractor non-pedestrian (3 = car) and 6 (a MOT20 distractor).
SYNTHETIC_CLASSES = np.array([1, 1, 1, 1, 1, 1, 2, 7, 8, 12, 3, 6])
BOX_DECIMALS = 2


def write_rows(path: Path, rows: np.ndarray, integer_columns: int = 2) -> Path:
    """Write a MOTChallenge text file (frame and id as integers, the rest with 2 decimals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in np.asarray(rows, dtype=float):
        cells = [str(int(v)) for v in row[:integer_columns]]
        cells += [f"{v:.{BOX_DECIMALS}f}" for v in row[integer_columns:]]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def synthetic_ground_truth(rng: np.random.Generator, num_frames: int, num_objects: int,
                           with_classes: bool) -> np.ndarray:
    """Linearly moving boxes. 9 columns (MOT16+: flag, class, visibility) or 10 (MOT15)."""
    rows = []
    for track_id in range(1, num_objects + 1):
        start = int(rng.integers(1, num_frames))
        end = int(rng.integers(start, num_frames + 1))
        x, y = rng.uniform(0, 400, size=2)
        w, h = rng.uniform(20, 60), rng.uniform(50, 150)
        vx, vy = rng.normal(0, 4, size=2)
        cls = int(rng.choice(SYNTHETIC_CLASSES)) if with_classes else -1
        for frame in range(start, end + 1):
            step = frame - start
            flag = int(rng.random() > 0.15) if cls in (1, -1) else int(rng.random() > 0.7)
            box = [x + vx * step, y + vy * step, w, h]
            if with_classes:
                rows.append([frame, track_id, *box, flag, cls, rng.uniform(0, 1)])
            else:
                rows.append([frame, track_id, *box, flag, -1, -1, -1])
    rows = np.array(rows)
    return np.round(rows[rng.permutation(len(rows))], BOX_DECIMALS)


def noisy_copy(gt_rows: np.ndarray, rng: np.random.Generator, jitter: float = 0.08,
               drop: float = 0.1, switch: float = 0.3, false_positives: float = 0.1,
               keep_ignored: bool = False) -> np.ndarray:
    """Tracker-like output from ground truth: jittered and dropped boxes, id switches, extra boxes.

    ``switch`` is the chance that a track changes id once (at a random frame); false positives
    are shifted copies of real boxes, each its own one-box track. Rows are ``[frame, id, x, y, w,
    h, 1, -1, -1, -1]``. Ground truth flagged 0 (or non-pedestrian) is skipped unless
    ``keep_ignored`` (then tracker boxes land on distractors too).
    """
    gt_rows = np.asarray(gt_rows, dtype=float)
    keep = np.ones(len(gt_rows), bool)
    if not keep_ignored:
        keep = gt_rows[:, 6] != 0
        if gt_rows.shape[1] == 9:
            keep &= gt_rows[:, 7] == 1
    rows = gt_rows[keep][:, :6].copy()
    rows = rows[rng.random(len(rows)) >= drop]
    size = rows[:, 4:6].copy()
    rows[:, 2:4] += rng.normal(0, jitter, size=(len(rows), 2)) * size
    rows[:, 4:6] *= np.exp(rng.normal(0, jitter, size=(len(rows), 2)))
    next_id = int(gt_rows[:, 1].max()) + 1 if len(gt_rows) else 1
    for track_id in np.unique(rows[:, 1]):
        if rng.random() < switch:
            mine = np.flatnonzero(rows[:, 1] == track_id)
            at = rng.choice(rows[mine, 0])
            rows[mine[rows[mine, 0] >= at], 1] = next_id
            next_id += 1
    extra = rows[rng.random(len(rows)) < false_positives].copy()
    extra[:, 2] += 1.5 * extra[:, 4]
    extra[:, 1] = next_id + np.arange(len(extra))
    rows = np.concatenate([rows, extra])
    rows = rows[rng.permutation(len(rows))]
    tail = np.tile([1.0, -1.0, -1.0, -1.0], (len(rows), 1))
    return np.round(np.column_stack([rows, tail]), BOX_DECIMALS)


def run_trackeval(root: Path, ground_truth: dict[str, np.ndarray | Path],
                  results: dict[str, np.ndarray], lengths: dict[str, int],
                  benchmark: str) -> dict[str, dict]:
    """TrackEval's own evaluation (files in its layout under ``root``): ``{seq: {metric: res}}``
    with ``COMBINED_SEQ``, for the pedestrian class. Ground truth: rows, or a file to copy."""
    import trackeval

    for seq, rows in ground_truth.items():
        target = root / "gt" / seq / "gt" / "gt.txt"
        if isinstance(rows, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rows, target)
        else:
            write_rows(target, rows)
        write_rows(root / "trackers" / "t" / "data" / f"{seq}.txt", results[seq])
    evaluator = trackeval.Evaluator({
        "USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
        "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False, "LOG_ON_ERROR": None,
    })
    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"),
        "BENCHMARK": benchmark, "SKIP_SPLIT_FOL": True, "SEQ_INFO": dict(lengths),
        "PRINT_CONFIG": False,
    })
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    output, _ = evaluator.evaluate([dataset], metrics)
    raw = output["MotChallenge2DBox"]["t"]
    return {seq: raw[seq]["pedestrian"] for seq in raw}
