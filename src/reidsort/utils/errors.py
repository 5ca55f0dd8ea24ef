"""Turn expected user errors into one clear line and a non-zero exit instead of a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

log = logging.getLogger("reidsort")

#: Exceptions that mean "bad input", not "bug": reported as one line.
USER_ERROR_TYPES: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    NotADirectoryError,
    ValueError,
)


class ReidsortError(Exception):
    """A user-facing error whose message is complete on its own."""


@contextlib.contextmanager
def user_errors(exit_code: int = 1) -> Iterator[None]:
    """Print ``error: <message>`` and exit with ``exit_code`` on a user error.

    Set ``REIDSORT_TRACEBACK=1`` to see the full traceback instead.
    """
    import os

    try:
        yield
    except (ReidsortError, *USER_ERROR_TYPES) as exc:
        if os.environ.get("REIDSORT_TRACEBACK"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _log_to_files(message)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(exit_code)


def _log_to_files(message: str) -> None:
    """Record the error in the run's log files only: the console gets it once, as ``error:``."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    seen: set[int] = set()
    for logger in (log, logging.getLogger()):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler) and id(handler) not in seen:
                seen.add(id(handler))
                handler.handle(record)
