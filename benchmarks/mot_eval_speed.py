"""Wall time of MOT evaluation (HOTA + CLEAR + Identity) on the eight MOT15-text sequences.

Two result sets per sequence, written as MOTChallenge files in a temporary folder first, as a
tracker would leave them: the ground truth itself (its boxes flagged 1: a perfect tracker) and a
seeded noisy copy (8% box jitter, 10% boxes dropped, a third of the tracks switching id once, 10%
extra false boxes; ``tests/evaluation/mot_samples.noisy_copy``).

Timed, each ``--repeats`` times (the best and the median are reported), reading the files
included:

* ``evaluate_mot`` with ``workers=1`` and ``workers=2`` (a process pool over sequences; wall
  time only, as the workers' CPU time is not visible to this process);
* TrackEval's own pipeline (``Evaluator`` + ``MotChallenge2DBox`` on the same files in its
  folder layout, serial), as the yardstick. Its scores are checked to equal ours, field by field.

    python benchmarks/mot_eval_speed.py                  # ~1 min on 2 cores
    python benchmarks/mot_eval_speed.py --repeats 1      # a smoke run
    python benchmarks/mot_eval_speed.py --markdown out.md   # also write the Markdown section
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "evaluation"))

import numpy as np  # noqa: E402
from mot_samples import noisy_copy, run_trackeval, write_rows  # noqa: E402

from reidsort.evaluation.mot import evaluate_mot  # noqa: E402
from reidsort.tracking.mot_io import read_seqinfo  # noqa: E402
from reidsort.utils.io import atomic_write_text  # noqa: E402

DEFAULT_DATA_ROOT = Path(
    os.environ.get("REIDSORT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)
MOT15_TEXT = (
    "ADL-Rundle-6", "ADL-Rundle-8", "ETH-Bahnhof", "ETH-Pedcross2",
    "ETH-Sunnyday", "KITTI-13", "KITTI-17", "Venice-2",
)
SEED = 0
SECTION_TITLE = "## MOT evaluation speed (issue 8)"


def _result_sets(data_root: Path) -> tuple[dict, dict, dict[str, dict[str, np.ndarray]]]:
    """Ground-truth files, lengths, and the two result sets as rows."""
    rng = np.random.default_rng(SEED)
    gt_files, lengths = {}, {}
    perfect, noisy = {}, {}
    for seq in MOT15_TEXT:
        folder = data_root / "mot" / "MOT15-text" / seq
        gt_files[seq] = folder / "gt" / "gt.txt"
        lengths[seq] = read_seqinfo(folder).length
        gt_rows = np.loadtxt(gt_files[seq], delimiter=",")
        kept = gt_rows[gt_rows[:, 6] != 0]
        perfect[seq] = np.column_stack([kept[:, :6], np.tile([1, -1, -1, -1], (len(kept), 1))])
        noisy[seq] = noisy_copy(gt_rows, rng)
    return gt_files, lengths, {"gt as results": perfect, "noisy copy": noisy}


def _time(function, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds of this process (worker processes' CPU is not included)."""
    wall, cpu, value = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu, value


def _assert_equal(ours, theirs) -> None:
    for seq in [*ours.per_sequence, "COMBINED_SEQ"]:
        mine = ours.combined if seq == "COMBINED_SEQ" else ours.per_sequence[seq]
        for metric, fields in theirs[seq].items():
            for name, value in fields.items():
                if name != "Frames":
                    np.testing.assert_array_equal(mine[metric][name], value, err_msg=name)


def run(data_root: Path, repeats: int) -> str:
    gt_files, lengths, result_sets = _result_sets(data_root)
    frames = sum(lengths.values())
    load_start = os.getloadavg()
    lines = [
        SECTION_TITLE,
        "",
        f"`python benchmarks/mot_eval_speed.py --repeats {repeats}`, "
        f"{time.strftime('%Y-%m-%d')}. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}, "
        f"TrackEval {version('trackeval')}; load average at start "
        f"{', '.join(f'{v:.1f}' for v in load_start)} (shared machine).",
        f"Eight MOT15-text sequences, {frames} frames, "
        f"{sum(len(np.loadtxt(f, delimiter=',')) for f in gt_files.values())} ground-truth boxes; "
        "HOTA + CLEAR + Identity, result files read from disk; wall seconds, best / median of "
        f"{repeats}; CPU seconds of the (single) process, best of {repeats}, which a loaded "
        "machine disturbs less.",
        "",
        "| results | boxes | HOTA | IDF1 | MOTA | ours, 1 process | ours, 2 processes "
        "| TrackEval pipeline | ours CPU s | TrackEval CPU s | TrackEval / ours (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, rows in result_sets.items():
            folder = Path(tmp) / label.replace(" ", "_")
            files = {seq: write_rows(folder / f"{seq}.txt", r) for seq, r in rows.items()}

            def ours(workers: int):
                return evaluate_mot(files, gt_files, lengths, workers=workers)

            def theirs():
                with contextlib.redirect_stdout(io.StringIO()):
                    return run_trackeval(folder / "trackeval", gt_files, rows, lengths, "MOT15")

            times_1, cpu_1, evaluation = _time(lambda: ours(1), repeats)
            times_2, _, _ = _time(lambda: ours(2), repeats)
            times_te, cpu_te, reference = _time(theirs, repeats)
            _assert_equal(evaluation, reference)
            row = evaluation.row()

            def cell(times):
                return f"{min(times):.2f} / {statistics.median(times):.2f}"

            lines.append(
                f"| {label} | {sum(len(r) for r in rows.values())} | {100 * row['HOTA']:.2f} | "
                f"{100 * row['IDF1']:.2f} | {100 * row['MOTA']:.2f} | {cell(times_1)} | "
                f"{cell(times_2)} | {cell(times_te)} | {min(cpu_1):.2f} | {min(cpu_te):.2f} | "
                f"{min(cpu_te) / min(cpu_1):.2f}x |"
            )
            print(f"{label}: done", file=sys.stderr, flush=True)
    lines += [
        "",
        "Scores are identical to TrackEval's, field by field, for every sequence and combined "
        f"(checked in the run). Load average at the end "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the Markdown section to this file")
    args = parser.parse_args()
    if not (args.data_root / "mot" / "MOT15-text").is_dir():
        sys.exit(f"error: MOT15-text not found under {args.data_root} (set REIDSORT_SHARED_DATA)")
    section = run(args.data_root, max(1, args.repeats))
    print(section)
    if args.markdown:
        atomic_write_text(args.markdown, section)


if __name__ == "__main__":
    main()
