"""File-name conventions of public Re-ID datasets."""

from __future__ import annotations

import re

from reidsort.data.readers.market import MARKET_NAME

#: MARS: ``0001C1T0001F001.jpg`` = pid 1, camera 1, tracklet 1, frame 1; junk is ``00-1C...``
MARS_NAME = re.compile(r"^(\d+|\d\d-1)C(\d+)T(\d+)F(\d+)")


def camera_from_name(name: str) -> int | None:
    """Camera id from a Market-1501 (``_c3``) or MARS (``C3T``) style file name, else None."""
    for pattern in (MARKET_NAME, MARS_NAME):
        match = pattern.match(name)
        if match:
            return int(match.group(2))
    return None


def mars_pid(text: str) -> int:
    """MARS pid field: digits, or ``00-1`` for junk (-1)."""
    return -1 if text.endswith("-1") else int(text)
