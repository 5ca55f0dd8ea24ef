"""The frame reader thread: order, errors, early stops and cleanup."""

from __future__ import annotations

import threading
import time

import pytest

from reidsort.pipeline.prefetch import prefetched


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch"]


def test_items_arrive_in_order_and_reading_runs_ahead():
    produced = []

    def items():
        for i in range(20):
            produced.append(i)
            yield i

    stream = prefetched(items(), depth=3)
    assert next(stream) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    # one handed out, three queued, one more read and waiting for room: no further
    assert len(produced) == 5
    assert [0, *stream] == list(range(20))
    assert not _reader_threads()


def test_depth_zero_reads_in_the_callers_thread():
    threads = []

    def items():
        for i in range(3):
            threads.append(threading.current_thread())
            yield i

    assert list(prefetched(items(), depth=0)) == [0, 1, 2]
    assert set(threads) == {threading.current_thread()}
    with pytest.raises(ValueError, match="depth must be >= 0"):
        list(prefetched([], depth=-1))


def test_an_error_in_the_reader_is_raised_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError("frame 3 of clip.mp4 is unreadable")

    got = []
    with pytest.raises(OSError, match="frame 3 of clip.mp4"):
        for item in prefetched(items(), depth=4):
            got.append(item)
    assert got == [1, 2]
    assert not _reader_threads()


def test_stopping_early_closes_the_source_in_the_reader():
    closed = threading.Event()

    def items():
        try:
            yield from range(1000)
        finally:
            closed.set()  # a video source releases its capture here

    stream = prefetched(items(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed.is_set() and not _reader_threads()
