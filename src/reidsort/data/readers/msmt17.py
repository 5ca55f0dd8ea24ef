"""MSMT17 (Wei et al. 2018) from its list files: ``root/list_{train,val,query,gallery}.txt``
with lines ``<relative path> <pid>``, images under ``train/`` + ``test/`` (V1) or
``mask_train_v2/`` + ``mask_test_v2/`` (V2).

Names ``<pid>_<index>_<cam>_<date><time>_<n>.jpg``: the camera is the third field (1-15).
Training uses list_train + list_val (the usual practice; list_val is a subset of the training
identities). pids are shifted by +1 so that no identity gets the distractor pid 0.
"""

from __future__ import annotations

import os

from reidsort.data.readers.files import DatasetFiles, ReaderOutput
from reidsort.data.records import ImageRecord, ReIDSplit

IMAGE_DIRS = (("train", "test"), ("mask_train_v2", "mask_test_v2"))
LISTS = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
         "gallery": ("list_gallery.txt",)}
PID_OFFSET = 1


def _camera(name: str, line: str) -> int:
    try:
        return int(name.split("_")[2])
    except (IndexError, ValueError):
        raise ValueError(f"{line}: MSMT17 names carry the camera as their third '_' field")


def read_msmt17_files(files: DatasetFiles) -> ReaderOutput:
    dirs = next((d for d in IMAGE_DIRS if files.has_dir(d[0]) and files.has_dir(d[1])), None)
    if dirs is None:
        raise FileNotFoundError(f"{files.root}: MSMT17 image folders not found "
                                "(train/ + test/ or mask_train_v2/ + mask_test_v2/)")
    present = set(files.files)
    parts: dict[str, list[ImageRecord]] = {}
    missing = 0
    for split, list_names in LISTS.items():
        folder = dirs[0] if split == "train" else dirs[1]
        records: list[ImageRecord] = []
        for list_name in list_names:
            list_path = os.path.join(files.root, list_name)
            if not os.path.isfile(list_path):
                if list_name == "list_val.txt":
                    continue  # optional
                raise FileNotFoundError(f"MSMT17 list file not found: {list_path}")
            with open(list_path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    fields = line.split()
                    if not fields:
                        continue
                    where = f"{list_path}:{number}"
                    if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                        raise ValueError(f"{where}: expected '<relative path> <pid>'")
                    rel = f"{folder}/{fields[0]}"
                    if rel not in present:
                        missing += 1
                        continue
                    camid = _camera(fields[0].rpartition("/")[2], where)
                    records.append(ImageRecord(files.path(rel), int(fields[1]) + PID_OFFSET,
                                               camid))
        if not records:
            raise ValueError(f"{files.root}: no {split} images found from {', '.join(list_names)}")
        parts[split] = records
    return ReaderOutput(ReIDSplit(**parts), {"listed_images_missing": missing})
