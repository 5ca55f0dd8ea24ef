"""Every ``-m`` sweep ends with a table of its jobs' overrides and metrics (sweep_summary.tsv)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reidsort.utils.sweep import (
    JOB_METRICS_FILE,
    SWEEP_SUMMARY_FILE,
    collect_jobs,
    save_job_metrics,
    summary_columns,
    summary_rows,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_a_basic_sweep_prints_and_saves_its_jobs_table(shared_data: Path, tmp_path: Path) -> None:
    sequence = shared_data / "mot" / "MOT15-text" / "KITTI-17"
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, str(REPO_ROOT / "main.py"), "task=track", f"source={sequence}",
               "embedder=none", "task.video=false", "task.progress=false",
               "tracker.max_age=10,30", f"paths.data_dir={tmp_path / 'data'}",
               f"hydra.sweep.dir={sweep_dir}", "-m"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # each job folder keeps what it ran (.hydra/overrides.yaml) and all its metrics
    hotas = []
    for job, max_age in (("0", 10), ("1", 30)):
        assert f"tracker.max_age={max_age}" in OmegaConf.load(
            sweep_dir / job / ".hydra" / "overrides.yaml")
        metrics = json.loads((sweep_dir / job / JOB_METRICS_FILE).read_text())
        header, row = (sweep_dir / job / "mot_metrics.csv").read_text().splitlines()[:2]
        hota = float(row.split(",")[header.split(",").index("HOTA")])
        assert metrics["mot/HOTA"] == pytest.approx(hota, abs=1e-12)
        assert metrics["track/frames"] == 145.0
        hotas.append(hota)
    # the file: every metric, exact; the override that differs is a column of its own
    rows = _tsv(sweep_dir / SWEEP_SUMMARY_FILE)
    header = rows[0]
    assert header[:4] == ["job", "folder", "status", "tracker.max_age"]
    assert {"mot/HOTA", "mot/IDF1", "track/fps"} <= set(header)
    assert [row[:4] for row in rows[1:]] == [["0", "0", "ok", "10"], ["1", "1", "ok", "30"]]
    hota_column = header.index("mot/HOTA")
    assert [float(row[hota_column]) for row in rows[1:]] == pytest.approx(hotas, abs=1e-12)
    # the console: the shared overrides once, then the optimised metric and headline ones
    console = done.stdout[done.stdout.index(f"sweep: 2 jobs in {sweep_dir}"):].splitlines()
    assert console[1].startswith(f"every job: task=track source={sequence} embedder=none")
    assert console[2].split() == ["job", "folder", "status", "tracker.max_age", "mot/HOTA",
                                  "mot/IDF1", "mot/MOTA", "mot/IDSW"]
    assert console[3].split()[:5] == ["0", "0", "ok", "10", f"{hotas[0]:.4g}"]
    assert console[4].split()[:5] == ["1", "1", "ok", "30", f"{hotas[1]:.4g}"]
    assert console[5].startswith("table with ") and console[5].endswith(
        str(sweep_dir / SWEEP_SUMMARY_FILE))


def test_a_job_without_metrics_is_a_row_that_says_so(tmp_path: Path) -> None:
    for number, (overrides, metrics) in enumerate([(["a=1", "b=x"], {"m": 0.5}),
                                                   (["a=2", "b=x"], None)]):
        hydra_dir = tmp_path / "sweep" / f"job{number}" / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
        (hydra_dir / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {number}\n")
        if metrics is not None:
            (hydra_dir.parent / JOB_METRICS_FILE).write_text(json.dumps(metrics))
    jobs = collect_jobs(tmp_path / "sweep")
    shared, varying, metric_names = summary_columns(jobs)
    assert (shared, varying, metric_names) == (["b=x"], ["a"], ["m"])
    assert summary_rows(jobs, tmp_path / "sweep", varying, metric_names, ".4g") == [
        ["job", "folder", "status", "a", "m"],
        ["0", "job0", "ok", "1", "0.5"],
        ["1", "job1", "no metrics", "2", ""]]


def test_a_single_run_writes_no_job_metrics() -> None:
    assert save_job_metrics({"m": 1.0}) is None
