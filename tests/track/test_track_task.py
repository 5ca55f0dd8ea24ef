"""``task=track`` end to end: the out-of-the-box synthetic comparison, sources without ground
truth, and one-line errors for bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from track_samples import synthetic_overrides, write_mot_folder, write_video

from conftest import compose_config
from reidsort.tasks.track import embedder_label, track
from reidsort.utils.errors import ReidsortError


def _config(tmp_path, *overrides):
    return compose_config(["task=track", "task.progress=false", *overrides], tmp_path / "run",
                          tmp_path / "data")


def test_no_source_compares_motion_only_with_appearance(tmp_path, capsys):
    cfg = compose_config(["task=track", *synthetic_overrides(tmp_path / "data")],
                         tmp_path / "run")
    metrics = track(cfg)
    for prefix in ("", "none/"):
        for key in ("mot/HOTA", "mot/MOTA", "mot/IDF1", "track/frames"):
            assert f"{prefix}{key}" in metrics
    assert metrics["track/frames"] == metrics["none/track/frames"] == 24
    assert 0.0 < metrics["mot/HOTA"] <= 1.0 and cfg.optimized_metric == "mot/HOTA"
    run = tmp_path / "run"
    for label in ("none", "histogram"):
        assert (run / label / "TINY" / "TINY.txt").is_file()
        assert (run / label / "TINY" / "TINY.mp4").is_file()
        assert (run / label / "TINY" / "timing.txt").read_text().startswith("TINY")
        assert (run / label / "mot_metrics.csv").is_file()
    table = (run / "embedder_comparison.md").read_text()
    assert "| embedder=none |" in table and "| embedder=histogram |" in table
    out = capsys.readouterr().out
    assert "What appearance (Re-ID) adds" in out and "FPS" in out
    # the rendered sequence and the detections are cached under paths.data_dir
    assert list((tmp_path / "data" / "synthetic_mot").glob("TINY-*/seqinfo.ini"))
    assert list((tmp_path / "data" / "track_cache").glob("TINY-det-*.npz"))


def test_jde_tracker_on_the_synthetic_sequence_with_and_without_the_histogram(tmp_path):
    # FairMOT's association with the histogram embedder's embeddings, and motion-only
    cfg = compose_config(["task=track", "tracker=jde", *synthetic_overrides(tmp_path / "data")],
                         tmp_path / "run")
    assert cfg.tracker._target_.endswith("JDETracker") and cfg.embedder is not None
    metrics = track(cfg)
    for prefix in ("", "none/"):
        assert metrics[f"{prefix}track/frames"] == 24
        assert 0.3 < metrics[f"{prefix}mot/HOTA"] <= 1.0, metrics
    assert (tmp_path / "run" / "histogram" / "TINY" / "TINY.txt").is_file()


def test_image_folder_without_ground_truth_has_no_score(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(1, 6):
        image = np.full((60, 80, 3), 90, np.uint8)
        cv2.rectangle(image, (10 + 5 * k, 10), (30 + 5 * k, 50), (0, 0, 200), -1)
        cv2.imwrite(str(frames / f"{k}.png"), image)
    det = tmp_path / "det.txt"
    det.write_text("".join(f"{k},-1,{10 + 5 * k},10,20,40,0.9\n" for k in range(1, 6)))
    cfg = _config(tmp_path, f"source={frames}", f"detector.path={det}", "mode=offline",
                  "tracker.n_init=2")
    metrics = track(cfg)
    assert not any(key.startswith("mot/") for key in metrics)
    assert metrics["track/frames"] == 5 and metrics["track/tracks"] == 1
    assert cfg.optimized_metric is None  # nothing to optimise without ground truth
    lines = (tmp_path / "run" / "frames" / "frames.txt").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("2,1,")  # confirmed at the second hit


def test_mot_sequence_scored_without_images(tmp_path):
    rows = [f"{f},-1,{10 + 2 * f},10,20,40,0.9" for f in range(1, 9)]
    gt = [f"{f},1,{10 + 2 * f},10,20,40,1,-1,-1,-1" for f in range(1, 9)]
    root = write_mot_folder(tmp_path / "HAND-01", rows, length=8, gt_rows=gt)
    metrics = track(_config(tmp_path, f"source={root}", "embedder=none"))
    assert metrics["mot/MOTA"] == pytest.approx(6 / 8)  # the first two frames are tentative
    assert metrics["mot/IDSW"] == 0


@pytest.mark.parametrize("overrides, message", [
    (["detector=public"], "detector=public needs detections"),
    (["display=true"], "display=true"),
    (["mode=sideways"], "mode must be one of online, offline"),
])
def test_bad_settings_are_one_line_errors(tmp_path, monkeypatch, overrides, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = write_video(tmp_path / "clip.mp4", frames=3)
    with pytest.raises(ReidsortError, match=message):
        track(_config(tmp_path, f"source={video}", *overrides))
    written = list((tmp_path / "run").rglob("*.mp4")) + list((tmp_path / "run").rglob("*.txt"))
    assert not written


def test_missing_images_or_source_are_one_line_errors(tmp_path):
    root = write_mot_folder(tmp_path / "HAND-01", ["1,-1,1,1,5,5,0.9"], length=2)
    with pytest.raises(ReidsortError, match="has no img1/ images"):
        track(_config(tmp_path, f"source={root}", "task.video=false"))  # histogram needs pixels
    with pytest.raises(ReidsortError, match="source not found"):
        track(_config(tmp_path, f"source={tmp_path / 'missing.mp4'}"))
    assert not list((tmp_path / "run").rglob("HAND-01.txt"))


def test_embedder_labels(tmp_path):
    cfg = _config(tmp_path, "embedder=onnx")
    assert embedder_label(cfg.embedder) == "onnx"
    assert embedder_label(None) == "none"


def test_postprocess_linear_fills_the_frames_a_track_missed_and_keeps_the_raw_output(tmp_path):
    missed = (5, 6)  # no detection: the track coasts and is not written in these frames
    rows = [f"{f},-1,{10 + 2 * f},10,20,40,0.9" for f in range(1, 11) if f not in missed]
    gt = [f"{f},1,{10 + 2 * f},10,20,40,1,-1,-1,-1" for f in range(1, 11)]
    root = write_mot_folder(tmp_path / "HAND-01", rows, length=10, gt_rows=gt)
    plain = track(_config(tmp_path / "plain", f"source={root}", "embedder=none"))
    filled = track(_config(tmp_path / "filled", f"source={root}", "embedder=none",
                           "postprocess=linear"))
    assert filled["mot/TP"] == 8 > plain["mot/TP"]  # frames 3..10 (1-2 are tentative)
    out = tmp_path / "filled" / "run" / "HAND-01"
    raw = (out / "HAND-01.raw.txt").read_text().splitlines()
    written = (out / "HAND-01.txt").read_text().splitlines()
    assert len(written) == 8 and len(raw) < 8
    assert {line.split(",")[0] for line in written} == {str(f) for f in range(3, 11)}


@pytest.mark.parametrize("tracker", ["deepsort", "bytetrack", "ocsort", "botsort", "strongsort",
                                     "deepocsort", "jde"])
@pytest.mark.parametrize("cmc", ["none", "file"])
def test_every_tracker_runs_in_task_track_with_and_without_camera_motion(tmp_path, tracker, cmc):
    # two people walking apart, one of them missed in frames 9-10; a camera panning 3 px/frame to
    # the right moves everything 3 px/frame to the left in the image (gmc.txt says so)
    frames = range(1, 21)
    boxes = {1: lambda f: (100 + 4 * f - 3 * f, 50), 2: lambda f: (400 - 4 * f - 3 * f, 60)}
    rows, gt = [], []
    for f in frames:
        for pid, at in boxes.items():
            x, y = at(f)
            gt.append(f"{f},{pid},{x},{y},40,100,1,-1,-1,-1")
            if not (pid == 1 and f in (9, 10)):
                rows.append(f"{f},-1,{x},{y},40,100,0.95")
    root = write_mot_folder(tmp_path / "HAND-01", rows, length=len(frames), gt_rows=gt)
    (root / "gmc.txt").write_text("".join(
        f"{k}\t1.0\t0.0\t{0.0 if k == 0 else -3.0}\t0.0\t1.0\t0.0\n" for k in range(len(frames))))
    metrics = track(_config(tmp_path, f"source={root}", "embedder=none", f"tracker={tracker}",
                            f"cmc={cmc}"))
    assert metrics["mot/IDSW"] == 0
    assert metrics["mot/MOTA"] >= 0.8, metrics
    lines = (tmp_path / "run" / "HAND-01" / "HAND-01.txt").read_text().splitlines()
    ids = {line.split(",")[1] for line in lines}
    assert len(ids) == 2, ids  # each person keeps one id across the two missed frames


@pytest.mark.parametrize("tracker", ["bytetrack", "botsort", "jde"])
def test_a_null_frame_rate_is_the_source_s_own(tmp_path, tracker):
    from reidsort.tasks.track import build_tracker
    from reidsort.video.sources import MotSequenceSource

    root = write_mot_folder(tmp_path / "HAND-01", ["1,-1,10,10,20,40,0.9"], length=1)  # 10 fps
    cfg = _config(tmp_path, f"source={root}", f"tracker={tracker}")
    assert cfg.tracker.frame_rate is None
    built = build_tracker(cfg.tracker, MotSequenceSource(root))
    assert built.frame_rate == 10 and built.max_time_lost == 10  # int(10 / 30 * 30)
    cfg.tracker.frame_rate = 60
    assert build_tracker(cfg.tracker, MotSequenceSource(root)).max_time_lost == 60


@pytest.mark.parametrize("tracker", ["deepsort", "strongsort"])
def test_reporting_missed_tracks_writes_their_predicted_boxes(tmp_path, tracker):
    # the app's output rule (output_lost_frames=1): a track missed in one frame is still written,
    # with its predicted box and score -1 (its output score is NaN: no detection)
    rows = [f"{f},-1,{10 + 2 * f},10,20,40,0.9" for f in range(1, 9) if f != 6]
    root = write_mot_folder(tmp_path / "HAND-01", rows, length=8)
    track(_config(tmp_path, f"source={root}", "embedder=none", f"tracker={tracker}",
                  "tracker.output_lost_frames=1", "tracker.min_confidence=0.3"))
    lines = (tmp_path / "run" / "HAND-01" / "HAND-01.txt").read_text().splitlines()
    missed = [line for line in lines if line.startswith("6,")]
    assert len(missed) == 1 and missed[0].split(",")[6] == "-1.00"
    assert float(missed[0].split(",")[2]) == pytest.approx(22, abs=1.5)  # predicted x


def test_an_unreadable_video_in_a_folder_is_skipped_and_the_rest_tracked(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a_good.mp4", frames=4, size_wh=(160, 256))  # HOG needs >= 64x128
    (folder / "b_broken.mp4").write_bytes(b"not a video at all")
    write_video(folder / "c_good.mp4", frames=3, size_wh=(160, 256))
    with pytest.raises(ReidsortError, match=r"1 unreadable video\(s\) skipped, the other 2 .*"
                                            r"b_broken\.mp4"):
        track(_config(tmp_path, f"source={folder}", "detector=hog", "embedder=none",
                      "task.video=false"))
    # every readable video was tracked and written before the error
    assert (tmp_path / "run" / "a_good" / "a_good.txt").is_file()
    assert (tmp_path / "run" / "c_good" / "c_good.txt").is_file()
    # a broken video named directly still fails at once
    with pytest.raises(ReidsortError, match="b_broken"):
        track(_config(tmp_path, f"source={folder / 'b_broken.mp4'}", "embedder=none"))
