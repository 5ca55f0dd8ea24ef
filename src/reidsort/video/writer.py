"""Annotated video output: OpenCV's ``mp4v`` writer into a temporary file, renamed when complete."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_output

#: MPEG-4 Part 2: encoded by every OpenCV build (no licensed H.264 encoder needed), played by
#: common players.
DEFAULT_CODEC = "mp4v"


class VideoSink:
    """Accepts frames of any size; frames are resized to the video's size when they differ.

    With ``queue_size > 0`` a writer thread encodes while the caller goes on (OpenCV releases
    the GIL while encoding): ``write`` only hands the frame over, so the caller must not modify
    it afterwards. An encoding error is raised by the next ``write`` or by ``close``.
    """

    def __init__(self, writer: cv2.VideoWriter, size_wh: tuple[int, int],
                 queue_size: int = 0) -> None:
        self._writer = writer
        self.size_wh = size_wh
        self.frames_written = 0
        self._error: BaseException | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if queue_size > 0:
            self._queue = queue.Queue(maxsize=queue_size)
            self._thread = threading.Thread(target=self._drain, name="video writer", daemon=True)
            self._thread.start()

    def write(self, image: np.ndarray) -> None:
        if self._queue is None:
            self._encode(image)
            return
        self._raise_pending()
        self._queue.put(image)

    def close(self) -> None:
        """Encode what is queued and stop the writer thread (idempotent)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise_pending()

    def _encode(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size_wh:
            image = cv2.resize(image, self.size_wh, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames_written += 1

    def _drain(self) -> None:
        while (image := self._queue.get()) is not None:
            if self._error is None:  # after an error, keep taking frames so write() never blocks
                try:
                    self._encode(image)
                except BaseException as error:  # noqa: BLE001 - raised in the caller's thread
                    self._error = error

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise ReidsortError(f"writing the video failed: {error}") from error


@contextlib.contextmanager
def video_writer(path: str | os.PathLike, frame_rate: float, size_wh: tuple[int, int],
                 codec: str = DEFAULT_CODEC, queue_size: int = 0) -> Iterator[VideoSink]:
    """Write a video atomically: the file appears at ``path`` only when the block completes.

    An exception (or Ctrl-C) inside the block deletes the partial video instead.
    ``queue_size > 0`` encodes in a writer thread (see :class:`VideoSink`).
    """
    if len(codec) != 4:
        raise ReidsortError(f"video codec must be a FourCC of 4 characters, got {codec!r}")
    width, height = (int(v) for v in size_wh)
    if width < 1 or height < 1:
        raise ReidsortError(f"video size must be positive, got {width}x{height}")
    with atomic_output(Path(path)) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(frame_rate),
                                 (width, height))
        if not writer.isOpened():
            raise ReidsortError(
                f"OpenCV cannot write {codec} video to {path} (no encoder for this codec/format)"
            )
        sink = VideoSink(writer, (width, height), queue_size)
        try:
            yield sink
            sink.close()
        finally:
            with contextlib.suppress(ReidsortError):  # already failing: keep that error
                sink.close()
            writer.release()
