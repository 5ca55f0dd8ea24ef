"""Tracker-only speed of reidsort's ByteTrack / OC-SORT / BoT-SORT next to BoxMOT's same trackers.

One worker process times both implementations on the same preloaded inputs: the detections of
every frame of the 7 MOT17-trainhalf sequences (2,657 frames, YOLOX-X boxes with the full score
range, ~37 boxes a frame) as (n, 6) arrays in memory, the same parameters as
``benchmarks/tracker_parity.py`` (imported from there). BoT-SORT runs twice: with the gmc.txt
camera warps (ours: ``update(..., warp=W)``; BoxMOT: its CMC estimator replaced by one that
returns the same warp, see ``tracker_parity.FileWarpCMC``), and without camera motion. BoxMOT gets a preallocated black image of the
sequence's size with every ``update`` (its API takes the frame; with CMC replaced only the
shape is read). What is timed is ``update`` alone, summed over frames; a fresh tracker per
sequence (construction not timed). Each repeat runs ours, then BoxMOT, on all sequences; the
best total of ``--repeats`` is kept for each.

The worker runs in the interpreter that has boxmot (``--boxmot-python``, default
``$REIDSORT_BOXMOT_PYTHON`` or ``../venv-boxmot/bin/python``: a venv with
``--system-site-packages`` that sees reidsort's editable install; boxmot is never installed into
the project's environment). Without it only our trackers are timed. As in
``benchmarks/tracker_speed.py``, each BLAS setting is a fresh process with the environment set
before NumPy is imported: BLAS pinned to one thread, and the library defaults.

    python benchmarks/tracker_family_speed.py
    python benchmarks/tracker_family_speed.py --trackers bytetrack --repeats 1 --max-frames 100
    python benchmarks/tracker_family_speed.py --markdown /tmp/speed.md --json /tmp/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
)
#: issue 16: each of ours at least this many times BoxMOT's frames per second
TARGET_SPEEDUP = 5.0


def _parity():
    """benchmarks/tracker_parity.py: parameters, inputs, tracker factories (one source)."""
    sys.path.insert(0, str(BENCHMARKS))
    import tracker_parity

    return tracker_parity


def _time_sequences(make, sequences, impl: str, np) -> tuple[float, int]:
    """Seconds in ``update`` over all sequences, and rows output (a sanity count)."""
    total, rows = 0.0, 0
    for frames, info, warps in sequences:
        instance, file_cmc = make(info)
        if impl == "boxmot":
            image = np.zeros((info.height, info.width, 3), dtype=np.uint8)
            if file_cmc is not None:
                tick = time.perf_counter()
                for frame, dets in frames:
                    file_cmc.current = warps[frame - 1]
                    rows += len(instance.update(dets, image))
                total += time.perf_counter() - tick
            else:
                tick = time.perf_counter()
                for _, dets in frames:
                    rows += len(instance.update(dets, image))
                total += time.perf_counter() - tick
        elif warps is not None:
            tick = time.perf_counter()
            for frame, dets in frames:
                rows += len(instance.update(dets, None, warp=warps[frame - 1]))
            total += time.perf_counter() - tick
        else:
            tick = time.perf_counter()
            for _, dets in frames:
                rows += len(instance.update(dets))
            total += time.perf_counter() - tick
    return total, rows


def worker(args) -> dict:
    import numpy as np

    parity = _parity()
    parity._src_path()
    have_boxmot = True
    try:
        import boxmot  # noqa: F401
    except ImportError:
        have_boxmot = False
    if have_boxmot:
        parity._quiet_boxmot()
    dataset = parity.DATASETS["mot17"]
    sequences = []
    for name in dataset.sequences:
        seq = parity.load_sequence(args.data_root, dataset, name)
        frames = seq.frames[: args.max_frames] if args.max_frames else seq.frames
        sequences.append((frames, seq.info, seq.warps))
    report = {"frames": sum(len(s[0]) for s in sequences), "trackers": {}}
    # BoT-SORT with the gmc.txt warps (its MOT17 setting) and without camera motion (the
    # tracker core alone: BoxMOT's own warp of the track states is costly)
    runs = [
        (tracker, cmc)
        for tracker in args.trackers
        for cmc in (("file", "none") if tracker == "botsort" else ("none",))
    ]
    for tracker, cmc in runs:
        seqs = [(f, i, w if cmc == "file" else None) for f, i, w in sequences]
        entry = {"tracker": tracker, "cmc": cmc}
        ours_cls = parity.load_ours(tracker)

        def make_ours(info, tracker=tracker):
            return parity.make_ours(tracker, round(info.frame_rate)), None

        def make_boxmot(info, tracker=tracker, cmc=cmc):
            return parity.make_boxmot(tracker, round(info.frame_rate), cmc)

        for repeat in range(args.repeats):
            for impl, make, present in (
                ("ours", make_ours, ours_cls is not None),
                ("boxmot", make_boxmot, have_boxmot),
            ):
                if not present:
                    continue
                seconds, rows = _time_sequences(make, seqs, impl, np)
                best = entry.get(f"{impl}_s")
                entry[f"{impl}_s"] = seconds if best is None else min(best, seconds)
                entry[f"{impl}_rows"] = rows
        name = f"{tracker} (cmc={cmc})" if tracker == "botsort" else tracker
        report["trackers"][name] = entry
        print(f"  {name}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    return report


def _spawn(python: str, blas: str, args) -> dict:
    env = dict(os.environ)
    if blas == "pinned":
        env.update({name: "1" for name in BLAS_THREAD_VARIABLES})
    else:
        for name in BLAS_THREAD_VARIABLES:
            env.pop(name, None)
    command = [
        python,
        __file__,
        "--worker",
        "--data-root",
        str(args.data_root),
        "--repeats",
        str(args.repeats),
        "--trackers",
        *args.trackers,
    ]
    if args.max_frames:
        command += ["--max-frames", str(args.max_frames)]
    print(f"[BLAS {blas}] {python} ...", file=sys.stderr, flush=True)
    completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(completed.stdout)


def _machine(python: str) -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    code = (
        "import importlib.metadata as m\n"
        "for p in ('numpy', 'scipy', 'boxmot', 'lapx'):\n"
        "    try: print(p, m.version(p))\n"
        "    except Exception: print(p, 'absent')\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    versions = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
        "load_average_at_start": list(os.getloadavg()),
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        (
            f"`python benchmarks/tracker_family_speed.py` (repeats {results['repeats']}), "
            f"{results['date']}. Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"NumPy {m.get('numpy')}, SciPy {m.get('scipy')}, BoxMOT {m.get('boxmot')} "
            f"(lapx {m.get('lapx')}); load average at start "
            f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'])}."
        ),
        (
            "Tracker-only frames per second (update alone, inputs preloaded), MOT17-trainhalf "
            "all 7 sequences, parity parameters; BoT-SORT with the gmc.txt warps on both sides "
            "(cmc=file) and without camera motion (cmc=none)."
        ),
        "",
    ]
    for blas, report in results["speed"].items():
        lines += [
            f"#### BLAS {blas}",
            "",
            "| tracker | frames | ours fps | BoxMOT fps | speed-up | >= 5x | rows ours / BoxMOT |",
            "|---|---:|---:|---:|---:|:---:|---:|",
        ]
        frames = report["frames"]
        for tracker, e in report["trackers"].items():
            ours = frames / e["ours_s"] if "ours_s" in e else None
            theirs = frames / e["boxmot_s"] if "boxmot_s" in e else None
            speedup = ours / theirs if ours and theirs else None
            lines.append(
                f"| {tracker} | {frames} | {f'{ours:.0f}' if ours else 'n/a'} | "
                f"{f'{theirs:.0f}' if theirs else 'n/a'} | "
                f"{f'{speedup:.1f}x' if speedup else 'n/a'} | "
                f"{'n/a' if speedup is None else ('yes' if speedup >= TARGET_SPEEDUP else 'NO')}"
                f" | {e.get('ours_rows', 'n/a')} / {e.get('boxmot_rows', 'n/a')} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parity = _parity()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=parity.DEFAULT_DATA_ROOT)
    parser.add_argument(
        "--trackers", nargs="+", choices=tuple(parity.TRACKERS), default=list(parity.TRACKERS)
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (each side)")
    parser.add_argument("--max-frames", type=int, default=None, help="cap each sequence")
    parser.add_argument("--blas", choices=("pinned", "default", "both"), default="both")
    parser.add_argument("--boxmot-python", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    python = parity.boxmot_interpreter(args.boxmot_python)
    if python is None:
        print(
            f"boxmot not found ({parity.DEFAULT_BOXMOT_PYTHON}): timing ours alone", file=sys.stderr
        )
        python = sys.executable
    results = {
        "machine": _machine(python),
        "repeats": args.repeats,
        "date": time.strftime("%Y-%m-%d"),
        "speed": {},
    }
    for blas in ("pinned", "default") if args.blas == "both" else (args.blas,):
        label = "pinned to 1 thread" if blas == "pinned" else "library default threads"
        results["speed"][label] = _spawn(python, blas, args)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
