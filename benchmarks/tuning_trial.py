"""Cost of one tracker-tuning trial on the eight MOT15-text sequences (issue 8 benchmark).

A trial of `task=track ... hparams_search=tracker_optuna -m` is one `task=track` run whose
detections come from the feature cache: tracking + TrackEval only. This script times such runs
as separate processes (what a sweep's launcher does): the first run fills the cache, the next
ones are trials. Public detections, motion-only (`embedder=none`: MOT15-text has no images).

    python benchmarks/tuning_trial.py [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REIDSORT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def run_track(source: Path, data_dir: Path, run_dir: Path) -> tuple[float, str]:
    command = [sys.executable, str(REPO_ROOT / "main.py"), "task=track", f"source={source}",
               "embedder=none", "task.video=false", "task.progress=false",
               f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    source = SHARED / "mot" / "MOT15-text"
    if not source.is_dir():
        sys.exit(f"error: {source} not found (set REIDSORT_SHARED_DATA)")
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cold, stdout = run_track(source, tmp_path / "data", tmp_path / "run_cold")
        hota = re.search(r"^COMBINED\s+([\d.]+)", stdout, re.MULTILINE)
        trials = [run_track(source, tmp_path / "data", tmp_path / f"run_{i}")[0]
                  for i in range(args.trials)]
    print(f"first run (fills the cache): {cold:.2f} s; combined HOTA {hota.group(1) if hota else '?'}")
    print(f"trial with cached detections: median {statistics.median(trials):.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in trials)}), process start-up included")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
