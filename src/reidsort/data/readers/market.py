"""Market-1501 and DukeMTMC-reID: ``root/{bounding_box_train,query,bounding_box_test}/``.

Names: ``<pid>_c<cam>s<seq>_<frame>_<n>.jpg`` (Market-1501, Zheng et al. 2015) and
``<pid>_c<cam>_f<frame>.jpg`` (DukeMTMC-reID, Zheng et al. 2017); both start ``<pid>_c<cam>``.
pid -1 (junk) is dropped, as the benchmark protocol does; pid 0 (distractors) stays in the
gallery as negatives and is dropped from training and query.
"""

from __future__ import annotations

import re

from reidsort.data.readers.files import DatasetFiles, ReaderOutput
from reidsort.data.records import DISTRACTOR_PID, JUNK_PID, ImageRecord, ReIDSplit

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
#: split -> folder, in the order they are read (and errors reported)
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def _read_folder(files: DatasetFiles, folder: str, dataset: str,
                 keep_distractors: bool) -> tuple[list[ImageRecord], int]:
    if not files.has_dir(folder):
        raise FileNotFoundError(f"{dataset} split folder not found: {files.path(folder)}")
    records, junk = [], 0
    for rel in files.children(folder):
        name = rel.rpartition("/")[2]
        match = MARKET_NAME.match(name)
        if match is None:
            raise ValueError(
                f"{files.path(rel)}: name does not follow {dataset} naming '<pid>_c<cam>...' "
                "(use data=folder for one folder per identity)"
            )
        pid, camid = int(match.group(1)), int(match.group(2))
        if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
            junk += 1
            continue
        records.append(ImageRecord(files.path(rel), pid, camid))
    return records, junk


def read_market_layout(files: DatasetFiles, dataset: str = "Market-1501") -> ReaderOutput:
    parts, dropped = {}, {}
    for split, folder in MARKET_FOLDERS.items():
        parts[split], dropped[split] = _read_folder(files, folder, dataset,
                                                    keep_distractors=split == "gallery")
    for split, folder in MARKET_FOLDERS.items():
        if not parts[split]:
            raise ValueError(f"{files.path(folder)}: no images")
    used = {f"{folder}/" for folder in MARKET_FOLDERS.values()}
    outside = sum(1 for f in files.files if f[: f.find("/") + 1] not in used)
    return ReaderOutput(ReIDSplit(**parts), {
        "junk_or_distractor_images_dropped": sum(dropped.values()),
        "images_outside_split_folders": outside,
    })


def read_market1501_files(files: DatasetFiles) -> ReaderOutput:
    return read_market_layout(files, "Market-1501")


def read_dukemtmc_files(files: DatasetFiles) -> ReaderOutput:
    return read_market_layout(files, "DukeMTMC-reID")
