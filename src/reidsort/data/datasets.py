"""Dataset readers: turn a folder into a list of ``ImageRecord(path, pid, camid)``.

Readers only look at names (fast, no decoding). Identity labels are kept as found on disk
(``pid``); training relabels them to 0..C-1 (:func:`relabel`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidsort.data.image_io import is_image_file

#: Market-1501 / DukeMTMC-reID names: ``0002_c1s1_000451_03.jpg`` (pid -1 = junk, 0 = distractor)
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
#: MARS names: ``0001C1T0001F001.jpg``
MARS_NAME = re.compile(r"^(\d+)C(\d+)T\d+F\d+")
JUNK_PID = -1


@dataclass(frozen=True)
class ImageRecord:
    path: str
    pid: int
    camid: int


@dataclass(frozen=True)
class ReIDSplit:
    """Training images plus a query/gallery pair for retrieval validation."""

    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]


def _require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} is not a folder: {path}")
    return path


def _image_files(folder: Path) -> list[Path]:
    """Non-empty image files directly in ``folder``, sorted by name (deterministic)."""
    files = []
    for entry in sorted(folder.iterdir()):
        try:
            if entry.is_file() and is_image_file(entry) and entry.stat().st_size > 0:
                files.append(entry)
        except OSError:  # broken symlink, permission
            continue
    return files


def camera_from_name(name: str) -> int | None:
    """Camera id from a Market-1501 (``_c3``) or MARS (``C3T``) style file name, else None."""
    for pattern in (MARKET_NAME, MARS_NAME):
        match = pattern.match(name)
        if match:
            return int(match.group(2))
    return None


def read_market1501_folder(folder: Path, keep_distractors: bool) -> list[ImageRecord]:
    """Read one Market-1501 split folder. Junk (pid -1) is dropped, as the benchmark does."""
    _require_dir(folder, "Market-1501 split folder")
    records = []
    for path in _image_files(folder):
        match = MARKET_NAME.match(path.name)
        if match is None:
            raise ValueError(
                f"{path}: name does not follow Market-1501 naming '<pid>_c<cam>...' "
                "(use data=folder for one folder per identity)"
            )
        pid, camid = int(match.group(1)), int(match.group(2))
        if pid == JUNK_PID or (pid == 0 and not keep_distractors):
            continue
        records.append(ImageRecord(str(path), pid, camid))
    return records


def read_market1501(root: str | Path) -> ReIDSplit:
    root = _require_dir(Path(root), "dataset root")
    train = read_market1501_folder(root / "bounding_box_train", keep_distractors=False)
    query = read_market1501_folder(root / "query", keep_distractors=False)
    gallery = read_market1501_folder(root / "bounding_box_test", keep_distractors=True)
    for name, records in (("bounding_box_train", train), ("query", query),
                          ("bounding_box_test", gallery)):
        if not records:
            raise ValueError(f"{root / name}: no images")
    return ReIDSplit(train=train, query=query, gallery=gallery)


def read_identity_folders(root: str | Path) -> list[ImageRecord]:
    """One sub-folder per identity. Camera ids come from the file names when they carry them."""
    root = _require_dir(Path(root), "dataset root")
    id_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not id_dirs:
        raise ValueError(f"{root}: no identity sub-folders (expected root/<identity>/*.jpg)")
    records: list[ImageRecord] = []
    for pid, id_dir in enumerate(id_dirs):
        files = _image_files(id_dir)
        if not files:
            raise ValueError(f"{id_dir}: identity folder without images")
        for path in files:
            camid = camera_from_name(path.name)
            records.append(ImageRecord(str(path), pid, -1 if camid is None else camid))
    return records


def split_identities(
    records: Sequence[ImageRecord], val_identities: float | int, seed: int
) -> ReIDSplit:
    """Identity-disjoint train/validation split; validation is cut into query and gallery.

    For each validation identity one query image is taken per camera (when file names carry
    cameras, so the Market-1501 protocol can exclude same-camera matches); without cameras,
    one image is the query and the rest the gallery, each with its own pseudo-camera so only
    the query image itself is excluded.
    """
    pids = sorted({r.pid for r in records})
    count = int(round(val_identities * len(pids))) if 0 < val_identities < 1 else int(val_identities)
    if not 1 <= count < len(pids):
        raise ValueError(
            f"val_identities={val_identities} gives {count} of {len(pids)} identities; "
            "need at least 1 for validation and 1 for training"
        )
    rng = np.random.default_rng(seed)
    val_pids = set(rng.choice(pids, size=count, replace=False).tolist())
    train = [r for r in records if r.pid not in val_pids]
    query: list[ImageRecord] = []
    gallery: list[ImageRecord] = []
    by_pid: dict[int, list[ImageRecord]] = {}
    for r in records:
        if r.pid in val_pids:
            by_pid.setdefault(r.pid, []).append(r)
    for pid in sorted(by_pid):
        items = by_pid[pid]
        if len(items) < 2:
            continue  # no true match possible
        cams = sorted({r.camid for r in items})
        if len(cams) >= 2 and -1 not in cams:
            query_cam = cams[int(rng.integers(len(cams)))]
            in_cam = [r for r in items if r.camid == query_cam]
            q = in_cam[int(rng.integers(len(in_cam)))]
            query.append(q)
            gallery.extend(r for r in items if r is not q)
        else:
            q_index = int(rng.integers(len(items)))
            for i, r in enumerate(items):
                if i == q_index:
                    query.append(ImageRecord(r.path, r.pid, 0))
                else:
                    gallery.append(ImageRecord(r.path, r.pid, 1))
    if not query:
        raise ValueError("validation split has no identity with two or more images")
    return ReIDSplit(train=train, query=query, gallery=gallery)


def relabel(records: Sequence[ImageRecord]) -> tuple[list[int], dict[int, int]]:
    """Map the identities of ``records`` to contiguous labels 0..C-1 (sorted by pid)."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [mapping[r.pid] for r in records], mapping
