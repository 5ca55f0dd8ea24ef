"""Check a list of records with the dataset scanner's per-file check (no cache: arbitrary paths).

Datasets are checked through :func:`reidsort.data.loading.load_dataset`, which scans the whole
root with a cache; this is for records that do not come from one root.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from reidsort.data.records import ImageRecord
from reidsort.data.scan import INVALID, Reason, ScanOptions, check_images

log = logging.getLogger(__name__)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def drop_unreadable(
    records: Sequence[ImageRecord], num_threads: int = 4, options: ScanOptions | None = None
) -> tuple[list[ImageRecord], list[str]]:
    """Return ``(readable_records, unreadable_paths)``; each unreadable file is logged once."""
    options = options or ScanOptions()
    sizes = [_size(r.path) for r in records]
    checks = check_images([r.path for r in records], sizes, options, threads=num_threads)
    kept, bad = [], []
    for record, size, (status, reason, _, _) in zip(records, sizes, checks):
        if size < 0:
            status, reason = INVALID, Reason.UNREADABLE
        if status == INVALID:
            bad.append(record.path)
            log.warning("skipping unreadable image %s (%s)", record.path, reason)
        else:
            kept.append(record)
    return kept, bad
