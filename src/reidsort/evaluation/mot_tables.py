"""Flat MOT score rows and their tables: console text, Markdown and CSV.

A row holds one sequence's (or the combination's) headline numbers, taken from TrackEval's
result dictionaries: HOTA-family scores are the mean over TrackEval's 19 localisation thresholds
(alpha = 0.05 .. 0.95), as TrackEval reports them. Rows keep fractions (0..1); the console and
Markdown tables show percentages, as TrackEval and the MOTChallenge website do, and the CSV keeps
full-precision fractions for scripts.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

#: Row name of the combination over all sequences (TrackEval's COMBINED_SEQ).
COMBINED = "COMBINED"
SEQUENCE_COLUMN = "sequence"
SCORE_DECIMALS = 2


@dataclass(frozen=True)
class Column:
    """A table column: TrackEval metric, its field, and whether it is a score or a count."""

    name: str
    metric: str
    field: str
    is_score: bool


#: Every column, in table order; a column appears when its metric was evaluated.
COLUMNS: tuple[Column, ...] = (
    Column("HOTA", "HOTA", "HOTA", True),
    Column("DetA", "HOTA", "DetA", True),
    Column("AssA", "HOTA", "AssA", True),
    Column("LocA", "HOTA", "LocA", True),
    Column("DetRe", "HOTA", "DetRe", True),
    Column("DetPr", "HOTA", "DetPr", True),
    Column("AssRe", "HOTA", "AssRe", True),
    Column("AssPr", "HOTA", "AssPr", True),
    Column("IDF1", "Identity", "IDF1", True),
    Column("IDP", "Identity", "IDP", True),
    Column("IDR", "Identity", "IDR", True),
    Column("MOTA", "CLEAR", "MOTA", True),
    Column("MOTP", "CLEAR", "MOTP", True),
    Column("Recall", "CLEAR", "CLR_Re", True),
    Column("Precision", "CLEAR", "CLR_Pr", True),
    Column("TP", "CLEAR", "CLR_TP", False),
    Column("FP", "CLEAR", "CLR_FP", False),
    Column("FN", "CLEAR", "CLR_FN", False),
    Column("IDSW", "CLEAR", "IDSW", False),
    Column("MT", "CLEAR", "MT", False),
    Column("PT", "CLEAR", "PT", False),
    Column("ML", "CLEAR", "ML", False),
    Column("Frag", "CLEAR", "Frag", False),
    Column("GT_IDs", "Count", "GT_IDs", False),
    Column("IDs", "Count", "IDs", False),
    Column("GT_Dets", "Count", "GT_Dets", False),
    Column("Dets", "Count", "Dets", False),
)
#: Columns of the console and Markdown tables (the CSV has all of them).
MAIN_COLUMNS: tuple[str, ...] = (
    "HOTA", "DetA", "AssA", "LocA", "IDF1", "IDP", "IDR", "MOTA", "MOTP",
    "FP", "FN", "IDSW", "MT", "PT", "ML", "Frag",
)
_COLUMNS_BY_NAME = {column.name: column for column in COLUMNS}


def summary_row(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float | int]:
    """Flatten ``{metric: TrackEval result dict}`` into ``{column: value}``."""
    row: dict[str, float | int] = {}
    for column in COLUMNS:
        if column.metric not in results:
            continue
        value = results[column.metric][column.field]
        row[column.name] = float(np.mean(value)) if column.is_score else int(value)
    return row


def _cell(name: str, value: float | int) -> str:
    if _COLUMNS_BY_NAME[name].is_score:
        return f"{100.0 * value:.{SCORE_DECIMALS}f}"
    return str(value)


def _table_cells(rows: Mapping[str, Mapping[str, float | int]],
                 columns: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    present = [name for name in columns if any(name in row for row in rows.values())]
    header = [SEQUENCE_COLUMN, *present]
    body = [[name, *(_cell(c, row[c]) for c in present)] for name, row in rows.items()]
    return header, body


def format_text(rows: Mapping[str, Mapping[str, float | int]],
                columns: Sequence[str] = MAIN_COLUMNS) -> str:
    """Aligned console table; scores in percent."""
    header, body = _table_cells(rows, columns)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(line, widths)))
        for line in [header, *body]
    ]
    return "\n".join(lines) + "\n"


def format_markdown(rows: Mapping[str, Mapping[str, float | int]],
                    columns: Sequence[str] = MAIN_COLUMNS) -> str:
    """GitHub Markdown table; scores in percent, the combined row in bold."""
    header, body = _table_cells(rows, columns)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for line in body:
        if line[0] == COMBINED:
            line = [f"**{cell}**" for cell in line]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines) + "\n"


def format_csv(rows: Mapping[str, Mapping[str, float | int]]) -> str:
    """CSV with every column; scores as fractions at full precision."""
    present = [c.name for c in COLUMNS if any(c.name in row for row in rows.values())]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([SEQUENCE_COLUMN, *present])
    for name, row in rows.items():
        writer.writerow([name, *(repr(row[c]) for c in present)])
    return buffer.getvalue()
