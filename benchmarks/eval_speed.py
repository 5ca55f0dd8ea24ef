"""Re-ID evaluation speed and peak memory: reidsort's chunked, counted ranking vs a plain NumPy
implementation of the same protocol (dense distance matrix + full argsort, as torchreid does).

Both score the same random L2-normalised float32 features (few true matches per query, six
cameras, Market-1501 protocol, cosine distance). Each variant runs in its own subprocess, so its
peak resident memory (``ru_maxrss``) is its own; the features are made there from the same seed.
"eval memory" is the peak minus the resident size just before scoring (the inputs, the
interpreter and its libraries): what the evaluation itself needed. The numbers of the two
variants are compared query by query.

    python benchmarks/eval_speed.py                       # 10,000 x 50,000 x 512, both
    python benchmarks/eval_speed.py --scale               # + 20,000 x 100,000, reidsort only
    python benchmarks/eval_speed.py --queries 2000 --gallery 10000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAST, DENSE = "reidsort", "numpy-dense"
CAMERAS = 6
#: gallery images per identity on average ("few true matches per query")
IMAGES_PER_IDENTITY = 5
MAX_RANK = 20


def make_problem(num_queries: int, num_gallery: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    identities = max(1, num_gallery // IMAGES_PER_IDENTITY)
    gallery_pids = rng.integers(0, identities, num_gallery)
    query_pids = rng.choice(gallery_pids, num_queries)  # every query has its identity there
    query_cams = rng.integers(0, CAMERAS, num_queries)
    gallery_cams = rng.integers(0, CAMERAS, num_gallery)
    query = rng.standard_normal((num_queries, dim), dtype=np.float32)
    gallery = rng.standard_normal((num_gallery, dim), dtype=np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    return query, gallery, query_pids, gallery_pids, query_cams, gallery_cams


def dense_numpy_eval(query, gallery, q_pids, g_pids, q_cams, g_cams, max_rank):
    """torchreid's ``eval_market1501`` structure in NumPy: the whole (Q, G) float32 distance
    matrix, a full argsort of it, an int32 match matrix, then one query at a time. (torchreid's
    Python version also builds each precision list in a Python loop; here it is vectorised.)"""
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    distmat = 1.0 - qn @ gn.T
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    valid = np.zeros(len(q_pids), dtype=bool)
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(len(q_pids)):
        order = indices[q]
        remove = (g_pids[order] == q_pids[q]) & (g_cams[order] == q_cams[q])
        raw_cmc = matches[q][~remove]
        if not raw_cmc.any():
            continue
        valid[q] = True
        cmc = raw_cmc.cumsum()
        last_hit = np.flatnonzero(raw_cmc)[-1]
        all_inp.append(cmc[last_hit] / (last_hit + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision = raw_cmc.cumsum() / np.arange(1, raw_cmc.size + 1)
        all_ap.append((precision * raw_cmc).sum() / raw_cmc.sum())
    cmc = np.asarray(all_cmc, dtype=np.float64).sum(axis=0) / valid.sum()
    return {"ap": np.asarray(all_ap), "inp": np.asarray(all_inp), "cmc": cmc, "valid": valid}


def fast_eval(query, gallery, q_pids, g_pids, q_cams, g_cams, max_rank, device):
    import torch

    from reidsort.reid.metrics import evaluate_retrieval

    result = evaluate_retrieval(torch.from_numpy(query).to(device),
                                torch.from_numpy(gallery).to(device), q_pids, g_pids, q_cams,
                                g_cams, metric="cosine", max_rank=max_rank)
    return {"ap": result.average_precision, "inp": result.inverse_negative_penalty,
            "cmc": result.cmc, "valid": result.valid_query}


def _resident_kb() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def worker(args: argparse.Namespace) -> None:
    """One variant, in its own process: make the data, score it, report time and memory."""
    import torch  # both variants load the same libraries, so their baselines compare

    torch.set_num_threads(args.threads)
    problem = make_problem(args.queries, args.gallery, args.dim, args.seed)
    before_kb = _resident_kb()
    started = time.perf_counter()
    if args.worker == FAST:
        device = "cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu"
        scores = fast_eval(*problem, MAX_RANK, device)
    else:
        scores = dense_numpy_eval(*problem, MAX_RANK)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.savez(args.out, **scores)
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024,
                      "eval_mb": (peak_kb - before_kb) / 1024}))


def run_variant(variant: str, args: argparse.Namespace, queries: int, gallery: int,
                out: Path) -> dict:
    command = [sys.executable, __file__, "--worker", variant, "--queries", str(queries),
               "--gallery", str(gallery), "--dim", str(args.dim), "--seed", str(args.seed),
               "--threads", str(args.threads), "--device", args.device, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(first: Path, second: Path) -> dict[str, float]:
    a, b = np.load(first), np.load(second)
    if not np.array_equal(a["valid"], b["valid"]):
        return {"valid_queries_differ": float((a["valid"] != b["valid"]).sum())}
    return {"max |AP diff|": float(np.abs(a["ap"] - b["ap"]).max()),
            "|mAP diff|": float(abs(a["ap"].mean() - b["ap"].mean())),
            "|mINP diff|": float(abs(a["inp"].mean() - b["inp"].mean())),
            "max |CMC diff|": float(np.abs(a["cmc"] - b["cmc"]).max()),
            "mAP": float(a["ap"].mean())}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--gallery", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="auto", help="reidsort variant: auto, cpu, cuda")
    parser.add_argument("--scale", action="store_true",
                        help="also run reidsort alone on 20,000 x 100,000 (the 24 GB target)")
    parser.add_argument("--worker", choices=[FAST, DENSE], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}; "
          f"load average at start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        # reidsort runs before and after the dense baseline, so both see the machine's load
        first = run_variant(FAST, args, args.queries, args.gallery, Path(tmp) / "fast.npz")
        print(f"  {FAST} (1st): {first}", flush=True)
        dense = run_variant(DENSE, args, args.queries, args.gallery, Path(tmp) / "dense.npz")
        print(f"  {DENSE}: {dense}", flush=True)
        second = run_variant(FAST, args, args.queries, args.gallery, Path(tmp) / "fast.npz")
        print(f"  {FAST} (2nd): {second}", flush=True)
        same = compare(Path(tmp) / "fast.npz", Path(tmp) / "dense.npz")
    fast = {key: (first[key] + second[key]) / 2 for key in first}
    print(f"\n{args.queries} queries x {args.gallery} gallery x {args.dim}-d, "
          f"{args.threads} threads\n")
    print("| variant | time (s) | peak RSS (MB) | eval memory (MB) |")
    print("| --- | ---: | ---: | ---: |")
    fast_name = f"{FAST} (mean of 2 runs: {first['seconds']:.1f} s, {second['seconds']:.1f} s)"
    for name, run in ((fast_name, fast), (DENSE, dense)):
        print(f"| {name} | {run['seconds']:.2f} | {run['peak_mb']:.0f} | {run['eval_mb']:.0f} |")
    print(f"\nspeed-up {dense['seconds'] / fast['seconds']:.2f}x; eval memory "
          f"{fast['eval_mb'] / dense['eval_mb']:.3f} of numpy-dense's "
          f"(peak RSS {fast['peak_mb'] / dense['peak_mb']:.3f})")
    print("agreement:", ", ".join(f"{k} {v:.2e}" for k, v in same.items()))
    if args.scale:
        with tempfile.TemporaryDirectory() as tmp:
            big = run_variant(FAST, args, 20_000, 100_000, Path(tmp) / "big.npz")
        print(f"\nreidsort alone, 20000 x 100000 x {args.dim}-d: {big['seconds']:.1f} s, "
              f"peak RSS {big['peak_mb']:.0f} MB (eval memory {big['eval_mb']:.0f} MB)")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
