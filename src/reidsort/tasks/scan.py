"""``task=scan``: validate every file of a dataset and report what training would use.

The data module of ``data=...`` does the work (:meth:`ReIDDataModule.load`: scan + reader +
filters), so the report is exactly what ``task=train`` would train on. Prints a summary table,
writes a JSON report, and exits with code 2 under ``fail_on_invalid=true`` when any file is
invalid (for CI).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from reidsort.data.scan import INVALID, SKIPPED
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain
from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

#: exit status of ``fail_on_invalid=true`` when invalid files were found (1 = user error)
EXIT_INVALID = 2
RULE = "-" * 64


def _data_config(cfg: DictConfig) -> dict[str, Any]:
    data = to_plain(cfg.data)
    data["verify_images"] = True
    data["min_samples"] = cfg.task.min_samples
    data["scan"] = {**(data.get("scan") or {}), "paranoid": bool(cfg.task.paranoid)}
    return data


def _table(report: dict[str, Any], show_invalid: int, report_path: Path) -> str:
    lines = ["", "=" * 64, f"reidsort scan  ({report['format']})"]
    for scan in report["scans"]:
        counts, reasons, cache = scan["counts"], scan["reasons"], scan["cache"]
        source = "cache" if cache["hit"] else f"checked, {cache['reused_files']} from cache"
        mode = "paranoid (full decode)" if scan["options"]["paranoid"] else "header checks"
        lines += [RULE, f"root     {scan['root']}",
                  f"files    {counts['files']:>8}   {mode}; {source}; {scan['seconds']:.2f} s",
                  f"  valid  {counts['valid']:>8}"]
        for status in (INVALID, SKIPPED):
            lines.append(f"  {status:<7}{counts[status]:>8}")
            lines += [f"    {reason:<38}{n:>8}" for reason, n in reasons[status].items()]
        invalid = scan["invalid"]
        for item in invalid[:show_invalid]:
            lines.append(f"    invalid: {item['path']}  ({item['reason']})")
        if len(invalid) > show_invalid:
            lines.append(f"    ... {len(invalid) - show_invalid} more in the JSON report")
    if "used" in report:
        reader, used = report["reader"], report["used"]
        lines += [RULE, f"{'split':<10}{'images':>10}{'identities':>12}   what training uses"]
        for name, counts in used["splits"].items():
            lines.append(f"{name:<10}{counts['images']:>10}{counts['identities']:>12}")
        dropped_invalid = sum(len(v) for v in reader["invalid_images_dropped"].values())
        lines.append(f"invalid images left out of the dataset   {dropped_invalid}")
        dropped = used["dropped_identities_min_samples"]
        if report.get("min_samples"):
            lines.append(f"identities with < {report['min_samples']} images dropped "
                         f"{len(dropped):>5}  ({sum(dropped.values())} images)")
        for key, value in reader["notes"].items():
            if isinstance(value, list):
                value = len(value)
            if isinstance(value, (int, float, str)) and value not in (0, ""):
                lines.append(f"{key.replace('_', ' ')}: {value}")
        if used["validation_carved_from_train"]:
            lines.append("validation: identities carved from the training identities "
                         "(val_identities); test: the dataset's own query/gallery")
    if "error" in report:
        lines += [RULE, f"reader error: {report['error']}"]
    lines += [RULE, f"report   {report_path}", "=" * 64]
    return "\n".join(lines)


def scan(cfg: DictConfig) -> dict[str, float]:
    datamodule = instantiate(_data_config(cfg))
    if not hasattr(datamodule, "report"):
        raise ReidsortError(f"data={cfg.data._target_} has no scan support (needs a "
                            "ReIDDataModule-style data config)")
    datamodule.prepare_data()  # synthetic data is generated on first use
    report_path = Path(cfg.task.report)
    error: Exception | None = None
    try:
        report = datamodule.report()
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        # the files are still worth reporting when the reader rejects the layout
        error = exc
        settings = datamodule.scan_settings
        report = {"format": datamodule.format, "root": str(datamodule.dataset_root),
                  "scans": [settings.scan(datamodule.dataset_root).report()]
                  if Path(datamodule.dataset_root).is_dir() else [],
                  "error": str(exc)}
    atomic_write_text(report_path, json.dumps(report, indent=1) + "\n")
    print(_table(report, int(cfg.task.show_invalid), report_path), flush=True)
    if error is not None:
        raise ReidsortError(str(error)) from error

    totals = {status: sum(s["counts"][status] for s in report["scans"])
              for status in ("files", "valid", INVALID, SKIPPED)}
    metrics = {f"scan/{k}": float(v) for k, v in totals.items()}
    metrics["scan/seconds"] = float(sum(s["seconds"] for s in report["scans"]))
    for name, counts in report["used"]["splits"].items():
        metrics[f"data/{name}_images"] = float(counts["images"])
        metrics[f"data/{name}_identities"] = float(counts["identities"])
    metrics["data/dropped_identities"] = float(len(report["used"]
                                                   ["dropped_identities_min_samples"]))
    if cfg.task.fail_on_invalid and totals[INVALID]:
        print(f"error: {totals[INVALID]} invalid file(s) (fail_on_invalid=true)", file=sys.stderr,
              flush=True)
        raise SystemExit(EXIT_INVALID)
    return metrics
