"""Video in and out for the tracking application: sources, drawing, video files, live window.

NumPy and OpenCV only (no torch). Sources: :func:`resolve_sources` (video files, webcams, image
folders, MOTChallenge sequences, lists and folders of them); output: :class:`TrackPainter`,
:func:`video_writer` (atomic mp4v) and :class:`LiveWindow`.
"""

from reidsort.video.display import LiveWindow, check_display_available
from reidsort.video.drawing import TrackPainter, id_colour
from reidsort.video.frame import Frame
from reidsort.video.sources import (
    ImageFolderSource,
    MotSequenceSource,
    Source,
    SourceInfo,
    VideoFileSource,
    WebcamSource,
    natural_key,
    open_source,
    resolve_sources,
)
from reidsort.video.writer import VideoSink, video_writer

__all__ = [
    "Frame",
    "ImageFolderSource",
    "LiveWindow",
    "MotSequenceSource",
    "Source",
    "SourceInfo",
    "TrackPainter",
    "VideoFileSource",
    "VideoSink",
    "WebcamSource",
    "check_display_available",
    "id_colour",
    "natural_key",
    "open_source",
    "resolve_sources",
    "video_writer",
]
