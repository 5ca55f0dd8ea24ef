"""Drawing (stable id colours, trails, masks, FPS overlay), atomic video files, the live window
on a machine without a display, and the per-stage timing table."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from track_samples import count_video_frames

from reidsort.pipeline.timing import StageTimer, Timing
from reidsort.utils.errors import ReidsortError
from reidsort.video import display as display_module
from reidsort.video.display import LiveWindow, check_display_available
from reidsort.video.drawing import TrackPainter, id_colour
from reidsort.video.writer import video_writer


def _tracks(*rows):
    """Tracker output rows (x1, y1, x2, y2, id, score, cls, det_index)."""
    return np.array(rows, dtype=np.float64).reshape(-1, 8)


def test_id_colours_are_stable_and_distinct():
    assert id_colour(7) == id_colour(7)
    colours = {id_colour(i) for i in range(1, 21)}
    assert len(colours) == 20
    a, b = np.array(id_colour(1)), np.array(id_colour(2))
    assert np.abs(a - b).sum() > 100  # neighbouring ids look clearly different


def test_boxes_labels_and_trails_are_drawn_in_the_id_colour():
    painter = TrackPainter(trail_length=5, thickness=1)
    for step in range(4):  # a track moving right: its trail is drawn along the feet
        image = np.zeros((100, 120, 3), np.uint8)
        painter.draw(image, _tracks([20 + 10 * step, 30, 40 + 10 * step, 70, 3, 0.9, 0, 0]))
    colour = np.array(id_colour(3))
    assert (image[50, 50] == colour).all()  # left edge of the box (x1 = 50)
    trail = image[68:73, 30:45].reshape(-1, 3).astype(int)  # feet of the earlier boxes
    assert np.abs(trail - colour).sum(axis=1).min() < 60
    empty = TrackPainter().draw(np.zeros((10, 10, 3), np.uint8), _tracks())
    assert not empty.any()


def test_masks_are_blended_inside_the_mask_only():
    image = np.full((40, 40, 3), 100, np.uint8)
    masks = np.zeros((2, 40, 40), bool)
    masks[1, 5:15, 5:15] = True
    painter = TrackPainter(trail_length=0, mask_alpha=0.5)
    painter.draw(image, _tracks([30, 30, 38, 38, 4, 0.9, 0, 1]), masks)
    expected = (np.full(3, 100) * 0.5 + np.array(id_colour(4)) * 0.5).round()
    assert np.abs(image[10, 10].astype(int) - expected).max() <= 1
    assert (image[20, 20] == 100).all()
    no_masks = np.full((40, 40, 3), 100, np.uint8)
    TrackPainter(trail_length=0, draw_masks=False).draw(
        no_masks, _tracks([30, 30, 38, 38, 4, 0.9, 0, 1]), masks)
    assert (no_masks[10, 10] == 100).all()


def test_fps_overlay_is_drawn_top_left():
    image = np.full((60, 120, 3), 200, np.uint8)
    TrackPainter().draw(image, _tracks(), fps=12.5)
    assert (image[10:20, 10:40] != 200).any() and (image[45:, :] == 200).all()


@pytest.mark.parametrize("queue_size", [0, 3])
def test_video_writer_is_atomic(tmp_path, queue_size):
    target = tmp_path / "out.mp4"
    with video_writer(target, 10.0, (32, 24), queue_size=queue_size) as sink:
        for k in range(5):
            sink.write(np.full((24, 32, 3), 40 * k, np.uint8))
        sink.write(np.zeros((48, 64, 3), np.uint8))  # another size: resized
        assert not target.exists()  # only the hidden temporary file exists while writing
    assert count_video_frames(target) == 6 and sink.frames_written == 6
    with pytest.raises(RuntimeError, match="boom"):
        with video_writer(tmp_path / "failed.mp4", 10.0, (32, 24), queue_size=queue_size) as sink:
            sink.write(np.zeros((24, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    with pytest.raises(ReidsortError, match="FourCC"):
        with video_writer(tmp_path / "x.mp4", 10.0, (32, 24), codec="h264x"):
            pass


def test_an_encoding_error_in_the_writer_thread_reaches_the_caller(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(ReidsortError, match="writing the video failed: .*shape"):
        with video_writer(target, 10.0, (32, 24), queue_size=2) as sink:
            sink.write(np.zeros((24, 32, 3), np.uint8))
            sink.write("bad frame")  # the writer thread fails on this one
            for _ in range(20):  # later writes (or the close) report it, and never block
                sink.write(np.zeros((24, 32, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_display_without_a_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(display_module.sys, "platform", "linux")
    with pytest.raises(ReidsortError, match="no display is available"):
        check_display_available()
    monkeypatch.setattr(display_module, "gui_backend", lambda: "NONE")
    with pytest.raises(ReidsortError, match="no GUI support.*opencv-python-headless"):
        LiveWindow("x")


def test_timing_table_accounts_for_every_stage():
    timer = StageTimer()
    timer.add("detect", 0.3)
    timer.add("track", 0.1)
    for _ in range(4):
        timer.count_frame()
    timing = timer.stop()
    timing.wall_seconds = 0.5  # fixed, so the table has known numbers
    table = timing.table("demo")
    assert table.splitlines()[0] == "demo"
    assert "detect         0.300     75.00   60.0%" in table
    assert "other          0.100     25.00   20.0%" in table
    assert "4 frames, 8.0 FPS" in table
    total = Timing.total([timing, Timing({"detect": 0.2}, 1, 0.5)])
    assert (total.frames, total.seconds["detect"], total.wall_seconds) == (5, 0.5, 1.0)


def test_timing_table_of_parallel_stages_has_no_other_row():
    timer = StageTimer(parallel=True)
    workers = [threading.Thread(target=lambda: [timer.add("detect", 0.001) for _ in range(500)])
               for _ in range(2)]
    for worker in workers:
        worker.start()
    timer.add("embed", 0.4)
    for worker in workers:
        worker.join()
    timer.count_frame()
    timing = timer.stop()
    timing.wall_seconds = 0.5
    assert timing.seconds["detect"] == pytest.approx(1.0)  # no update lost between threads
    table = timing.table()
    assert "detect         1.000   1000.00  200.0%" in table and "other" not in table
    assert "parallel threads" in table
    assert Timing.total([timing, Timing()]).parallel
    assert "per detection" not in table  # no crop counted


def test_timing_table_reports_the_embedder_cost_per_detection():
    timer = StageTimer()
    timer.add("embed", 0.25)
    timer.count_embedded(100)
    timer.count_embedded(25)
    timer.count_frame()
    timing = timer.stop()
    assert "embed: 2.00 ms per detection (125 crops)" in timing.table()
    assert Timing.total([timing, timing]).embedded == 250
