"""Dataset scanner speed: first scan and cached re-scan of 100,000 small generated images.

    python benchmarks/scan_speed.py [--images 100000] [--threads 8] [--root /tmp/scan_bench]

Writes a folder-per-identity tree of small JPEGs (64x32, a few hundred bytes each), then times:

* ``floor``: a bare ``os.scandir`` recursion with one ``stat`` per file, the least any check
  that notices a changed file can cost (measured, not assumed);
* ``first scan``: walk + header/truncation check of every file + writing the cache;
* ``cached re-scan``: walk + fingerprint + reading the cache (the requirement: under 1 s);
* ``re-scan after one change``: one file rewritten, so only it is checked again;
* ``paranoid first scan`` of a 10,000-image subset (full decode), for scale.

Timings are the best of ``--repeats`` runs (the machine is shared); the floor and the cached
re-scan alternate so that both see the same load. The first scans run once. Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from reidsort.data.scan import ScanOptions, scan_dataset

IMAGES_PER_IDENTITY = 100
DISTINCT_IMAGES = 64  # encoded once, written many times: generation stays fast
PARANOID_IMAGES = 10_000


def make_tree(root: Path, images: int) -> None:
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(DISTINCT_IMAGES):
        pixels = rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)
        blobs.append(cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    for i in range(images):
        pid, index = divmod(i, IMAGES_PER_IDENTITY)
        folder = root / f"{pid:05d}"
        if index == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{pid:05d}_c{index % 6 + 1}s1_{index:06d}_00.jpg").write_bytes(
            blobs[i % DISTINCT_IMAGES])


def floor(root: Path) -> int:
    count = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.name == ".reidsort_cache":
                    continue
                if entry.is_dir():
                    stack.append(entry.path)
                else:
                    entry.stat()
                    count += 1
    return count


def best_of(repeats: int, fn):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=Path("/tmp/reidsort_scan_bench"))
    parser.add_argument("--keep", action="store_true", help="keep the generated tree")
    args = parser.parse_args()

    root = args.root / f"tree_{args.images}"
    if not root.is_dir():
        start = time.perf_counter()
        make_tree(root, args.images)
        print(f"generated {args.images} images in {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
    options = ScanOptions()
    cache_dir = root / ".reidsort_cache"
    rows = []

    def first():
        shutil.rmtree(cache_dir, ignore_errors=True)
        return scan_dataset(root, options, threads=args.threads)

    t_first, result = best_of(1, first)
    assert result.counts()["valid"] == args.images, result.counts()

    # floor and cached re-scan interleaved, so both see the same machine load
    floors, cached = [], []
    for _ in range(args.repeats):
        t, count = best_of(1, lambda: floor(root))
        floors.append(t)
        t, result = best_of(1, lambda: scan_dataset(root, options))
        assert result.cache_hit and result.counts()["valid"] == args.images
        cached.append(t)
    t_floor, t_cached = min(floors), min(cached)
    rows.append(("floor: os.scandir recursion + stat", t_floor, count))
    rows.append((f"first scan ({args.threads} threads)", t_first, len(result)))
    rows.append(("cached re-scan", t_cached, len(result)))

    victim = root / "00000" / "00000_c1s1_000000_00.jpg"

    def one_change():
        victim.write_bytes(victim.read_bytes())  # same bytes, new mtime
        return scan_dataset(root, options)

    t_change, result = best_of(args.repeats, one_change)
    assert not result.cache_hit and result.reused == args.images - 1
    rows.append(("re-scan after one file changed", t_change, len(result)))

    paranoid_root = args.root / "paranoid_subset"
    if not paranoid_root.is_dir():
        paranoid_root.mkdir(parents=True)
        folders = sorted(f for f in root.iterdir() if not f.name.startswith("."))
        for folder in folders[: max(1, PARANOID_IMAGES // IMAGES_PER_IDENTITY)]:
            shutil.copytree(folder, paranoid_root / folder.name)

    def paranoid():
        shutil.rmtree(paranoid_root / ".reidsort_cache", ignore_errors=True)
        return scan_dataset(paranoid_root, ScanOptions(paranoid=True), threads=args.threads)

    t_paranoid, result = best_of(1, paranoid)
    rows.append((f"paranoid first scan, {len(result)} images (full decode)", t_paranoid,
                 len(result)))

    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; best of {args.repeats}\n")
    print("| step | files | seconds | files/s |")
    print("|---|---:|---:|---:|")
    for name, seconds, files in rows:
        print(f"| {name} | {files:,} | {seconds:.3f} | {files / seconds:,.0f} |")
    print(f"\ncached re-scan / floor = {t_cached / t_floor:.2f}x (medians "
          f"{statistics.median(cached):.3f} / {statistics.median(floors):.3f} s); "
          f"first scan / cached = {t_first / t_cached:.1f}x")
    if not args.keep:
        shutil.rmtree(args.root, ignore_errors=True)


if __name__ == "__main__":
    main()
