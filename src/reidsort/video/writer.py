"""Annotated video output: OpenCV's writer into a temporary file, renamed when complete.

``codec="auto"`` (the default of ``task=track``) writes H.264 (``avc1``: browsers and notebooks
play it) when this OpenCV build can encode it, and MPEG-4 Part 2 (``mp4v``, every build; most
desktop players, not browsers) otherwise, saying so once per process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_output

log = logging.getLogger(__name__)

#: MPEG-4 Part 2: encoded by every OpenCV build (no licensed H.264 encoder needed), played by
#: common players.
DEFAULT_CODEC = "mp4v"
#: ``codec="auto"`` tries these in order.
AUTO_CODEC = "auto"
AUTO_CODECS: tuple[str, ...] = ("avc1", DEFAULT_CODEC)
_noted_fallback = False


@functools.lru_cache(maxsize=1)
def _encodable_codecs() -> tuple[str, ...]:
    """The ``AUTO_CODECS`` this OpenCV build can encode to .mp4, probed once per process on a
    throw-away file with the C-level stderr muted (OpenCV and FFmpeg print several error lines
    for a missing encoder, which would look like a failure of the run)."""
    found = []
    with tempfile.TemporaryDirectory() as folder, _muted_stderr():
        for candidate in AUTO_CODECS:
            writer = cv2.VideoWriter(str(Path(folder) / f"probe_{candidate}.mp4"),
                                     cv2.VideoWriter_fourcc(*candidate), 10.0, (64, 64))
            if writer.isOpened():
                found.append(candidate)
            writer.release()
    return tuple(found)


@contextlib.contextmanager
def _muted_stderr() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (some embedded interpreters): nothing to mute
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _open_writer(path: Path, codec: str, frame_rate: float, size_wh: tuple[int, int]):
    """An opened ``cv2.VideoWriter`` and the codec it uses (``auto``: the first that opens)."""
    global _noted_fallback
    candidates = (_encodable_codecs() or (DEFAULT_CODEC,)) if codec == AUTO_CODEC else (codec,)
    for candidate in candidates:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*candidate),
                                 float(frame_rate), size_wh)
        if writer.isOpened():
            if codec == AUTO_CODEC and candidate != AUTO_CODECS[0] and not _noted_fallback:
                _noted_fallback = True
                log.info("this OpenCV build has no H.264 (avc1) encoder: videos are %s "
                         "(MPEG-4 Part 2; browsers do not play it)", candidate)
            return writer, candidate
        writer.release()
    raise ReidsortError(
        f"OpenCV cannot write {codec} video to {path} (no encoder for this codec/format)")


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
    if codec != AUTO_CODEC and len(codec) != 4:
        raise ReidsortError(
            f"video codec must be a FourCC of 4 characters or auto, got {codec!r}")
    width, height = (int(v) for v in size_wh)
    if width < 1 or height < 1:
        raise ReidsortError(f"video size must be positive, got {width}x{height}")
    with atomic_output(Path(path)) as tmp:
        try:
            writer, _ = _open_writer(tmp, codec, frame_rate, (width, height))
        except ReidsortError:
            raise ReidsortError(f"OpenCV cannot write {codec} video to {path} (no encoder for "
                                "this codec/format)") from None
        sink = VideoSink(writer, (width, height), queue_size)
        try:
            yield sink
            sink.close()
        finally:
            with contextlib.suppress(ReidsortError):  # already failing: keep that error
                sink.close()
            writer.release()
