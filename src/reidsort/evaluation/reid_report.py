"""The written part of the ``task=eval`` report: ``summary.md`` and CSV tables (atomic writes).

Files (in the run directory):

* ``summary.md`` - the metrics, each with a one-line meaning, dataset sizes, model and settings;
* ``summary.csv`` - ``metric,value,meaning``;
* ``per_query_ap.csv`` - every query: AP, INP, rank of its first true match, true matches;
* ``per_identity_ap.csv`` - mean AP and Rank-1 per query identity, worst first;
* ``cmc.csv`` - the CMC curve, rank 1 .. max_rank;
* ``top_k.csv`` - each query's k nearest kept gallery images and whether they are correct.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidsort.data.datasets import ImageRecord
from reidsort.reid.metrics import RetrievalResult
from reidsort.utils.io import atomic_write_text

#: ranks reported as their own metrics
REPORTED_RANKS = (1, 5, 10, 20)

MEANINGS = {
    "mAP": "mean average precision: how early ALL of a query's true matches come (1 = all "
           "before any wrong image)",
    "mINP": "mean inverse negative penalty: true matches / rank of the hardest one (how much "
            "must be looked through to find every match)",
    **{f"rank{k}": f"Rank-{k} (CMC@{k}): share of queries whose first true match is in the top "
                   f"{k}" for k in REPORTED_RANKS},
}


@dataclass(frozen=True)
class EvalTables:
    """Everything the tables and plots are made of."""

    result: RetrievalResult
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    camera_exclusion: bool
    settings: dict[str, Any]
    model: str
    data_source: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        scores = {"mAP": self.result.mAP, "mINP": self.result.mINP}
        for k in REPORTED_RANKS:
            if k <= self.result.max_rank:
                scores[f"rank{k}"] = self.result.rank(k)
        return scores

    def true_match_counts(self) -> np.ndarray:
        """(Q,) gallery images each query is scored against as correct (after exclusion)."""
        gallery_pids = np.array([r.pid for r in self.gallery])
        gallery_cams = np.array([r.camid for r in self.gallery])
        counts = np.zeros(len(self.query), dtype=np.int64)
        pid_order = np.argsort(gallery_pids, kind="stable")
        sorted_pids = gallery_pids[pid_order]
        for i, record in enumerate(self.query):
            low, high = np.searchsorted(sorted_pids, [record.pid, record.pid + 1])
            same = pid_order[low:high]
            if self.camera_exclusion:
                same = same[gallery_cams[same] != record.camid]
            counts[i] = same.size
        return counts

    def per_query_rows(self) -> list[dict[str, Any]]:
        result = self.result
        valid_positions = np.cumsum(result.valid_query) - 1
        matches = self.true_match_counts()
        rows = []
        for i, record in enumerate(self.query):
            row = {"query_index": i, "path": record.path, "pid": record.pid,
                   "camid": record.camid, "valid": bool(result.valid_query[i]),
                   "true_matches": int(matches[i]), "ap": "", "inp": "", "first_match_rank": ""}
            if result.valid_query[i]:
                j = valid_positions[i]
                row["ap"] = f"{result.average_precision[j]:.6f}"
                row["inp"] = f"{result.inverse_negative_penalty[j]:.6f}"
                if result.first_match_rank is not None:
                    row["first_match_rank"] = int(result.first_match_rank[j])
            rows.append(row)
        return rows

    def per_identity(self) -> list[dict[str, Any]]:
        """Mean AP and Rank-1 per query identity, worst mean AP first."""
        result = self.result
        pids = np.array([r.pid for r in self.query])[result.valid_query]
        first = result.first_match_rank
        rows = []
        for pid in np.unique(pids):
            mask = pids == pid
            rows.append({"pid": int(pid), "queries": int(mask.sum()),
                         "mean_ap": float(result.average_precision[mask].mean()),
                         "rank1": float((first[mask] == 1).mean()) if first is not None else ""})
        rows.sort(key=lambda row: (row["mean_ap"], row["pid"]))
        return rows


def _csv_text(header: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def _top_k_rows(tables: EvalTables) -> Iterable[dict[str, Any]]:
    result = tables.result
    if result.top_k_indices is None:
        return
    for i, record in enumerate(tables.query):
        for rank, (g, distance) in enumerate(zip(result.top_k_indices[i],
                                                 result.top_k_distances[i]), start=1):
            if g < 0:
                break
            item = tables.gallery[g]
            yield {"query_index": i, "query_path": record.path, "query_pid": record.pid,
                   "rank": rank, "gallery_index": int(g), "gallery_path": item.path,
                   "gallery_pid": item.pid, "gallery_camid": item.camid,
                   "distance": f"{distance:.6f}", "correct": item.pid == record.pid}


def write_tables(tables: EvalTables, out_dir: Path) -> list[Path]:
    """Write the CSV tables; returns their paths."""
    metrics = tables.metrics()
    written = [
        atomic_write_text(out_dir / "summary.csv", _csv_text(
            ["metric", "value", "meaning"],
            ({"metric": k, "value": f"{v:.6f}", "meaning": MEANINGS[k]}
             for k, v in metrics.items()))),
        atomic_write_text(out_dir / "per_query_ap.csv", _csv_text(
            ["query_index", "path", "pid", "camid", "valid", "true_matches", "ap", "inp",
             "first_match_rank"], tables.per_query_rows())),
        atomic_write_text(out_dir / "per_identity_ap.csv", _csv_text(
            ["pid", "queries", "mean_ap", "rank1"],
            ({**row, "mean_ap": f"{row['mean_ap']:.6f}"} for row in tables.per_identity()))),
        atomic_write_text(out_dir / "cmc.csv", _csv_text(
            ["rank", "accuracy"],
            ({"rank": k, "accuracy": f"{v:.6f}"}
             for k, v in enumerate(tables.result.cmc, start=1)))),
    ]
    if tables.result.top_k_indices is not None:
        written.append(atomic_write_text(out_dir / "top_k.csv", _csv_text(
            ["query_index", "query_path", "query_pid", "rank", "gallery_index", "gallery_path",
             "gallery_pid", "gallery_camid", "distance", "correct"], _top_k_rows(tables))))
    return written


def summary_markdown(tables: EvalTables, files: Sequence[str]) -> str:
    result = tables.result
    metrics = tables.metrics()
    num_queries = len(tables.query)
    skipped_queries = num_queries - result.num_valid_queries
    lines = [
        "# Re-ID evaluation",
        "",
        f"Model: {tables.model}",
        "",
        f"Data: {tables.data_source}",
        "",
        "## Metrics",
        "",
        "| metric | value | meaning |",
        "| --- | ---: | --- |",
        *(f"| {name} | {value:.4f} | {MEANINGS[name]} |" for name, value in metrics.items()),
        "",
        f"Scored {result.num_valid_queries} of {num_queries} queries; {skipped_queries} had no "
        "true match left in the gallery after "
        + ("same-identity same-camera exclusion" if tables.camera_exclusion else
           "removing junk") + " and are skipped, as the protocol does.",
        "",
        "## Data",
        "",
        "| | images | identities | cameras |",
        "| --- | ---: | ---: | ---: |",
    ]
    for role, records in (("query", tables.query), ("gallery", tables.gallery)):
        cameras = len({r.camid for r in records if r.camid >= 0})
        lines.append(f"| {role} | {len(records)} | {len({r.pid for r in records})} | "
                     f"{cameras or 'n/a'} |")
    if tables.counts:
        lines += ["", *(f"- {key.replace('_', ' ')}: {value}"
                        for key, value in tables.counts.items())]
    lines += ["", "## Settings", "", "| setting | value |", "| --- | --- |",
              *(f"| {key} | {value} |" for key, value in tables.settings.items())]
    if tables.seconds:
        lines += ["", "## Time", "", *(f"- {key}: {value:.2f} s"
                                       for key, value in tables.seconds.items())]
    lines += ["", "## Files", "", *(f"- `{name}`" for name in files), ""]
    return "\n".join(lines)


def write_summary(tables: EvalTables, out_dir: Path, files: Sequence[str]) -> Path:
    return atomic_write_text(out_dir / "summary.md", summary_markdown(tables, files))
