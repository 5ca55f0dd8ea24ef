"""Embedder speed (crops/s): ONNX Runtime vs PyTorch eager, same network, same CPU, one run.

For each model (default osnet_x0_25 and osnet_x1_0 at 256x128) the script builds the inference
network (backbone + BNNeck + L2 norm), exports it with ``task=export``'s pipeline (torch.export
exporter, onnxslim, verification), and times both engines on the same pre-made float32 batches of
1, 8, 32 and 64 crops. Engine runs alternate round by round, so a noisy shared machine slows both
alike; each cell is the median of the rounds. Thread counts match (``--threads``: torch
``set_num_threads`` and ORT ``intra_op_num_threads``).

Then, at batch 32, a small tuning sweep: ORT graph optimisation level x threads, and the shared
preprocessing's own speed (crops of typical detector sizes to 256x128), which the tracker pays on
top of the model.

    python benchmarks/embedder_speed.py                      # the full table (~10 min, 2 cores)
    python benchmarks/embedder_speed.py --models osnet_x0_25 --batches 1 32 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from reidsort.data.preprocess import PreprocessSpec, preprocess_crops
from reidsort.export.model import EmbeddingNet
from reidsort.export.onnx import INPUT_NAME, export_onnx
from reidsort.reid.backbones import build_backbone

OPT_LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
#: Detector box sizes (height, width) in pixels for the preprocessing timing (MOT17-like).
CROP_SIZES = [(90, 40), (160, 64), (250, 100), (400, 160)]


def make_net(name: str) -> EmbeddingNet:
    torch.manual_seed(0)
    backbone = build_backbone(name)
    neck = torch.nn.BatchNorm1d(int(backbone.feature_dim))
    return EmbeddingNet(backbone, neck).eval()


def ort_session(path: Path, threads: int, level: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = OPT_LEVELS[level]
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_call(call, batch_size: int, min_seconds: float, min_calls: int) -> float:
    """Crops per second of ``call()`` after one warm-up call."""
    call()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        call()
        calls += 1
    return calls * batch_size / (time.perf_counter() - start)


def bench_model(name: str, args: argparse.Namespace, workdir: Path) -> list[dict]:
    net = make_net(name)
    height, width = args.size
    started = time.perf_counter()
    path = export_onnx(net, workdir / f"{name}.onnx", image_size=(height, width), num_crops=8)
    print(f"  exported {name} in {time.perf_counter() - started:.0f} s", flush=True)
    session = ort_session(path, args.threads, "all")
    rng = np.random.default_rng(0)
    rows = []
    for batch_size in args.batches:
        batch = rng.normal(size=(batch_size, 3, height, width)).astype(np.float32)
        tensor = torch.from_numpy(batch)

        def run_torch() -> None:
            with torch.inference_mode():
                net(tensor)

        def run_ort() -> None:
            session.run(None, {INPUT_NAME: batch})

        torch_rates, ort_rates = [], []
        for _ in range(args.rounds):
            torch_rates.append(time_call(run_torch, batch_size, args.seconds, args.min_calls))
            ort_rates.append(time_call(run_ort, batch_size, args.seconds, args.min_calls))
        row = {"model": name, "batch": batch_size,
               "torch": statistics.median(torch_rates), "onnx": statistics.median(ort_rates)}
        rows.append(row)
        print(f"  {name} batch {batch_size:>3}: torch {row['torch']:7.1f}  onnx {row['onnx']:7.1f}"
              f"  ({row['onnx'] / row['torch']:.2f}x)", flush=True)
    return rows


def tuning_sweep(name: str, args: argparse.Namespace, workdir: Path) -> list[dict]:
    """ORT optimisation level x threads vs torch at the same threads, batch 32."""
    net = make_net(name)
    height, width = args.size
    path = workdir / f"{name}.onnx"
    batch = np.random.default_rng(1).normal(size=(32, 3, height, width)).astype(np.float32)
    tensor = torch.from_numpy(batch)
    rows = []
    thread_counts = sorted({1, args.threads, os.cpu_count() or 1})
    for threads in thread_counts:
        torch.set_num_threads(threads)

        def run_torch() -> None:
            with torch.inference_mode():
                net(tensor)

        rates = {"torch": time_call(run_torch, 32, args.seconds, args.min_calls)}
        for level in OPT_LEVELS:
            session = ort_session(path, threads, level)
            rates[level] = time_call(lambda s=session: s.run(None, {INPUT_NAME: batch}), 32,
                                     args.seconds, args.min_calls)
        rows.append({"threads": threads, **rates})
        print(f"  threads {threads}: " + "  ".join(f"{k} {v:.1f}" for k, v in rates.items()),
              flush=True)
    torch.set_num_threads(args.threads)
    return rows


def preprocessing_speed(args: argparse.Namespace) -> list[dict]:
    spec = PreprocessSpec(size_hw=tuple(args.size))
    rng = np.random.default_rng(2)
    rows = []
    for size in CROP_SIZES:
        crops = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(32)]
        rate = time_call(lambda c=crops: preprocess_crops(c, spec), 32, args.seconds, 3)
        rows.append({"crop": f"{size[0]}x{size[1]}", "crops_per_s": rate})
        print(f"  preprocess {size[0]}x{size[1]} -> {args.size[0]}x{args.size[1]}: "
              f"{rate:.0f} crops/s", flush=True)
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(rows: list[dict], sweep: list[dict], prep: list[dict], args, load: str) -> str:
    lines = [
        f"`python benchmarks/embedder_speed.py` ({' '.join(args.models)} at "
        f"{args.size[0]}x{args.size[1]}), {time.strftime('%Y-%m-%d')}.",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
        f"{ort.__version__}; {args.threads} thread(s) for both engines; load average at start "
        f"{load}.",
        "Crops per second on pre-made float32 batches (model only), median of "
        f"{args.rounds} interleaved rounds.",
        "",
        "| model | batch | PyTorch eager | ONNX Runtime | ONNX / PyTorch |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {row['batch']} | {row['torch']:.1f} | "
                     f"{row['onnx']:.1f} | {row['onnx'] / row['torch']:.2f}x |")
    if sweep:
        lines += ["", f"Tuning at batch 32 ({args.models[0]}): crops/s by ORT graph optimisation "
                  "level and threads (PyTorch at the same threads).", "",
                  "| threads | PyTorch | ORT disable | ORT basic | ORT extended | ORT all |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for row in sweep:
            lines.append(f"| {row['threads']} | {row['torch']:.1f} | {row['disable']:.1f} | "
                         f"{row['basic']:.1f} | {row['extended']:.1f} | {row['all']:.1f} |")
    if prep:
        lines += ["", "Shared preprocessing (NumPy, one thread; resize + normalise, batches of 32 "
                  "crops):", "", "| crop size | crops/s |", "|---|---:|"]
        for row in prep:
            lines.append(f"| {row['crop']} | {row['crops_per_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["osnet_x0_25", "osnet_x1_0"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 64])
    parser.add_argument("--size", nargs=2, type=int, default=[256, 128])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="min seconds per timing")
    parser.add_argument("--min-calls", type=int, default=3)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average {load}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = [row for name in args.models for row in bench_model(name, args, workdir)]
        sweep = [] if args.no_sweep else tuning_sweep(args.models[0], args, workdir)
    prep = preprocessing_speed(args)
    load_end = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    text = markdown(rows, sweep, prep, args, f"{load} (at the end: {load_end})")
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
