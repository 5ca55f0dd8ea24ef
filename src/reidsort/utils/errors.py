"""Turn expected user errors into one clear line and a non-zero exit instead of a traceback."""

from __future__ import annotations

import contextlib
import logging
import re
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


#: what Hydra's InstantiationException says about the node it was building
_TARGET = re.compile(r"Error in call to target '([^']+)'")
_FULL_KEY = re.compile(r"^full_key: (\S+)$", re.MULTILINE)
#: Python's own words for a call whose arguments do not fit the function
_BAD_ARGUMENTS = re.compile(r"^([\w.<>]+)\(\) (?:got an unexpected keyword argument '(\w+)'|"
                            r"missing \d+ required (?:positional|keyword-only) arguments?: .+)$")


def user_error_message(exc: BaseException) -> str | None:
    """The one line that reports ``exc`` if it is a user error, else None (a bug: it keeps its
    traceback). Errors of a config's ``_target_`` come wrapped in Hydra's InstantiationException
    (the Trainer, a backbone): unwrapped when the cause is a user error (including Lightning's
    MisconfigurationException) or the config has a key the target does not take."""
    if isinstance(exc, (ReidsortError, *USER_ERROR_TYPES)) or _is_misconfiguration(exc):
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    from hydra.errors import InstantiationException

    if not isinstance(exc, InstantiationException) or exc.__cause__ is None:
        return None
    target_match, key_match = _TARGET.search(str(exc)), _FULL_KEY.search(str(exc))
    target = target_match.group(1) if target_match else None
    cause_message = user_error_message(exc.__cause__) or _bad_arguments(exc.__cause__, target)
    if cause_message is None:
        return None
    return f"{key_match.group(1)}: {cause_message}" if key_match else cause_message


def _is_misconfiguration(exc: BaseException) -> bool:
    """Lightning's MisconfigurationException (e.g. accelerator=gpu without one), found by name
    so that this module never imports Lightning."""
    return any(cls.__name__ == "MisconfigurationException"
               and cls.__module__.startswith(("lightning", "pytorch_lightning"))
               for cls in type(exc).__mro__)


def _bad_arguments(exc: BaseException, target: str | None) -> str | None:
    """A TypeError of the call to ``target`` itself (an unknown or a missing config key); a
    TypeError from deeper inside names another function and stays a bug."""
    match = _BAD_ARGUMENTS.match(str(exc)) if isinstance(exc, TypeError) and target else None
    called = match.group(1).removesuffix(".__init__").rsplit(".", 1)[-1] if match else None
    if called is None or called != target.rsplit(".", 1)[-1]:
        return None
    if match.group(2):
        return f"unknown key {match.group(2)!r}: {target} has no such argument"
    return str(exc)


@contextlib.contextmanager
def user_errors(exit_code: int = 1) -> Iterator[None]:
    """Print ``error: <message>`` and exit with ``exit_code`` on a user error.

    Set ``REIDSORT_TRACEBACK=1`` to see the full traceback instead.
    """
    import os

    try:
        yield
    except Exception as exc:
        message = user_error_message(exc)
        if message is None or os.environ.get("REIDSORT_TRACEBACK"):
            raise
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
