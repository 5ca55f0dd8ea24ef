"""Hydra sweep callbacks: a table of every ``-m`` sweep's jobs, and an Optuna study's best
trial as a ready-to-use command next to the baseline (the config's own values)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

#: written by hydra-optuna-sweeper into the sweep folder
OPTUNA_RESULTS_FILE = "optimization_results.yaml"
BEST_OVERRIDES_FILE = "best_overrides.txt"
#: every job of a sweep writes its task's metrics here (Hydra hands callbacks only the optimised
#: value); the sweep summary reads them
JOB_METRICS_FILE = "metrics.json"
SWEEP_SUMMARY_FILE = "sweep_summary.tsv"
#: written by hydra_plugins.reidsort_optuna: the baseline trial's parameters and score
BASELINE_FILE = "optuna_baseline.yaml"
#: metric columns of the console table (the file has them all): the optimised metric, then
#: these headline ones where a task returns them
CONSOLE_METRIC_COLUMNS = 6
HEADLINE_METRICS = ("mot/HOTA", "mot/IDF1", "mot/MOTA", "mot/IDSW", "val/mAP", "val/rank1",
                    "test/mAP", "test/rank1", "eval/mAP", "eval/rank1", "time/seconds")
#: command-line overrides that configure the sweep itself, not the run being tuned
_SWEEP_ONLY_PREFIXES = ("hparams_search=", "hydra.", "hydra/", "+hydra")


def best_override_line(command_overrides: list[str], best_params: dict[str, Any]) -> str:
    """``python main.py <the run's own overrides> <best parameters>``."""
    kept = [o for o in command_overrides
            if not o.startswith(_SWEEP_ONLY_PREFIXES) and o.split("=", 1)[0] not in best_params]
    tuned = [f"{name}={_format(value)}" for name, value in sorted(best_params.items())]
    return " ".join(["python main.py", *kept, *tuned])


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def held_out_command(command_overrides: list[str], best_params: dict[str, Any], tuned_on: str,
                     placeholder: str) -> str:
    """The best-override line with the tuning data (``tuned_on=...``) swapped for held-out data."""
    others = [o for o in command_overrides if o.split("=", 1)[0] != tuned_on]
    return best_override_line([*others, f"{tuned_on}={placeholder}"], best_params)


class BestOverridesCallback(Callback):
    """After an Optuna sweep: print the best trial's parameters as one override line, with the
    baseline trial's score (the config's own values, see hydra_plugins.reidsort_optuna) beside
    the best, and save both as ``best_overrides.txt`` next to ``optimization_results.yaml``.

    ``tuned_on`` names the config key of the data every trial is scored on (task=track:
    ``source``): the best value was picked on that data, so it is optimistic, and a warning says
    how to score the best overrides on ``held_out`` data instead.
    """

    def __init__(self, tuned_on: str | None = None,
                 held_out: str = "<held-out data>") -> None:
        self.tuned_on = tuned_on
        self.held_out = held_out

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results_path = sweep_dir / OPTUNA_RESULTS_FILE
        if not results_path.is_file():
            log.warning("no %s in %s: not an Optuna sweep, nothing to report",
                        OPTUNA_RESULTS_FILE, sweep_dir)
            return
        results = OmegaConf.to_container(OmegaConf.load(results_path), resolve=True)
        best_params = dict(results.get("best_params") or {})
        if not best_params:
            log.warning("%s has no best_params", results_path)
            return
        command_overrides = list(config.hydra.overrides.task)
        line = best_override_line(command_overrides, best_params)
        metric = config.get("optimized_metric") or "objective"
        score = f"{_format(results.get('best_value'))}{_baseline_note(sweep_dir)}"
        text = f"# best {metric} = {score}\n{line}\n"
        print(f"best {metric}: {score}\n{line}", flush=True)
        if self.tuned_on:
            warning = (
                f"the best {metric} was scored on the data it was tuned on ({self.tuned_on}="
                f"{OmegaConf.select(config, self.tuned_on)}), so it is optimistic; score the best "
                f"overrides on held-out data: "
                f"{held_out_command(command_overrides, best_params, self.tuned_on, self.held_out)}")
            # Hydra's sweep-level log lines carry no level: say it
            log.warning("warning: %s", warning)
            text += f"# {warning}\n"
        atomic_write_text(sweep_dir / BEST_OVERRIDES_FILE, text)


def _baseline_note(sweep_dir: Path) -> str:
    """`` (config values, trial 0: 0.41)`` when the sweeper ran the baseline trial."""
    path = sweep_dir / BASELINE_FILE
    if not path.is_file():
        return ""
    baseline = OmegaConf.load(path)
    if baseline.get("value") is None:
        return ""
    return f" (config values, trial {baseline.trial}: {_format(float(baseline.value))})"


def save_job_metrics(metrics: dict[str, Any]) -> Path | None:
    """In a ``-m`` sweep: write the job's metrics to ``metrics.json`` in its folder (for the
    sweep summary; any launcher, since each job writes its own). Single runs write nothing."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    path = Path(HydraConfig.get().runtime.output_dir) / JOB_METRICS_FILE
    # tensors and numpy scalars become numbers; anything else its text
    text = json.dumps(metrics, indent=1, default=lambda v: v.item() if hasattr(v, "item")
                      else str(v))
    return atomic_write_text(path, text + "\n")


@dataclass
class SweepJob:
    """One job folder of a sweep: what it ran and what it returned (None: no metrics file)."""

    number: int
    folder: Path
    overrides: list[str]
    metrics: dict[str, Any] | None


def collect_jobs(sweep_dir: Path) -> list[SweepJob]:
    """Every job folder under ``sweep_dir`` (any ``hydra.sweep.subdir`` layout), by job number."""
    jobs = []
    for overrides_path in sweep_dir.glob("**/.hydra/overrides.yaml"):
        hydra_dir = overrides_path.parent
        hydra_yaml = hydra_dir / "hydra.yaml"
        number = OmegaConf.load(hydra_yaml).hydra.job.num if hydra_yaml.is_file() else -1
        metrics_path = hydra_dir.parent / JOB_METRICS_FILE
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        jobs.append(SweepJob(int(number), hydra_dir.parent,
                             [str(o) for o in OmegaConf.load(overrides_path)], metrics))
    return sorted(jobs, key=lambda job: (job.number, str(job.folder)))


def summary_columns(jobs: list[SweepJob]) -> tuple[list[str], list[str], list[str]]:
    """(overrides every job shares, keys of the overrides that differ, metric names)."""
    shared = [o for o in jobs[0].overrides if all(o in job.overrides for job in jobs)]
    varying: list[str] = []
    metric_names: list[str] = []
    for job in jobs:
        for override in job.overrides:
            key = override.split("=", 1)[0]
            if override not in shared and key not in varying:
                varying.append(key)
        for name in job.metrics or {}:
            if name not in metric_names:
                metric_names.append(name)
    return shared, varying, metric_names


def summary_rows(jobs: list[SweepJob], sweep_dir: Path, varying: list[str],
                 metric_names: list[str], number_format: str | None) -> list[list[str]]:
    """Header + one row per job: number, folder, status, varying overrides, metrics; numbers in
    ``number_format`` (None: exact, overrides as given)."""
    rows = [["job", "folder", "status", *varying, *metric_names]]
    for job in jobs:
        values = dict(o.split("=", 1) if "=" in o else (o, "") for o in job.overrides)
        metrics = job.metrics or {}
        rows.append([str(job.number), str(job.folder.relative_to(sweep_dir)),
                     "ok" if job.metrics is not None else "no metrics",
                     *(_short_number(values.get(key, ""), number_format) for key in varying),
                     *(_cell(metrics.get(name), number_format) for name in metric_names)])
    return rows


def _cell(value: Any, number_format: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and number_format:
        return format(value, number_format)
    return str(value)


def _short_number(text: str, number_format: str | None) -> str:
    """An override value that is a decimal number, in ``number_format`` (Optuna's samples have
    17 digits); anything else as it is."""
    if not number_format or "." not in text:
        return text
    try:
        return format(float(text), number_format)
    except ValueError:
        return text


def console_metrics(metric_names: list[str], optimized: str | None) -> list[str]:
    """The metric columns worth a console line: the optimised metric, then the headline ones
    (the first metrics of a task that has none), at most CONSOLE_METRIC_COLUMNS."""
    chosen = [optimized] if optimized in metric_names else []
    chosen += [n for n in HEADLINE_METRICS if n in metric_names and n not in chosen]
    if not chosen:
        chosen = list(metric_names)
    return chosen[:CONSOLE_METRIC_COLUMNS]


def aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


class SweepSummaryCallback(Callback):
    """After any ``-m`` sweep: one table of its jobs (the overrides that differ between them and
    their metrics), printed and saved as ``sweep_summary.tsv`` in the sweep folder. The job
    folder column points to each job's ``.hydra/`` (its full config and overrides)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = collect_jobs(sweep_dir)
        if not jobs:
            log.warning("no job folders in %s: no sweep summary", sweep_dir)
            return
        shared, varying, metric_names = summary_columns(jobs)
        table = summary_rows(jobs, sweep_dir, varying, metric_names, None)
        path = atomic_write_text(sweep_dir / SWEEP_SUMMARY_FILE,
                                 "".join("\t".join(row) + "\n" for row in table))
        shown = console_metrics(metric_names, config.get("optimized_metric"))
        console = summary_rows(jobs, sweep_dir, varying, shown, ".4g")
        hidden = len(metric_names) - len(shown)
        lines = [f"sweep: {len(jobs)} jobs in {sweep_dir}",
                 f"every job: {' '.join(shared) or '(no shared overrides)'}",
                 aligned(console),
                 f"table{f' with {hidden} more metrics' if hidden else ''}: {path}"]
        print("\n".join(lines), flush=True)
