"""Write any dataset as folder-per-identity: ``out/<split>/<pid:04d>/<image>``, by symlink, hard
link or copy (the layout of torchvision ``ImageFolder`` and many Re-ID training scripts).

File names are kept when they already carry the camera (Market-1501, DukeMTMC-reID, MARS
names), so ``data=folder`` reads the cameras back; other names get a ``<pid>_c<cam>_`` prefix.
Distractors (pid 0) would become an identity of their own in this layout and are left out unless
asked for.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reidsort.data.readers import camera_from_name
from reidsort.data.records import DISTRACTOR_PID, UNKNOWN_CAMERA, ImageRecord, ReIDSplit

MODES = ("symlink", "hardlink", "copy")
SPLIT_NAMES = ("train", "query", "gallery")


def output_name(record: ImageRecord) -> str:
    name = os.path.basename(record.path)
    if record.camid == UNKNOWN_CAMERA or camera_from_name(name) == record.camid:
        return name
    return f"{record.pid:04d}_c{record.camid}_{name}"


def _place(source: str, target: Path, mode: str) -> None:
    if mode == "symlink":
        os.symlink(os.path.abspath(source), target)
    elif mode == "hardlink":
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def write_identity_folders(split: ReIDSplit, out: str | os.PathLike, mode: str = "symlink",
                           splits: Sequence[str] = SPLIT_NAMES,
                           keep_distractors: bool = False) -> dict[str, Any]:
    """Write ``split`` under ``out`` (which must exist and be empty); returns per-split counts.
    Two images with the same name in one identity get ``_1``, ``_2``... suffixes."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    unknown = set(splits) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}: expected {', '.join(SPLIT_NAMES)}")
    out = Path(out)
    counts: dict[str, Any] = {}
    for name in splits:
        records = [r for r in getattr(split, name)
                   if keep_distractors or r.pid != DISTRACTOR_PID]
        if not records:
            continue
        folders: set[Path] = set()
        taken: set[Path] = set()
        for record in records:
            folder = out / name / f"{record.pid:04d}"
            if folder not in folders:
                folder.mkdir(parents=True, exist_ok=True)
                folders.add(folder)
            target = folder / output_name(record)
            stem, suffix, n = target.stem, target.suffix, 0
            while target in taken:
                n += 1
                target = folder / f"{stem}_{n}{suffix}"
            taken.add(target)
            _place(record.path, target, mode)
        counts[name] = {"images": len(records), "identities": len({r.pid for r in records})}
    return counts
