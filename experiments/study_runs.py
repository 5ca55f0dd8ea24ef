"""What the study scripts in this folder share: running ``main.py`` steps with logs, caching
each step's result so that an interrupted study resumes, reading Lightning CSV logs, and the
paired mean +- sd summaries (seed by seed, treated - baseline)."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "src"))

from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_write_text

#: a finished step's result, in the step's folder
RESULT_FILE = "result.json"
#: lines of a failed command's log shown in the error
LOG_TAIL_LINES = 30


def run_logged(command: Sequence[str], log_path: Path) -> float:
    """Run ``command`` in the repository root with its output in ``log_path``; the wall time.
    A failure is one error naming the command and the log, with the log's tail."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {' '.join(command)}\n  (log: {log_path})", flush=True)
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        code = subprocess.run(list(command), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                              check=False).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        raise ReidsortError(f"exit code {code} after {seconds:.0f} s: {' '.join(command)}\n"
                            f"(log {log_path}):\n" + "\n".join(tail))
    print(f"  done in {seconds:.0f} s", flush=True)
    return seconds


def cached_step(folder: Path, step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``folder/result.json`` when a former run finished this step, else run it (in a clean
    folder) and save what it returns."""
    result_file = folder / RESULT_FILE
    if result_file.is_file():
        print(f"reusing {result_file}", flush=True)
        return json.loads(result_file.read_text(encoding="utf-8"))
    if folder.exists():
        shutil.rmtree(folder)  # a step that did not finish: start it again from nothing
    folder.mkdir(parents=True)
    result = step()
    atomic_write_text(result_file, json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def main_py(python: str, *overrides: str) -> list[str]:
    return [python, str(REPO_ROOT / "main.py"), *overrides]


def last_logged(metrics_csv: Path, column: str) -> float:
    """The last value of ``column`` in a Lightning CSVLogger ``metrics.csv`` (NaN if none)."""
    value = math.nan
    with metrics_csv.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get(column, "") not in ("", None):
                value = float(row[column])
    return value


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; NaN for one value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def paired_summary(baseline: Mapping[int, float], treated: Mapping[int, float],
                   treated_name: str = "treated") -> dict[str, Any]:
    """Both arms' mean +- sd (keys ``baseline`` and ``treated_name``) and the per-seed
    differences treated - baseline (seeds in both)."""
    seeds = sorted(set(baseline) & set(treated))
    differences = {s: float(treated[s]) - float(baseline[s]) for s in seeds}
    return {"baseline": mean_sd([baseline[s] for s in seeds]),
            treated_name: mean_sd([treated[s] for s in seeds]),
            "differences": differences,
            "difference": mean_sd(list(differences.values()))}


def machine_line() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
            f"load {load:.1f} at the end")


__all__ = [
    "LOG_TAIL_LINES",
    "REPO_ROOT",
    "RESULT_FILE",
    "cached_step",
    "last_logged",
    "machine_line",
    "main_py",
    "mean_sd",
    "paired_summary",
    "run_logged",
]
