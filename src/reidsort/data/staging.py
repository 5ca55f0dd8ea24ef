"""Write a whole output folder or nothing: build it in a hidden sibling, rename it into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from reidsort.utils.errors import ReidsortError


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``target`` unless ``overwrite`` (one clear line, nothing touched)."""
    if target.exists() and not target.is_dir():
        raise ReidsortError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ReidsortError(f"{target} exists and is not empty (task.overwrite=true replaces it)")


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder next to ``target``; on success it replaces ``target``
    (an old ``target`` is moved aside first and deleted after), on failure it is removed."""
    target = Path(target)
    check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield staging
        if target.exists():
            retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, retired)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(retired, target)
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
