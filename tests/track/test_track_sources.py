"""Sources: image folders (natural order, unreadable frames), MOT sequences, videos, webcams,
lists and folders of sources; clear errors for bad input."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from track_samples import write_mot_folder, write_video

from reidsort.utils.errors import ReidsortError
from reidsort.video import sources as sources_module
from reidsort.video.sources import (
    ImageFolderSource,
    MotSequenceSource,
    VideoFileSource,
    WebcamSource,
    natural_key,
    resolve_sources,
)


def _write_images(folder, names, size=(12, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((*size, 3), 20 * k, np.uint8))


def test_natural_sort_key():
    names = ["f10.png", "f2.png", "F1.png", "f2b.png"]
    assert sorted(names, key=natural_key) == ["F1.png", "f2.png", "f2b.png", "f10.png"]


def test_image_folder_natural_order_and_an_unreadable_frame(tmp_path, caplog):
    folder = tmp_path / "frames"
    _write_images(folder, ["img1.png", "img2.jpg", "img10.jpeg"])
    (folder / "img3.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    source = ImageFolderSource(folder, frame_rate=12)
    assert source.info.frame_names == ("img1.png", "img2.jpg", "img3.png", "img10.jpeg")
    assert (source.info.width, source.info.height, source.info.frame_rate) == (16, 12, 12.0)
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames())
    assert [f.index for f in frames] == [1, 2, 4]  # numbers keep matching the files
    assert [f.name for f in frames] == ["img1.png", "img2.jpg", "img10.jpeg"]
    assert frames[2].image[0, 0, 0] == 40
    assert source.skipped_frames == 1 and "img3.png" in caplog.text
    assert [f.image for f in source.frames(decode=False)] == [None] * 4


def test_empty_or_unreadable_image_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReidsortError, match="no .jpg/.jpeg/.png images"):
        ImageFolderSource(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"junk")
    with pytest.raises(ReidsortError, match="none of the 1 images"):
        ImageFolderSource(tmp_path / "bad")


def test_mot_sequence_without_images(tmp_path):
    root = write_mot_folder(tmp_path / "seq", ["1,-1,1,1,5,5,0.9"], length=3)
    source = MotSequenceSource(root)
    info = source.info
    assert (info.name, info.length, info.frame_rate, info.width) == ("HAND-01", 3, 10.0, 100)
    assert info.det_path == root / "det" / "det.txt" and info.gt_path is None
    assert info.frame_names == ("000001.jpg", "000002.jpg", "000003.jpg")
    assert [f.index for f in source.frames(decode=False)] == [1, 2, 3]
    with pytest.raises(ReidsortError, match="has no img1/ images"):
        list(source.frames())


def test_mot_sequence_with_images_and_a_missing_frame(tmp_path):
    root = write_mot_folder(tmp_path / "seq", [], length=3)
    _write_images(root / "img1", ["000001.jpg", "000003.jpg"])
    source = MotSequenceSource(root)
    assert [f.index for f in source.frames()] == [1, 3] and source.skipped_frames == 1
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "seqinfo.ini").write_text("[Sequence]\nname=x\n")
    with pytest.raises(ReidsortError, match="missing key"):
        MotSequenceSource(tmp_path / "broken")


def test_video_file_source(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=6)
    source = VideoFileSource(path)
    info = source.info
    assert (info.name, info.width, info.height, info.kind) == ("clip", 64, 48, "video")
    assert info.frame_rate == pytest.approx(10.0) and info.length == 6
    frames = list(source.frames())
    assert [f.index for f in frames] == [1, 2, 3, 4, 5, 6]
    assert abs(int(frames[3].image.mean()) - 30) <= 3
    assert len(list(source.frames(decode=False))) == 6  # grab only
    assert source.fingerprint() == VideoFileSource(path).fingerprint()


def test_bad_videos_are_one_line_errors(tmp_path):
    with pytest.raises(ReidsortError, match="video not found"):
        VideoFileSource(tmp_path / "missing.mp4")
    (tmp_path / "fake.mp4").write_text("this is not a video")
    with pytest.raises(ReidsortError, match="cannot read video"):
        VideoFileSource(tmp_path / "fake.mp4")


class _GlitchyCapture:
    """A capture whose frame 3 cannot be decoded (as a corrupt packet mid-video)."""

    def __init__(self, frames: int, bad: set[int]) -> None:
        self.frames, self.bad, self.position = frames, bad, 0

    def grab(self) -> bool:
        self.position += 1
        return self.position <= self.frames

    def retrieve(self):
        if self.position in self.bad:
            return False, None
        return True, np.full((4, 4, 3), self.position, np.uint8)

    def release(self) -> None:
        pass


def test_corrupt_frame_mid_video_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    source = VideoFileSource(write_video(tmp_path / "clip.mp4", frames=5))
    monkeypatch.setattr(sources_module, "_open_capture", lambda target: _GlitchyCapture(5, {3}))
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames())
    assert [f.index for f in frames] == [1, 2, 4, 5]
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 4, 5]
    assert source.skipped_frames == 1 and "frame 3 cannot be decoded" in caplog.text


def test_absent_webcam_is_a_clear_error():
    with pytest.raises(ReidsortError, match="webcam 97 is not available"):
        WebcamSource(97)
    with pytest.raises(ReidsortError, match="webcam 97 is not available"):
        resolve_sources("97")


def test_resolve_lists_and_folders_of_sources(tmp_path):
    write_mot_folder(tmp_path / "set" / "SEQ-B", [], length=2, name="SEQ-B")
    write_mot_folder(tmp_path / "set" / "SEQ-A", [], length=2, name="SEQ-A")
    write_video(tmp_path / "set" / "walk.mp4", frames=2)
    _write_images(tmp_path / "set" / "frames", ["1.png", "2.png"])
    (tmp_path / "set" / ".hidden").mkdir()
    found = resolve_sources(str(tmp_path / "set"))
    assert [s.name for s in found] == ["frames", "SEQ-A", "SEQ-B", "walk"]
    both = resolve_sources([str(tmp_path / "set" / "SEQ-A"), str(tmp_path / "set" / "SEQ-A")])
    assert [s.name for s in both] == ["SEQ-A", "SEQ-A-2"]  # one output folder each
    assert resolve_sources(None) == []
    with pytest.raises(ReidsortError, match="source not found"):
        resolve_sources(str(tmp_path / "nowhere"))
    with pytest.raises(ReidsortError, match="single image"):
        resolve_sources(str(tmp_path / "set" / "frames" / "1.png"))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ReidsortError, match="nothing to track"):
        resolve_sources(str(tmp_path / "nothing"))


def test_a_run_of_corrupt_frames_is_one_warning_with_a_count(tmp_path, monkeypatch, caplog):
    # frames 3-6 unreadable, then 8: two warnings (one per run), not five lines
    source = VideoFileSource(write_video(tmp_path / "clip.mp4", frames=9))
    monkeypatch.setattr(sources_module, "_open_capture",
                        lambda target: _GlitchyCapture(9, {3, 4, 5, 6, 8}))
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames())
    assert [f.index for f in frames] == [1, 2, 7, 9]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["clip: frames 3-6 cannot be decoded (4 skipped)",
                        "clip: frame 8 cannot be decoded (skipped)"], warnings
    assert source.skipped_frames == 5


def test_a_run_of_unreadable_images_at_the_end_is_reported_once(tmp_path, caplog):
    folder = tmp_path / "frames"
    _write_images(folder, ["f1.png", "f2.png"])
    for name in ("f3.png", "f4.png", "f5.png"):
        (folder / name).write_bytes(b"not an image")
    source = ImageFolderSource(folder, frame_rate=10)
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames())
    assert [f.index for f in frames] == [1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "frames 3-5 (f3.png .. f5.png) are missing or unreadable" \
        " (3 skipped)" in warnings[0], warnings
