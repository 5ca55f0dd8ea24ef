"""MARS (Zheng et al. 2016), used image by image: ``root/bbox_train/<pid>/*.jpg``,
``root/bbox_test/<pid>/*.jpg`` and optionally ``root/info/``.

Names ``<pid>C<cam>T<tracklet>F<frame>.jpg``; pid ``00-1`` (junk) is dropped, pid 0 (distractors)
stays in the gallery only. Query/gallery: with the official ``info/`` files (``test_name.txt``,
``tracks_test_info.mat``, ``query_IDX.mat``) each query tracklet gives one query image and every
other test tracklet one gallery image, the middle frame (image-level evaluation of the
video protocol: a tractable 1,980 x ~10k problem instead of all 680k test frames). Without
``info/``, one query per identity is drawn from ``bbox_test`` (seeded, deterministic). Without
``bbox_test`` (e.g. a training-only subset) there is no query/gallery: set data.val_identities.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from reidsort.data.readers.files import DatasetFiles, ReaderOutput
from reidsort.data.readers.names import MARS_NAME, mars_pid
from reidsort.data.records import (
    DISTRACTOR_PID,
    JUNK_PID,
    ImageRecord,
    ReIDSplit,
    carve_query_gallery,
)

TRAIN_DIR, TEST_DIR, INFO_DIR = "bbox_train", "bbox_test", "info"
INFO_FILES = ("test_name.txt", "tracks_test_info.mat", "query_IDX.mat")
#: seed of the query draw when there is no info/ folder
QUERY_SEED = 0


def _records(files: DatasetFiles, folder: str) -> tuple[list[ImageRecord], int]:
    records, junk = [], 0
    for rel in files.under(folder):
        name = rel.rpartition("/")[2]
        match = MARS_NAME.match(name)
        if match is None:
            raise ValueError(f"{files.path(rel)}: name does not follow MARS naming "
                             "'<pid>C<cam>T<tracklet>F<frame>.jpg'")
        pid = mars_pid(match.group(1))
        if pid == JUNK_PID:
            junk += 1
            continue
        records.append(ImageRecord(files.path(rel), pid, int(match.group(2))))
    return records, junk


def _official_query_gallery(files: DatasetFiles, test_names: set[str]
                            ) -> tuple[list[ImageRecord], list[ImageRecord], int]:
    from scipy.io import loadmat

    info = os.path.join(files.root, INFO_DIR)
    with open(os.path.join(info, "test_name.txt"), encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    tracks = np.asarray(loadmat(os.path.join(info, "tracks_test_info.mat"))["track_test_info"])
    query_idx = set((np.asarray(loadmat(os.path.join(info, "query_IDX.mat"))["query_IDX"])
                     .ravel() - 1).tolist())  # 1-based in the file
    query, gallery, missing = [], [], 0
    for t, (start, end, pid, camid) in enumerate(tracks.astype(np.int64)):
        if pid == JUNK_PID:
            continue
        name = names[(int(start) - 1 + int(end) - 1) // 2]  # middle frame (1-based, inclusive)
        rel = f"{TEST_DIR}/{name[:4]}/{name}"
        if rel not in test_names:
            missing += 1
            continue
        record = ImageRecord(files.path(rel), int(pid), int(camid))
        if t in query_idx:
            if pid != DISTRACTOR_PID:
                query.append(record)
        else:
            gallery.append(record)
    return query, gallery, missing


def read_mars_files(files: DatasetFiles) -> ReaderOutput:
    if not files.has_dir(TRAIN_DIR):
        raise FileNotFoundError(f"MARS folder not found: {files.path(TRAIN_DIR)}")
    train, junk = _records(files, TRAIN_DIR)
    train = [r for r in train if r.pid != DISTRACTOR_PID]
    if not train:
        raise ValueError(f"{files.path(TRAIN_DIR)}: no images")
    notes: dict = {"junk_images_dropped": junk, "query_protocol": "none (no bbox_test)"}
    query: list[ImageRecord] = []
    gallery: list[ImageRecord] = []
    if files.has_dir(TEST_DIR):
        info = os.path.join(files.root, INFO_DIR)
        if all(os.path.isfile(os.path.join(info, n)) for n in INFO_FILES):
            query, gallery, missing = _official_query_gallery(files, set(files.under(TEST_DIR)))
            notes.update(query_protocol="official tracklets (middle frame)",
                         tracklet_images_missing=missing)
        else:
            test, test_junk = _records(files, TEST_DIR)
            notes["junk_images_dropped"] += test_junk
            people = [r for r in test if r.pid != DISTRACTOR_PID]
            query, gallery = carve_query_gallery(people, np.random.default_rng(QUERY_SEED))
            gallery += [r for r in test if r.pid == DISTRACTOR_PID]
            notes["query_protocol"] = "one query per identity (no info/ folder)"
        notes["tracklets_per_camera"] = dict(sorted(Counter(r.camid for r in gallery).items()))
    return ReaderOutput(ReIDSplit(train, query, gallery), notes)
