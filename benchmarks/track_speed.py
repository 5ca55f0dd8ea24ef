"""End-to-end speed of ``task=track`` on real footage: TUD-Stadtmitte (179 frames, 640x480) with
the YOLOX-Nano ONNX detector and an OSNet-x0.25 ONNX embedder, online and offline.

Reported per run: frames per second, milliseconds per frame in each stage (decode, detect, embed,
track, draw, write) and the share of wall time spent *outside* model inference, i.e. when
neither the detector's nor the embedder's ONNX Runtime ``session.run`` is running (the union of
their intervals: with the pipeline they run at the same time; the goal is <= 10%): that share is
the application's work around the models (JPEG decoding, letterboxing, crop preprocessing, NMS,
the tracker, drawing, video encoding, bookkeeping) that the models do not hide.

The embedder is OSNet-x0.25 with random weights, exported with the project's own ONNX export
(``reidsort.export.onnx.export_onnx``): its speed does not depend on the weights. Features and
detections are computed fresh (no cache). Runs are in one process, one after another, so their
ratios are comparable; the machine's load average is printed with them.

    python benchmarks/track_speed.py                       # all eight runs, 3 repeats
    python benchmarks/track_speed.py --markdown out.md     # also write the Markdown section
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = Path(os.environ.get("REIDSORT_SHARED_DATA",
                                        REPO_ROOT.parent / "shared" / "data"))
SEQUENCE = "TUD-Stadtmitte"
#: OSNet's usual Re-ID input (height, width).
EMBEDDER_INPUT_HW = (256, 128)
#: (mode, write the annotated video, detect/embed/track threads, frames decoded ahead by the
#: reader thread); shipped: pipeline on, 4 frames ahead
RUNS = (("online", True, True, 4), ("offline", True, True, 4),
        ("online", False, True, 4), ("offline", False, True, 4),
        ("online", True, False, 4), ("offline", True, False, 4),
        ("online", False, False, 4), ("offline", False, False, 4))
STAGE_COLUMNS = ("decode", "detect", "embed", "track", "draw", "write")


class TimedSession:
    """Wraps an ONNX Runtime session and records when each ``run`` started and ended."""

    def __init__(self, session) -> None:
        self._session = session
        self.intervals: list[tuple[float, float]] = []

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.intervals)

    def run(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            self.intervals.append((start, time.perf_counter()))


def covered_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of the intervals: time during which at least one model ran (with
    the pipeline the detector and the embedder run at the same time)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total

    def __getattr__(self, name):
        return getattr(self._session, name)


def export_embedder(folder: Path) -> Path:
    import torch

    from reidsort.export.onnx import export_onnx
    from reidsort.reid.backbones import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone("osnet_x0_25").eval()
    return export_onnx(backbone, folder / "osnet_x0_25.onnx", image_size=EMBEDDER_INPUT_HW,
                       exporter="legacy")


def one_run(source, detector_path: Path, embedder_path: Path, mode: str, video: bool,
            prefetch: int, pipeline: bool, out_dir: Path, threads: int | None) -> dict:
    import numpy as np

    from reidsort.detection import YoloOnnxDetector
    from reidsort.embedders.onnx import OnnxEmbedder
    from reidsort.pipeline import Lazy, RunOptions, track_source
    from reidsort.tracking import DeepSortTracker

    detector = YoloOnnxDetector(detector_path, threads=threads)
    embedder = OnnxEmbedder(embedder_path, num_threads=threads)  # as shipped: no spinning
    embedder.embed_crops([np.zeros((128, 64, 3), np.uint8)] * 8)  # warm-up, untimed
    detector.session = TimedSession(detector.session)
    embedder.session = TimedSession(embedder.session)
    result = track_source(
        source, Lazy(lambda: detector), Lazy(lambda: embedder),
        DeepSortTracker(min_confidence=0.3), out_dir,
        RunOptions(mode=mode, video=video, prefetch=prefetch, pipeline=pipeline,
                   progress=False),
    )
    timing = result.timing
    inference = covered_seconds(detector.session.intervals + embedder.session.intervals)
    stages = timing.seconds
    return {
        "mode": mode, "video": video, "prefetch": prefetch, "pipeline": pipeline,
        "frames": timing.frames, "fps": timing.fps,
        "wall": timing.wall_seconds, "detections": result.detections,
        "ms": {s: 1000 * stages.get(s, 0.0) / timing.frames for s in STAGE_COLUMNS},
        "detector_inference_ms": 1000 * detector.session.seconds / timing.frames,
        "embedder_inference_ms": 1000 * embedder.session.seconds / timing.frames,
        "outside_inference": 1 - inference / timing.wall_seconds,
    }


def markdown(rows: list[dict], load_before: str, load_after: str, threads,
             repeats: int) -> str:
    lines = [
        "## Tracking application speed (issue 7)",
        "",
        f"`python benchmarks/track_speed.py`: {SEQUENCE} (179 frames, 640x480, real "
        "pedestrians), YOLOX-Nano ONNX (416x416) + OSNet-x0.25 ONNX (256x128, random weights, "
        "exported with `reidsort.export`), ONNX Runtime on the CPU "
        f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"intra-op threads: {threads or 'default'}), no cache; each row is the median-FPS "
        f"run of {repeats} interleaved repeats. "
        f"Load average before / after: {load_before} / {load_after} (shared, noisy machine: "
        "compare the runs with each other).",
        "",
        "| mode | video | pipeline | frames read ahead | FPS | decode | detect (model) "
        "| embed (model) | track | draw | write | outside model inference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = r["ms"]
        lines.append(
            f"| {r['mode']} | {'yes' if r['video'] else 'no'} "
            f"| {'yes' if r['pipeline'] else 'no'} | {r['prefetch']} "
            f"| {r['fps']:.1f} "
            f"| {ms['decode']:.1f} | {ms['detect']:.1f} ({r['detector_inference_ms']:.1f}) "
            f"| {ms['embed']:.1f} ({r['embedder_inference_ms']:.1f}) | {ms['track']:.1f} "
            f"| {ms['draw']:.1f} | {ms['write']:.1f} | {100 * r['outside_inference']:.1f}% |")
    lines += ["", "Stage columns are milliseconds per frame; (model) is the part spent inside "
              "ONNX Runtime's `session.run`; decode is the time spent waiting for the next "
              "frame (with a reader thread, the decoding the models did not hide). Both "
              "sessions as shipped: ORT threads do not spin (`allow_spinning=false`).",
              ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads for both models (default: ORT's)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per configuration, interleaved; the median-FPS run is shown")
    parser.add_argument("--markdown", type=Path, default=None, help="write the section here")
    args = parser.parse_args()

    from reidsort.video.sources import MotSequenceSource

    source = MotSequenceSource(args.data_root / "mot" / SEQUENCE)
    detector_path = args.data_root / "models" / "yolox_nano.onnx"
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    runs: dict[int, list[dict]] = {k: [] for k in range(len(RUNS))}
    with tempfile.TemporaryDirectory() as tmp:
        embedder_path = export_embedder(Path(tmp))
        # interleaved (A B C ... A B C ...) so a change of machine load hits every configuration
        for repeat in range(args.repeats):
            for k, (mode, video, pipeline, prefetch) in enumerate(RUNS):
                row = one_run(source, detector_path, embedder_path, mode, video, prefetch,
                              pipeline, Path(tmp) / f"run{k}-{repeat}", args.threads)
                runs[k].append(row)
                print(f"{mode:<8} video={str(video):<5} pipeline={str(pipeline):<5} "
                      f"prefetch={prefetch} "
                      f"{row['fps']:5.1f} FPS  outside inference "
                      f"{100 * row['outside_inference']:4.1f}%  "
                      + "  ".join(f"{s} {row['ms'][s]:.1f}" for s in STAGE_COLUMNS),
                      flush=True)
    rows = [sorted(runs[k], key=lambda r: r["fps"])[len(runs[k]) // 2] for k in runs]
    load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    text = markdown(rows, load_before, load_after, args.threads, args.repeats)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
