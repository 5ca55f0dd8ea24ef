"""Real footage: TUD-Campus (MOT15) tracked with the real YOLOX-Nano ONNX detector.

Floors were set from a first honest run (yolox_nano, histogram embedder, offline mode, tracker
defaults of task=track: HOTA 0.418, IDF1 0.555, MOTA 0.404), minus a margin for ONNX Runtime
and OpenCV version differences.
"""

from __future__ import annotations

from conftest import compose_config
from reidsort.tasks.track import track
from reidsort.tracking.mot_io import read_mot_results

HOTA_FLOOR = 0.37
IDF1_FLOOR = 0.48
MOTA_FLOOR = 0.33


def test_tud_campus_with_yolox_nano(shared_data, tmp_path):
    sequence = shared_data / "mot" / "TUD-Campus"
    cfg = compose_config(
        ["task=track", f"source={sequence}", "detector=yolo_onnx",
         f"detector.model_path={shared_data / 'models' / 'yolox_nano.onnx'}",
         "detector.threads=1", "mode=offline", "task.video=false", "task.progress=false",
         "task.cache=false"],
        tmp_path / "run", tmp_path / "data")
    metrics = track(cfg)
    results = read_mot_results(tmp_path / "run" / "TUD-Campus" / "TUD-Campus.txt")
    assert len(results) > 200 and len(set(results.track_ids.tolist())) >= 6
    assert set(results.frame_ids.tolist()) <= set(range(1, 72))
    assert metrics["track/detections"] > 300  # about 6 people in each of 71 frames
    assert metrics["mot/HOTA"] >= HOTA_FLOOR, metrics
    assert metrics["mot/IDF1"] >= IDF1_FLOOR, metrics
    assert metrics["mot/MOTA"] >= MOTA_FLOOR, metrics


def test_tud_campus_with_the_hog_detector(shared_data, tmp_path):
    """OpenCV's HOG detector needs no weights; its 64x128 window misses the small and occluded
    people of TUD-Campus, so its floor is far below YOLOX's (first run: HOTA 0.215, MOTA -0.22,
    219 detections)."""
    sequence = shared_data / "mot" / "TUD-Campus"
    cfg = compose_config(
        ["task=track", f"source={sequence}", "detector=hog", "task.video=false",
         "task.progress=false", "task.cache=false"], tmp_path / "run", tmp_path / "data")
    metrics = track(cfg)
    assert metrics["track/detections"] > 150
    assert metrics["mot/HOTA"] >= 0.17, metrics
