"""Annotated video output: OpenCV's ``mp4v`` writer into a temporary file, renamed when complete."""

from __future__ import annotations

import contextlib
import os
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
    """Accepts frames of any size; frames are resized to the video's size when they differ."""

    def __init__(self, writer: cv2.VideoWriter, size_wh: tuple[int, int]) -> None:
        self._writer = writer
        self.size_wh = size_wh
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size_wh:
            image = cv2.resize(image, self.size_wh, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames_written += 1


@contextlib.contextmanager
def video_writer(path: str | os.PathLike, frame_rate: float, size_wh: tuple[int, int],
                 codec: str = DEFAULT_CODEC) -> Iterator[VideoSink]:
    """Write a video atomically: the file appears at ``path`` only when the block completes.

    An exception (or Ctrl-C) inside the block deletes the partial video instead.
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
        try:
            yield VideoSink(writer, (width, height))
        finally:
            writer.release()
