"""Generic folder per identity: ``root/<identity>/**/*.jpg``.

Images anywhere below an identity folder belong to it (``person/cam1/x.jpg`` works). Camera ids
come from Market-1501 (``_c3``) or MARS (``C3T``) style file names when present, else unknown.
Identity folders named by positive integers keep those numbers as pids (so pids match the file
names of MARS-style data); otherwise identities are numbered 1.. in name order (0 is the
distractor id by convention).
"""

from __future__ import annotations

import logging

from reidsort.data.readers.files import DatasetFiles, ReaderOutput
from reidsort.data.readers.names import camera_from_name
from reidsort.data.records import UNKNOWN_CAMERA, ImageRecord, ReIDSplit

log = logging.getLogger(__name__)


def _pids(names: list[str]) -> list[int]:
    numbers = [int(n) for n in names if n.isdigit()]
    if len(numbers) == len(names) and min(numbers) > 0 and len(set(numbers)) == len(numbers):
        return [int(n) for n in names]
    return list(range(1, len(names) + 1))


def read_identity_folder_files(files: DatasetFiles) -> ReaderOutput:
    id_dirs = files.subdirs("")
    if not id_dirs:
        raise ValueError(f"{files.root}: no identity sub-folders (expected root/<identity>/*.jpg)")
    records: list[ImageRecord] = []
    empty: list[str] = []
    for pid, id_dir in zip(_pids(id_dirs), id_dirs):
        paths = files.under(id_dir)
        if not paths:
            empty.append(id_dir)
            continue
        for rel in paths:
            camid = camera_from_name(rel.rpartition("/")[2])
            records.append(ImageRecord(files.path(rel), pid,
                                       UNKNOWN_CAMERA if camid is None else camid))
    if not records:
        raise ValueError(f"{files.path(empty[0])}: identity folder without images")
    for id_dir in empty:
        log.warning("skipping identity folder without images: %s", files.path(id_dir))
    return ReaderOutput(ReIDSplit(records, [], []), {
        "empty_identity_folders": [files.path(d) for d in empty],
        "images_outside_identity_folders": len(files.children("")),
    })
