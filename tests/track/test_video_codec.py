"""``video_codec=auto``: H.264 where OpenCV can encode it, mp4v (with one note) where not."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from reidsort.utils.errors import ReidsortError
from reidsort.video import writer as writer_module
from reidsort.video.writer import video_writer


def _fourcc(path) -> str:
    capture = cv2.VideoCapture(str(path))
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)), frames


def _write(path, codec):
    with video_writer(path, 10.0, (64, 48), codec=codec) as sink:
        for k in range(3):
            sink.write(np.full((48, 64, 3), 40 * k, np.uint8))


def test_auto_writes_the_first_encodable_codec_and_notes_a_fallback_once(tmp_path, caplog,
                                                                         monkeypatch):
    available = writer_module._encodable_codecs()
    assert writer_module.DEFAULT_CODEC in available  # every OpenCV build encodes mp4v
    monkeypatch.setattr(writer_module, "_noted_fallback", False)
    with caplog.at_level(logging.INFO, logger="reidsort.video.writer"):
        _write(tmp_path / "a.mp4", "auto")
        _write(tmp_path / "b.mp4", "auto")
    fourcc, frames = _fourcc(tmp_path / "a.mp4")
    # the container reports MPEG-4 Part 2 as FMP4 and H.264 as avc1 / h264
    assert frames == 3
    assert fourcc.lower() in ({"avc1", "h264"} if available[0] == "avc1" else {"fmp4", "mp4v"})
    notes = [r for r in caplog.records if "no H.264" in r.getMessage()]
    assert len(notes) == (0 if available[0] == "avc1" else 1)


def test_auto_prefers_h264_when_the_build_has_it(tmp_path, monkeypatch):
    opened = []
    real = cv2.VideoWriter

    def recording_writer(path, fourcc, fps, size):
        opened.append(fourcc)
        return real(path, fourcc, fps, size)

    monkeypatch.setattr(writer_module, "_encodable_codecs", lambda: ("avc1", "mp4v"))
    monkeypatch.setattr(writer_module.cv2, "VideoWriter", recording_writer)
    _write(tmp_path / "c.mp4", "auto")
    assert opened[0] == cv2.VideoWriter_fourcc(*"avc1")  # tried first
    assert _fourcc(tmp_path / "c.mp4")[1] == 3  # and a video came out either way


def test_a_bad_codec_name_is_one_line(tmp_path):
    with pytest.raises(ReidsortError, match="FourCC of 4 characters or auto"):
        _write(tmp_path / "d.mp4", "h26")
