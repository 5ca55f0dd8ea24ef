"""MOTChallenge file formats: ``det.txt``, ``gt.txt``, ``seqinfo.ini`` and result files.

Conventions enforced here because popular trackers get them wrong: frames are 1-based, ids are
positive integers, boxes are ``tlwh`` in pixels, and a result file has exactly one line per box,
``frame,id,x,y,w,h,score,-1,-1,-1``, written atomically (a crash never leaves half a file).

Column layouts (MOTChallenge devkit documentation):

* ``det.txt``: ``frame,-1,x,y,w,h,score`` followed by three world coordinates (10 columns,
  MOT15-17) or not (7 columns).
* ``gt.txt``: MOT15 has 10 columns ``frame,id,x,y,w,h,flag,wx,wy,wz``; MOT16 and later have 9
  columns ``frame,id,x,y,w,h,flag,class,visibility``; 7 columns (no class, no visibility) are
  accepted too. ``flag`` 0 marks boxes an evaluation ignores.
"""

from __future__ import annotations

import configparser
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidsort.tracking.detection import tlwh_to_xyxy, xyxy_to_tlwh
from reidsort.tracking.tracker import OutputColumn
from reidsort.utils.io import atomic_write_text

DETECTION_COLUMN_COUNTS: tuple[int, ...] = (7, 10)
GROUND_TRUTH_COLUMN_COUNTS: tuple[int, ...] = (7, 9, 10)
RESULT_COLUMN_COUNTS: tuple[int, ...] = (7, 9, 10)
#: Placeholder written for the unused world-coordinate columns of result files.
UNUSED_VALUE: int = -1
#: Class id given to detections read from ``det.txt`` (which has no class column).
DEFAULT_CLASS_ID: int = 0
SEQINFO_SECTION: str = "Sequence"


def _load_table(path: str | os.PathLike, allowed_columns: tuple[int, ...], kind: str) -> np.ndarray:
    """Read a comma-separated numeric table, checking the column count and finiteness."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return np.zeros((0, max(allowed_columns)))
    try:
        table = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: not a comma-separated numeric {kind} file ({error})") from None
    if table.shape[1] not in allowed_columns:
        raise ValueError(
            f"{path}: {kind} files have {' or '.join(map(str, allowed_columns))} columns, "
            f"found {table.shape[1]}"
        )
    if not np.isfinite(table).all():
        row = int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0])
        raise ValueError(f"{path}: line {row + 1} has a non-finite value")
    frames = table[:, 0]
    bad = (frames < 1) | (frames != np.round(frames))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: line {row + 1} has frame {frames[row]:g}; "
            "MOTChallenge frames are integers starting at 1"
        )
    return table


def _frame_slices(frame_ids: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices per frame (rows of one frame keep their file order)."""
    order = np.argsort(frame_ids, kind="stable")
    frames, starts = np.unique(frame_ids[order], return_index=True)
    return {int(f): rows for f, rows in zip(frames, np.split(order, starts[1:]))}


@dataclass(frozen=True)
class SequenceInfo:
    """Contents of a MOTChallenge ``seqinfo.ini``."""

    name: str
    image_dir: str
    frame_rate: float
    length: int
    width: int
    height: int
    image_ext: str


def read_seqinfo(path: str | os.PathLike) -> SequenceInfo:
    """Read ``seqinfo.ini`` (``path`` may be the file or the sequence folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "seqinfo.ini"
    if not path.is_file():
        raise FileNotFoundError(f"seqinfo.ini not found: {path}")
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keys are camelCase
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except configparser.Error as error:
        raise ValueError(f"{path}: not a valid ini file ({error.message})") from None
    if not parser.has_section(SEQINFO_SECTION):
        raise ValueError(f"{path}: missing [{SEQINFO_SECTION}] section")
    section = parser[SEQINFO_SECTION]

    def field(key: str, convert):
        if key not in section:
            raise ValueError(f"{path}: missing key {key!r} in [{SEQINFO_SECTION}]")
        try:
            return convert(section[key].strip())
        except ValueError:
            raise ValueError(f"{path}: bad value for {key!r}: {section[key]!r}") from None

    info = SequenceInfo(
        name=field("name", str),
        image_dir=section.get("imDir", "img1").strip(),
        frame_rate=field("frameRate", float),
        length=field("seqLength", int),
        width=field("imWidth", int),
        height=field("imHeight", int),
        image_ext=section.get("imExt", ".jpg").strip(),
    )
    if info.length < 0 or info.width <= 0 or info.height <= 0 or not info.frame_rate > 0:
        raise ValueError(
            f"{path}: seqLength, imWidth, imHeight and frameRate must be positive: {info}"
        )
    return info


@dataclass
class MotDetections:
    """Detections of one sequence; ``tlwh`` rows align with ``frame_ids`` and ``scores``."""

    frame_ids: np.ndarray
    tlwh: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def last_frame(self) -> int:
        return int(self.frame_ids.max()) if len(self) else 0

    def iter_frames(
        self, first_frame: int = 1, last_frame: int | None = None, class_id: int = DEFAULT_CLASS_ID
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(frame, dets, rows)`` for every frame in range, empty frames included.

        ``dets`` is the tracker input ``(n, 6)`` ``[x1, y1, x2, y2, score, cls]``; ``rows`` are
        the indices of those detections in this object (to look up embeddings).
        """
        last_frame = self.last_frame if last_frame is None else last_frame
        slices = _frame_slices(self.frame_ids)
        empty = np.zeros(0, dtype=np.int64)
        xyxy = tlwh_to_xyxy(self.tlwh)
        for frame in range(first_frame, last_frame + 1):
            rows = slices.get(frame, empty)
            dets = np.column_stack(
                [xyxy[rows], self.scores[rows], np.full(len(rows), float(class_id))]
            )
            yield frame, dets.reshape(-1, 6), rows


def read_mot_detections(path: str | os.PathLike) -> MotDetections:
    """Read a MOTChallenge ``det.txt`` (10- or 7-column)."""
    table = _load_table(path, DETECTION_COLUMN_COUNTS, "detection")
    return MotDetections(table[:, 0].astype(np.int64), table[:, 2:6].copy(), table[:, 6].copy())


@dataclass
class MotGroundTruth:
    """Ground-truth boxes; ``class_ids`` is -1 and ``visibility`` 1.0 where the file has none."""

    frame_ids: np.ndarray
    track_ids: np.ndarray
    tlwh: np.ndarray
    consider: np.ndarray
    class_ids: np.ndarray
    visibility: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)


def read_mot_ground_truth(path: str | os.PathLike) -> MotGroundTruth:
    """Read a MOTChallenge ``gt.txt`` (MOT15 10-column, MOT16+ 9-column or 7-column)."""
    table = _load_table(path, GROUND_TRUTH_COLUMN_COUNTS, "ground-truth")
    count = len(table)
    has_class = table.shape[1] == 9
    return MotGroundTruth(
        frame_ids=table[:, 0].astype(np.int64),
        track_ids=table[:, 1].astype(np.int64),
        tlwh=table[:, 2:6].copy(),
        consider=table[:, 6] != 0,
        class_ids=table[:, 7].astype(np.int64) if has_class else np.full(count, -1, np.int64),
        visibility=table[:, 8].copy() if has_class else np.ones(count),
    )


@dataclass
class MotResults:
    """A tracker result file: one box per row."""

    frame_ids: np.ndarray
    track_ids: np.ndarray
    tlwh: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)


def read_mot_results(path: str | os.PathLike) -> MotResults:
    """Read a result file in MOTChallenge form (as written by :func:`write_mot_results`)."""
    table = _load_table(path, RESULT_COLUMN_COUNTS, "result")
    track_ids = table[:, 1]
    bad = (track_ids < 1) | (track_ids != np.round(track_ids))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: line {row + 1} has track id {track_ids[row]:g}; ids must be integers >= 1"
        )
    return MotResults(
        table[:, 0].astype(np.int64),
        track_ids.astype(np.int64),
        table[:, 2:6].copy(),
        table[:, 6].copy(),
    )


#: Score written for a reported track without a detection this frame (a predicted box, e.g.
#: DeepSORT / StrongSORT with ``output_lost_frames`` > 0, whose output score is NaN): MOTChallenge
#: evaluation ignores the column, and -1 marks "no detection" like the file's other -1 fields.
MISSED_TRACK_SCORE: float = -1.0


def tracker_output_to_mot_rows(frame: int, tracker_output: np.ndarray) -> np.ndarray:
    """Tracker output ``(M, 8)`` of one frame -> result rows ``(M, 7)`` ``[frame, id, x, y, w, h,
    score]`` (a NaN score, a track without a detection, becomes ``MISSED_TRACK_SCORE``)."""
    tracker_output = np.asarray(tracker_output, dtype=np.float64).reshape(-1, len(OutputColumn))
    rows = np.empty((len(tracker_output), 7))
    rows[:, 0] = frame
    rows[:, 1] = tracker_output[:, OutputColumn.TRACK_ID]
    rows[:, 2:6] = xyxy_to_tlwh(tracker_output[:, OutputColumn.X1 : OutputColumn.Y2 + 1])
    scores = tracker_output[:, OutputColumn.SCORE]
    rows[:, 6] = np.where(np.isnan(scores), MISSED_TRACK_SCORE, scores)
    return rows


def write_mot_results(path: str | os.PathLike, rows: np.ndarray, decimals: int = 2) -> Path:
    """Write ``rows`` (M, 7) [frame, id, x, y, w, h, score] (or (M, 6), score 1) atomically.

    Lines come out sorted by frame, then id. Frames and ids must be integers >= 1; a 0-based
    frame is rejected rather than silently shifted.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        rows = rows.reshape(0, 7)
    if rows.ndim != 2 or rows.shape[1] not in (6, 7):
        raise ValueError(
            f"result rows must be (M, 7) [frame, id, x, y, w, h, score], got {rows.shape}"
        )
    if rows.shape[1] == 6:
        rows = np.column_stack([rows, np.ones(len(rows))])
    if not np.isfinite(rows).all():
        raise ValueError(f"result rows for {path} contain non-finite values")
    for column, name in ((0, "frame"), (1, "track id")):
        values = rows[:, column]
        bad = (values < 1) | (values != np.round(values))
        if bad.any():
            raise ValueError(
                f"result row {int(np.flatnonzero(bad)[0])} for {path} has {name} "
                f"{values[bad][0]:g}; "
                f"MOTChallenge wants integers >= 1"
            )
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    buffer = io.StringIO()
    float_format = f"%.{int(decimals)}f"
    table = np.column_stack([rows, np.full((len(rows), 3), UNUSED_VALUE)])
    np.savetxt(buffer, table, fmt=["%d", "%d"] + [float_format] * 5 + ["%d"] * 3, delimiter=",")
    return atomic_write_text(path, buffer.getvalue())


class MotResultsBuffer:
    """Collects tracker outputs frame by frame and writes one result file at the end."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []

    def add(self, frame: int, tracker_output: np.ndarray) -> None:
        if int(frame) != frame or frame < 1:
            raise ValueError(f"frames are 1-based integers, got {frame}")
        self._chunks.append(tracker_output_to_mot_rows(int(frame), tracker_output))

    def rows(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros((0, 7))

    def write(self, path: str | os.PathLike, decimals: int = 2) -> Path:
        return write_mot_results(path, self.rows(), decimals)
