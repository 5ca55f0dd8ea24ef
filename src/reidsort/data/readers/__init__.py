"""Dataset readers: ``DatasetFiles`` (names only) -> ``ReaderOutput`` (records + notes).

``READERS`` maps ``data.format`` to a reader. ``synthetic`` data is written in the Market-1501
layout, so it uses that reader.
"""

from __future__ import annotations

from collections.abc import Callable

from reidsort.data.readers.files import DatasetFiles, ReaderOutput
from reidsort.data.readers.folder import read_identity_folder_files
from reidsort.data.readers.mars import read_mars_files
from reidsort.data.readers.market import read_dukemtmc_files, read_market1501_files
from reidsort.data.readers.msmt17 import read_msmt17_files
from reidsort.data.readers.names import MARS_NAME, camera_from_name

Reader = Callable[[DatasetFiles], ReaderOutput]

READERS: dict[str, Reader] = {
    "market1501": read_market1501_files,
    "synthetic": read_market1501_files,
    "dukemtmc": read_dukemtmc_files,
    "msmt17": read_msmt17_files,
    "mars": read_mars_files,
    "folder": read_identity_folder_files,
}


def get_reader(format: str) -> Reader:
    try:
        return READERS[format]
    except KeyError:
        raise ValueError(f"data.format={format!r}: expected one of {', '.join(READERS)}") from None


__all__ = ["READERS", "DatasetFiles", "ReaderOutput", "Reader", "get_reader",
           "camera_from_name", "MARS_NAME"]
