"""Tracker-only speed of reidsort's DeepSORT next to deep-sort-realtime's; memory over a long run.

What is timed is ``update`` alone, with every input preloaded: our ``DeepSortTracker.update``
(which includes its confidence filter and NMS) against ``predict() + update()`` of
deep-sort-realtime's core ``Tracker`` fed ``Detection`` objects that were filtered and NMS-ed
beforehand (outside the timing), exactly as nwojke's ``deep_sort_app.py`` drives it. Both get the
same detections and the same seeded random embeddings, and the confirmed track ids they report
are checked to be identical frame by frame.

Workloads: the eight MOT15-text sequences (their ``det.txt``, 512-d random embeddings) and a
synthetic stream of 50 detections per frame (moving boxes, per-object embeddings plus noise, so
appearance matching is exercised). A separate run feeds 100,000 synthetic frames to our tracker
alone and samples its resident memory.

``--embeddings histogram`` times real appearance instead (issue 16): TUD-Campus and
TUD-Stadtmitte (the sequences with images), every detection embedded beforehand with reidsort's
colour-histogram embedder (``reidsort.embedders.histogram.HistogramEmbedder``, 768-d HSV stripe
histograms of the crops, L2-normalised), so the gallery distances are those of real crops; the
synthetic stream and the memory run are skipped, and the section title differs.

Tiny matrix products through multi-threaded OpenBLAS can become dramatically slower when another
process holds the other cores, so every speed run is done twice, in fresh processes: with BLAS
pinned to one thread (``OPENBLAS_NUM_THREADS=1`` etc., set before NumPy is imported) and with
the library defaults.

    python benchmarks/tracker_speed.py                 # full run (~15 min on 2 cores)
    python benchmarks/tracker_speed.py --quick                          # a smoke run
    python benchmarks/tracker_speed.py --results-md benchmarks/RESULTS.md   # + our section
    python benchmarks/tracker_speed.py --embeddings histogram --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = Path(
    os.environ.get("REIDSORT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
)
SECTION_TITLE = "## Tracker speed (issue 3)"
HISTOGRAM_SECTION_TITLE = "## Tracker speed with colour-histogram embeddings (issue 16)"
HISTOGRAM_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
SYNTHETIC_DETECTIONS = 50


# --------------------------------------------------------------------------------------------
# Worker side (runs in a fresh process with the BLAS environment already set)
# --------------------------------------------------------------------------------------------
def _worker_imports():
    sys.path.insert(0, str(REPO_ROOT / "src"))
    import numpy as np

    from reidsort.tracking import DeepSortTracker, read_mot_detections

    return np, DeepSortTracker, read_mot_detections


class SyntheticStream:
    """Seeded synthetic frames with exactly ``detections`` rows each (NumPy only, no state growth).

    ``objects`` boxes move at constant velocity with jitter in a 1920x1080 image; each has an
    identity vector, and its detection's embedding is that vector plus noise (cosine distance
    ~0.1 between views, below the 0.2 threshold). Objects leave (edge or end of life) and are
    replaced by new identities; about 5% of rows are clutter with random boxes and embeddings.
    """

    def __init__(self, np, seed: int, dim: int, detections: int = SYNTHETIC_DETECTIONS):
        self.np = np
        self.rng = np.random.default_rng(seed)
        self.dim, self.detections = dim, detections
        self.objects = detections - max(1, detections // 20)
        count = self.objects
        self.centre = np.zeros((count, 2))
        self.velocity = np.zeros((count, 2))
        self.size = np.zeros((count, 2))
        self.identity = np.zeros((count, dim), dtype=np.float32)
        self.life = np.zeros(count, dtype=np.int64)
        self._respawn(np.ones(count, dtype=bool))

    def _respawn(self, mask) -> None:
        np, rng, count = self.np, self.rng, int(mask.sum())
        self.centre[mask] = rng.uniform([100, 150], [1820, 930], (count, 2))
        self.velocity[mask] = rng.normal(0, 3, (count, 2))
        height = rng.uniform(80, 260, count)
        self.size[mask] = np.column_stack([height * rng.uniform(0.35, 0.5, count), height])
        identity = rng.standard_normal((count, self.dim)).astype(np.float32)
        self.identity[mask] = identity / np.linalg.norm(identity, axis=1, keepdims=True)
        self.life[mask] = rng.integers(100, 600, count)

    def next_frame(self):
        np, rng = self.np, self.rng
        self.centre += self.velocity + rng.normal(0, 1.0, self.centre.shape)
        self.life -= 1
        gone = (
            (self.life <= 0)
            | (self.centre < 0).any(axis=1)
            | (self.centre > [1920, 1080]).any(axis=1)
        )
        if gone.any():
            self._respawn(gone)
        clutter = self.detections - self.objects
        centre = np.concatenate([self.centre, rng.uniform([0, 0], [1920, 1080], (clutter, 2))])
        size = np.concatenate([self.size, rng.uniform([20, 50], [120, 300], (clutter, 2))])
        size *= rng.normal(1.0, 0.03, size.shape)
        dets = np.empty((self.detections, 6))
        dets[:, 0:2] = centre - size / 2
        dets[:, 2:4] = centre + size / 2
        dets[:, 4] = rng.uniform(0.85, 1.0, self.detections)
        dets[:, 5] = 0
        noise = rng.standard_normal((self.detections, self.dim)).astype(np.float32) * (
            0.45 / np.sqrt(self.dim)
        )
        embeddings = (
            np.concatenate(
                [
                    self.identity,
                    rng.standard_normal((clutter, self.dim)).astype(np.float32) / np.sqrt(self.dim),
                ]
            )
            + noise
        )
        order = rng.permutation(self.detections)  # detectors do not list objects in a fixed order
        return dets[order], embeddings[order].astype(np.float32)


def _reference():
    """The fidelity tests' reference helpers and settings (sequence names, the reference
    configuration, deep_sort_app.py preprocessing); imported in the worker, after the BLAS
    environment is set."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "tracking"))
    import deepsort_reference

    return deepsort_reference


def _reference_inputs(np, dets, embeddings):
    """deep_sort_app.py preprocessing for the reference, shared with the fidelity tests."""
    reference = _reference()
    return reference.reference_frame_input(dets, embeddings, reference.REFERENCE_CONFIG)


def _run_ours(DeepSortTracker, frames, repeats):
    config = _reference().REFERENCE_CONFIG
    best, outputs = float("inf"), None
    for _ in range(repeats):
        tracker = DeepSortTracker(**config)
        results = []
        start = time.perf_counter()
        for dets, embeddings in frames:
            results.append(tracker.update(dets, embeddings))
        best = min(best, time.perf_counter() - start)
        outputs = results
    return best, outputs


def _run_reference(np, frames):
    from deep_sort_realtime.deep_sort.nn_matching import NearestNeighborDistanceMetric
    from deep_sort_realtime.deep_sort.tracker import Tracker

    config = _reference().REFERENCE_CONFIG
    tracker = Tracker(
        NearestNeighborDistanceMetric(config["metric"], config["max_dist"], config["nn_budget"]),
        max_iou_distance=config["max_iou_distance"],
        max_age=config["max_age"],
        n_init=config["n_init"],
    )
    reported = []
    start = time.perf_counter()
    for detections in frames:
        tracker.predict()
        tracker.update(detections)
        reported.append(
            [
                (int(t.track_id), t.to_ltrb())
                for t in tracker.tracks
                if t.is_confirmed() and t.time_since_update == 0
            ]
        )
    return time.perf_counter() - start, reported


def _same_output(np, ours, reference) -> tuple[bool, str]:
    for frame, (mine, theirs) in enumerate(zip(ours, reference), start=1):
        theirs = sorted(theirs, key=lambda item: item[0])
        mine = mine[np.argsort(mine[:, 4])]
        if mine[:, 4].astype(int).tolist() != [tid for tid, _ in theirs]:
            return (
                False,
                f"frame {frame}: ids {mine[:, 4].astype(int).tolist()} vs {[t for t, _ in theirs]}",
            )
        if len(theirs) and not np.allclose(
            mine[:, :4], np.array([box for _, box in theirs]), atol=1e-3
        ):
            return False, f"frame {frame}: boxes differ"
    return True, ""


def _random_workloads(np, args, read_mot_detections):
    """MOT15-text: (name, [(dets, seeded random embeddings)] per frame) per sequence."""
    for index, name in enumerate(_reference().MOT15_TEXT_NAMES):
        detections = read_mot_detections(
            args.data_root / "mot" / "MOT15-text" / name / "det" / "det.txt"
        )
        last = (
            detections.last_frame
            if args.max_frames is None
            else min(args.max_frames, detections.last_frame)
        )
        embeddings = (
            np.random.default_rng(index)
            .standard_normal((len(detections), args.dim))
            .astype(np.float32)
        )
        yield (
            name,
            [(dets, embeddings[rows]) for _, dets, rows in detections.iter_frames(last_frame=last)],
        )


def _histogram_workloads(np, args, read_mot_detections):
    """TUD: (name, [(dets, colour-histogram embeddings of the crops)] per frame), embedded here,
    before any timing, from the sequence's images."""
    import cv2

    from reidsort.embedders.histogram import HistogramEmbedder
    from reidsort.tracking.mot_io import read_seqinfo

    embedder = HistogramEmbedder()
    for name in HISTOGRAM_SEQUENCES:
        folder = args.data_root / "mot" / name
        info = read_seqinfo(folder / "seqinfo.ini")
        detections = read_mot_detections(folder / "det" / "det.txt")
        last = info.length if args.max_frames is None else min(args.max_frames, info.length)
        frames = []
        for frame, dets, _ in detections.iter_frames(last_frame=last):
            image_path = folder / info.image_dir / f"{frame:06d}{info.image_ext}"
            image = cv2.imread(str(image_path))
            if image is None:
                raise FileNotFoundError(f"cannot read {image_path}")
            frames.append((dets, embedder.embed(image, dets[:, :4]).astype(np.float32)))
        yield name, frames


def worker_speed(args) -> dict:
    np, DeepSortTracker, read_mot_detections = _worker_imports()
    report = {"mot15": [], "synthetic": None}
    workloads = (_histogram_workloads if args.embeddings == "histogram" else _random_workloads)(
        np, args, read_mot_detections
    )
    for name, frames in workloads:
        ours_time, ours_out = _run_ours(DeepSortTracker, frames, args.repeats)
        entry = {"sequence": name, "frames": len(frames), "ours_s": ours_time}
        if not args.skip_reference:
            reference_frames = [_reference_inputs(np, dets, emb) for dets, emb in frames]
            # the TUD workloads take the reference well under a second: best of as many
            # passes as ours there (a Detection list is read-only to the Tracker)
            passes = args.repeats if args.embeddings == "histogram" else 1
            ref_time, ref_out = min(
                (_run_reference(np, reference_frames) for _ in range(passes)),
                key=lambda timed: timed[0],
            )
            identical, why = _same_output(np, ours_out, ref_out)
            entry.update(reference_s=ref_time, identical=identical, difference=why)
        report["mot15"].append(entry)
        print(f"  {name}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    if args.embeddings == "histogram":
        report["dim"] = int(frames[0][1].shape[1]) if frames else None
        return report

    stream = SyntheticStream(np, seed=0, dim=args.dim)
    frames = [stream.next_frame() for _ in range(args.synthetic_frames)]
    ours_time, ours_out = _run_ours(DeepSortTracker, frames, args.repeats)
    entry = {"frames": len(frames), "ours_s": ours_time}
    if not args.skip_reference:
        reference_frames = [_reference_inputs(np, dets, emb) for dets, emb in frames]
        ref_time, ref_out = _run_reference(np, reference_frames)
        identical, why = _same_output(np, ours_out, ref_out)
        entry.update(reference_s=ref_time, identical=identical, difference=why)
    report["synthetic"] = entry
    print(f"  synthetic: {json.dumps(entry)}", file=sys.stderr, flush=True)
    return report


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker_memory(args) -> dict:
    np, DeepSortTracker, _ = _worker_imports()
    stream = SyntheticStream(np, seed=1, dim=args.dim)
    tracker = DeepSortTracker(**_reference().REFERENCE_CONFIG)
    checkpoints = []
    step = max(1, args.memory_frames // 10)
    start = time.perf_counter()
    update_time = 0.0
    for frame in range(1, args.memory_frames + 1):
        dets, embeddings = stream.next_frame()
        tick = time.perf_counter()
        tracker.update(dets, embeddings)
        update_time += time.perf_counter() - tick
        if frame % step == 0:
            checkpoints.append(
                {
                    "frame": frame,
                    "rss_mib": round(_rss_mib(), 1),
                    "tracks": tracker.num_tracks,
                    "gallery_slots": tracker.gallery.slot_capacity,
                    "gallery_mib": round(tracker.gallery.nbytes / 2**20, 1),
                    "next_id": int(tracker._next_id),
                }
            )
            print(f"  memory: {json.dumps(checkpoints[-1])}", file=sys.stderr, flush=True)
    return {
        "frames": args.memory_frames,
        "checkpoints": checkpoints,
        "update_s": update_time,
        "wall_s": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------
def _machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "scipy", "deep_sort_realtime"):
        try:
            versions[package] = __import__(package).__version__
        except Exception:  # noqa: BLE001 - report what is there
            versions[package] = "absent"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
        "load_average_at_start": list(os.getloadavg()),
    }


def _spawn(mode: str, blas: str, args, max_frames=None, synthetic_frames=None) -> dict:
    env = dict(os.environ)
    if blas == "pinned":
        env.update({name: "1" for name in BLAS_THREAD_VARIABLES})
    else:
        for name in BLAS_THREAD_VARIABLES:
            env.pop(name, None)
    command = [
        sys.executable,
        __file__,
        "--worker",
        mode,
        "--data-root",
        str(args.data_root),
        "--dim",
        str(args.dim),
        "--synthetic-frames",
        str(synthetic_frames or args.synthetic_frames),
        "--memory-frames",
        str(args.memory_frames),
        "--repeats",
        str(args.repeats),
        "--embeddings",
        args.embeddings,
    ]
    max_frames = max_frames or args.max_frames
    if max_frames is not None:
        command += ["--max-frames", str(max_frames)]
    if args.skip_reference:
        command.append("--skip-reference")
    print(f"[{mode}, BLAS {blas}] running ...", file=sys.stderr, flush=True)
    completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(completed.stdout)


def _fps(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else float("inf")


def markdown(results: dict) -> str:
    machine = results["machine"]
    histogram = results.get("embeddings") == "histogram"
    embeddings = (
        f"{results['dim']}-d colour-histogram embeddings of the detection crops "
        "(reidsort HistogramEmbedder, computed before the timing), "
        if histogram
        else f"{results['dim']}-d seeded random embeddings, "
    )
    total_label = (
        f"TUD, both ({' + '.join(HISTOGRAM_SEQUENCES)})" if histogram else "MOT15-text, all 8"
    )
    lines = [
        HISTOGRAM_SECTION_TITLE if histogram else SECTION_TITLE,
        "",
        f"`python benchmarks/tracker_speed.py` ({results['command']}), one run, {results['date']}.",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, NumPy "
        f"{machine['numpy']}, SciPy {machine['scipy']}, "
        f"deep-sort-realtime {machine['deep_sort_realtime']}; "
        f"load average at start {', '.join(f'{x:.1f}' for x in machine['load_average_at_start'])} "
        "(other jobs shared the machine).",
        "Tracker-only frames per second, inputs preloaded, "
        f"{embeddings}"
        'reference configuration (min_confidence 0.8, nn_budget 100, max_age 30). "ref" is '
        "deep-sort-realtime's core `Tracker` (predict + update) on the same, pre-filtered "
        "detections.",
        "",
    ]
    for blas, speed in results["speed"].items():
        lines += [
            f"### BLAS {blas}",
            "",
            "| workload | frames | ours fps | ref fps | speed-up | identical ids |",
            "|---|---:|---:|---:|---:|:---:|",
        ]
        total_frames = total_ours = total_ref = 0.0
        rows = [(e["sequence"], e) for e in speed["mot15"]]
        if speed.get("synthetic"):
            rows.append(("synthetic, 50 dets/frame", speed["synthetic"]))
        for name, entry in rows:
            ref = entry.get("reference_s")
            speedup = f"{ref / entry['ours_s']:.1f}x" if ref else "n/a"
            ref_fps = f"{_fps(entry['frames'], ref):.0f}" if ref else "n/a"
            same = {True: "yes", False: "NO"}.get(entry.get("identical"), "n/a")
            lines.append(
                f"| {name} | {entry['frames']} | {_fps(entry['frames'], entry['ours_s']):.0f} | "
                f"{ref_fps} | {speedup} | {same} |"
            )
            if name != "synthetic, 50 dets/frame":
                total_frames += entry["frames"]
                total_ours += entry["ours_s"]
                total_ref += ref or 0.0
        if total_ref:
            lines.insert(
                len(lines) - (1 if speed.get("synthetic") else 0),
                f"| **{total_label}** | {int(total_frames)} | "
                f"{_fps(total_frames, total_ours):.0f} | {_fps(total_frames, total_ref):.0f} | "
                f"{total_ref / total_ours:.1f}x | |",
            )
        lines.append("")
    memory = results.get("memory")
    if memory:
        rss = [c["rss_mib"] for c in memory["checkpoints"]]
        lines += [
            f"### Memory over {memory['frames']:,} synthetic frames (ours, BLAS pinned)",
            "",
            "| frame | RSS MiB | live tracks | gallery slots | gallery MiB | ids issued |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {c['frame']:,} | {c['rss_mib']} | {c['tracks']} | {c['gallery_slots']} | "
            f"{c['gallery_mib']} | {c['next_id'] - 1:,} |"
            for c in memory["checkpoints"]
        ]
        lines += [
            "",
            "RSS range after the first checkpoint: "
            f"{min(rss[1:] or rss):.1f} to {max(rss):.1f} MiB "
            f"({_fps(memory['frames'], memory['update_s']):.0f} fps over the whole stream).",
            "",
        ]
    return "\n".join(lines)


def update_results_file(path: Path, section: str, title: str = SECTION_TITLE) -> None:
    sys.path.insert(0, str(REPO_ROOT / "src"))
    from reidsort.utils.io import atomic_write_text

    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text)
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    atomic_write_text(path, text.rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--synthetic-frames", type=int, default=1000)
    parser.add_argument("--memory-frames", type=int, default=100_000, help="0 skips the memory run")
    parser.add_argument("--max-frames", type=int, default=None, help="cap each MOT15-text sequence")
    parser.add_argument(
        "--repeats", type=int, default=3, help="our passes per workload (best kept)"
    )
    parser.add_argument("--default-max-frames", type=int, default=200, help="with default BLAS")
    parser.add_argument("--default-synthetic-frames", type=int, default=100, help="default BLAS")
    parser.add_argument("--blas", choices=("pinned", "default", "both"), default="both")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--embeddings",
        choices=("random", "histogram"),
        default="random",
        help="histogram: TUD crops embedded with the colour-histogram embedder (no memory run)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="100 frames per workload, 2,000 memory frames"
    )
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    parser.add_argument(
        "--results-md", type=Path, default=None, help="replace our section in this file"
    )
    parser.add_argument(
        "--worker", choices=("speed", "memory"), default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.max_frames, args.synthetic_frames, args.memory_frames, args.repeats = 100, 100, 2000, 1
        args.default_max_frames, args.default_synthetic_frames = 50, 20

    if args.worker == "speed":
        print(json.dumps(worker_speed(args)))
        return 0
    if args.worker == "memory":
        print(json.dumps(worker_memory(args)))
        return 0

    needed = (
        [f"mot/{name}/img1" for name in HISTOGRAM_SEQUENCES]
        if args.embeddings == "histogram"
        else ["mot/MOT15-text"]
    )
    for folder in needed:
        if not (args.data_root / folder).is_dir():
            parser.error(
                f"{folder} not found under {args.data_root} (set --data-root or "
                "REIDSORT_SHARED_DATA)"
            )
    if args.embeddings == "histogram":
        args.memory_frames = 0
    results = {
        "machine": _machine(),
        "dim": args.dim,
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(
            (["--quick"] if args.quick else [])
            + (["--embeddings histogram"] if args.embeddings == "histogram" else [])
        )
        or f"synthetic {args.synthetic_frames} frames, memory {args.memory_frames} frames",
        "speed": {},
        "embeddings": args.embeddings,
    }
    for blas in ("pinned", "default") if args.blas == "both" else (args.blas,):
        if blas == "pinned":
            results["speed"]["pinned to 1 thread"] = _spawn("speed", blas, args)
        else:
            # the reference is two orders of magnitude slower here: shorter workloads
            label = (
                f"library default threads (first {args.default_max_frames} frames per sequence, "
                f"{args.default_synthetic_frames} synthetic frames)"
                if args.embeddings == "random"
                else f"library default threads (first {args.default_max_frames} frames a sequence)"
            )
            results["speed"][label] = _spawn(
                "speed", blas, args, args.default_max_frames, args.default_synthetic_frames
            )
    if args.memory_frames > 0:
        results["memory"] = _spawn("memory", "pinned", args)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    if args.embeddings == "histogram":
        results["dim"] = next(iter(results["speed"].values())).get("dim")
    section = markdown(results)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.results_md:
        update_results_file(
            args.results_md,
            section,
            HISTOGRAM_SECTION_TITLE if args.embeddings == "histogram" else SECTION_TITLE,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
