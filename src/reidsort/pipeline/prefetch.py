"""Read ahead: produce an iterator's items in a background thread while the caller works.

Decoding a frame (JPEG decode, video demux) releases the GIL in OpenCV, so a reader thread
decodes frame t+1 while the models run on frame t: the decode time leaves the critical path
(benchmarks/RESULTS.md, tracking application speed). Items arrive in order; an exception in the
reader is raised in the consumer at the point where the item would have come; closing the
consumer early (break, error, Ctrl-C) stops the reader and closes the source iterator in the
reader thread, so files and cameras are released.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: How long the consumer waits per poll; short, so Ctrl-C reaches the main thread promptly.
_POLL_SECONDS = 0.1


class _End:
    """Marks the end of the items (carries the reader's exception, if any)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int, name: str = "prefetch") -> Iterator[T]:
    """``items`` read up to ``depth`` ahead by a daemon thread; ``depth=0`` reads in place."""
    if depth < 0:
        raise ValueError(f"prefetch depth must be >= 0, got {depth}")
    if depth == 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        """Hand ``item`` over unless the consumer has gone; False when it has."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_End())
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            put(_End(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's finally blocks (release a video, a camera) run here

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = buffer.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        reader.join()
