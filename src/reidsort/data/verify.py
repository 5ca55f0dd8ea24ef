"""Decode every image once before training so bad files are dropped and counted up front."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from reidsort.data.datasets import ImageRecord
from reidsort.data.image_io import read_image_rgb

log = logging.getLogger(__name__)


def _readable(record: ImageRecord) -> bool:
    return read_image_rgb(record.path) is not None


def drop_unreadable(
    records: Sequence[ImageRecord], num_threads: int = 4
) -> tuple[list[ImageRecord], list[str]]:
    """Return ``(readable_records, unreadable_paths)``; each unreadable file is logged once."""
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        ok = list(pool.map(_readable, records, chunksize=64))
    kept = [r for r, good in zip(records, ok) if good]
    bad = [r.path for r, good in zip(records, ok) if not good]
    for path in bad:
        log.warning("skipping unreadable image %s", path)
    return kept, bad
