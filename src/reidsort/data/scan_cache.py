"""Where scan results are cached, and how they are read back.

The cache lives in the dataset itself (``<root>/.reidsort_cache/``) so it follows the data when
the folder is moved or shared. A read-only root (by its permission bits, even for the
superuser) falls back to a folder under ``paths.data_dir`` keyed by the root's absolute path;
when neither is writable the scan still works, it is just not cached (a warning says so).

Two files per scanner version and options:

* ``scan_v<version>_<options>.json``: the listing fingerprint and the results (one status
  character per entry, the reasons of the non-valid ones, image sizes) -- all an unchanged tree
  needs, small enough to parse in milliseconds for 100k files;
* ``scan_v<version>_<options>.files.json``: the paths, sizes and modification times the results
  belong to, read only when the tree changed, to re-check the changed files alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reidsort.data.scan import (
    CACHE_DIRNAME,
    INVALID,
    SCANNER_VERSION,
    SKIPPED,
    VALID,
    Check,
    ScanOptions,
    ScanResult,
)
from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

STATUS_CODES = {VALID: "v", INVALID: "i", SKIPPED: "s"}
STATUS_OF_CODE = {code: status for status, code in STATUS_CODES.items()}
KEY_SUFFIX = ".files.json"


@dataclass
class CachedScan:
    """Cached results; ``keys`` (paths, sizes, mtimes) are read on demand."""

    path: Path
    fingerprint: str
    statuses: list[str]
    reasons: list[str]
    heights: list[int]
    widths: list[int]

    def lookup(self) -> dict[tuple[str, int, int], Check]:
        """Per-file results keyed by ``(relative path, size, mtime_ns)``, for partial reuse;
        empty when the key file is missing or belongs to another write."""
        keys = _read_json(_key_file(self.path))
        if not isinstance(keys, dict) or keys.get("fingerprint") != self.fingerprint:
            return {}
        columns = [keys.get(c) for c in ("path", "size", "mtime_ns")]
        if not all(isinstance(c, list) and len(c) == len(self.statuses) for c in columns):
            return {}
        values = zip(self.statuses, self.reasons, self.heights, self.widths)
        return dict(zip(zip(*columns), values))


def _key_file(path: Path) -> Path:
    return path.with_name(path.name[: -len(".json")] + KEY_SUFFIX)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cache_locations(root: Path, options: ScanOptions,
                    fallback_dir: str | os.PathLike | None) -> list[Path]:
    """The cache file in the dataset root, then the one in the fallback folder (if any)."""
    name = f"scan_v{SCANNER_VERSION}_{options.key()}.json"
    locations = [root / CACHE_DIRNAME / name]
    if fallback_dir:
        absolute = os.path.abspath(root)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(absolute).name)[:40] or "root"
        digest = hashlib.sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        locations.append(Path(fallback_dir) / f"{slug}-{digest}" / name)
    return locations


def _parse(path: Path, options: ScanOptions) -> CachedScan | None:
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("scanner_version") != SCANNER_VERSION \
            or data.get("options_key") != options.key():
        return None
    codes, heights, widths = data.get("status"), data.get("height"), data.get("width")
    reasons = data.get("reasons")
    if not isinstance(codes, str) or not isinstance(reasons, dict) \
            or not all(isinstance(c, list) and len(c) == len(codes) for c in (heights, widths)):
        return None
    try:
        statuses = [STATUS_OF_CODE[c] for c in codes]
        reason_column = [""] * len(codes)
        for index, reason in reasons.items():
            reason_column[int(index)] = str(reason)
    except (KeyError, ValueError, IndexError):
        return None
    return CachedScan(path, str(data.get("fingerprint")), statuses, reason_column, heights,
                      widths)


def load(root: Path, options: ScanOptions, fingerprint: str,
         fallback_dir: str | os.PathLike | None) -> CachedScan | None:
    """The cached scan whose fingerprint matches, else any readable one (for per-file reuse),
    else None. Unreadable or foreign cache files are ignored."""
    usable = None
    for location in cache_locations(root, options, fallback_dir):
        cached = _parse(location, options)
        if cached is None:
            continue
        if cached.fingerprint == fingerprint:
            return cached
        usable = usable or cached
    return usable


def may_write(folder: Path) -> bool:
    """Whether ``folder`` (or its nearest existing ancestor) may be written to. Permission bits
    count even for the superuser: a dataset shipped read-only (``r-x``) stays untouched."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(folder, os.W_OK)


def _write(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
    os.chmod(path, 0o644)  # the temporary file was private; caches are shared with the data


def save(result: ScanResult, fallback_dir: str | os.PathLike | None) -> Path | None:
    """Write ``result`` to the first writable cache location; None (and a warning) if none is.
    The key file goes first: a crash between the two leaves a results file whose fingerprint no
    key file matches, which is then only used as a whole (never mixed)."""
    results = {
        "scanner_version": SCANNER_VERSION,
        "options_key": result.options.key(),
        "fingerprint": result.fingerprint,
        "status": "".join(STATUS_CODES[s] for s in result.statuses),
        "reasons": {str(i): r for i, r in enumerate(result.reasons) if r},
        "height": result.heights,
        "width": result.widths,
    }
    keys = {"fingerprint": result.fingerprint, "path": result.paths, "size": result.sizes,
            "mtime_ns": result.mtimes}
    locations = cache_locations(result.root, result.options, fallback_dir)
    for i, location in enumerate(locations):
        if not may_write(location.parent):
            continue
        try:
            _write(_key_file(location), keys)
            _write(location, results)
        except OSError as error:
            log.debug("scan cache not writable at %s: %s", location, error)
            continue
        if i > 0:
            log.warning("dataset root %s is not writable: scan cache kept at %s",
                        result.root, location)
        return location
    log.warning("scan cache not written (no writable location among %s): the next run scans "
                "%s again", ", ".join(map(str, locations)), result.root)
    return None
