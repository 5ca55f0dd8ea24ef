"""Dataset readers by name, for code that wants records without the scan report.

The readers themselves live in :mod:`reidsort.data.readers` (one module per dataset) and the
scan-read-filter pipeline in :mod:`reidsort.data.loading`; this module keeps the original entry
points (:func:`read_market1501`, :func:`read_identity_folders`, ...) working on a plain listing:
names only, no content checks, empty files skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from reidsort.data.readers import DatasetFiles, camera_from_name, get_reader
from reidsort.data.readers.market import MARKET_NAME
from reidsort.data.readers.names import MARS_NAME
from reidsort.data.records import (
    JUNK_PID,
    ImageRecord,
    ReIDSplit,
    carve_query_gallery,
    drop_small_identities,
    relabel,
    split_identities,
)
from reidsort.data.scan import INVALID, scan_dataset


def _require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} is not a folder: {path}")
    return path


def read_dataset(format: str, root: str | os.PathLike) -> ReIDSplit:
    """Read ``root`` as ``format`` (a key of :data:`reidsort.data.readers.READERS`) by names
    only; empty files are left out."""
    root = _require_dir(Path(root), "dataset root")
    listing = scan_dataset(root, verify=False)
    files = DatasetFiles(root, listing.image_paths(), listing.dirs)
    split = get_reader(format)(files).split
    empty = {os.path.join(root, p) for p, _ in listing.entries(INVALID)}
    return ReIDSplit(*([r for r in part if r.path not in empty]
                       for part in (split.train, split.query, split.gallery)))


def read_market1501(root: str | os.PathLike) -> ReIDSplit:
    """Market-1501 layout: ``root/{bounding_box_train,query,bounding_box_test}``."""
    return read_dataset("market1501", root)


def read_identity_folders(root: str | os.PathLike) -> list[ImageRecord]:
    """One sub-folder per identity; camera ids from the file names when they carry them."""
    return read_dataset("folder", root).train


__all__ = [
    "ImageRecord", "ReIDSplit", "JUNK_PID", "MARKET_NAME", "MARS_NAME", "camera_from_name",
    "carve_query_gallery", "drop_small_identities", "read_dataset", "read_identity_folders",
    "read_market1501", "relabel", "split_identities",
]
