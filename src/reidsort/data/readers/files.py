"""The view of a dataset folder that readers get: image files and folders, no file access.

Readers only look at names, so they run on a scan (:mod:`reidsort.data.scan`) as well as on a
plain listing. Paths are relative to the root, POSIX style.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from reidsort.data.records import ReIDSplit


@dataclass(frozen=True)
class DatasetFiles:
    """``files``: image files (valid or not, readers pick the ones that belong to the dataset);
    ``dirs``: every folder that was walked."""

    root: Path
    files: Sequence[str]
    dirs: Sequence[str]

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    @cached_property
    def _by_folder(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rel in self.files:
            out.setdefault(rel.rpartition("/")[0], []).append(rel)
        return out

    @cached_property
    def _dir_set(self) -> frozenset[str]:
        return frozenset(self.dirs)

    def has_dir(self, folder: str) -> bool:
        return folder in self._dir_set

    def children(self, folder: str) -> list[str]:
        """Image files directly in ``folder`` ("" = the root), sorted."""
        return sorted(self._by_folder.get(folder, []))

    @cached_property
    def _sorted(self) -> list[str]:
        return sorted(self.files)

    def under(self, folder: str) -> list[str]:
        """Image files anywhere below ``folder``, sorted (a prefix range of the sorted list)."""
        prefix = folder + "/"
        start = bisect_left(self._sorted, prefix)
        stop = bisect_left(self._sorted, folder + chr(ord("/") + 1), lo=start)
        return self._sorted[start:stop]

    def subdirs(self, folder: str = "") -> list[str]:
        """Folders directly in ``folder``, sorted (relative paths)."""
        depth = 0 if not folder else folder.count("/") + 1
        prefix = folder + "/" if folder else ""
        return sorted(d for d in self.dirs if d.startswith(prefix) and d.count("/") == depth)


@dataclass
class ReaderOutput:
    """A reader's split plus what it noticed (counts and paths for the scan report)."""

    split: ReIDSplit
    notes: dict[str, Any] = field(default_factory=dict)
