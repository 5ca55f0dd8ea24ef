"""YOLO ONNX detector: letterbox, layouts (YOLOX grid decode, YOLOv5, YOLOv8/11), class filter,
NMS, unknown layouts; and yolox_nano on a real TUD-Campus frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from yolo_models import constant_output_model

from reidsort.detection.letterbox import letterbox
from reidsort.detection.nms import nms_xyxy
from reidsort.detection.yolo_onnx import (
    YoloLayout,
    YoloOnnxDetector,
    decode_yolox,
    grid_cells,
    infer_layout,
    yolox_grid,
)
from reidsort.utils.errors import ReidsortError

INPUT_HW = (64, 64)
CELLS = grid_cells(INPUT_HW)  # 8*8 + 4*4 + 2*2 = 84
NUM_CLASSES = 2


def _iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_grid_cells_and_yolox_grid_order():
    assert CELLS == 84
    assert grid_cells((416, 416)) == 3549  # yolox_nano's output rows
    offsets, strides = yolox_grid(INPUT_HW)
    assert offsets.shape == (84, 2) and strides.shape == (84, 1)
    # stride-16 map (4x4) starts after the 64 stride-8 cells; row-major: (x=1, y=2) is 64+2*4+1
    assert offsets[73].tolist() == [1, 2] and strides[73, 0] == 16
    assert strides[-1, 0] == 32 and offsets[-1].tolist() == [1, 1]


def test_decode_yolox_known_box():
    offsets, strides = yolox_grid(INPUT_HW)
    raw = np.array([[0.5, 0.5, math.log(2.0), math.log(3.0)]], np.float32)
    decoded = decode_yolox(raw, offsets[73:74], strides[73:74])
    np.testing.assert_allclose(decoded[0], [24.0, 40.0, 32.0, 48.0], rtol=1e-6)


@pytest.mark.parametrize("center", [True, False])
def test_letterbox_maps_boxes_back(center):
    image = np.zeros((100, 200, 3), np.uint8)
    boxed, transform = letterbox(image, (64, 64), center=center)
    assert boxed.shape == (64, 64, 3) and transform.scale == pytest.approx(0.32)
    assert transform.pad_x == 0 and transform.pad_y == (16 if center else 0)
    assert (boxed[:16] == 114).all() if center else (boxed[32:] == 114).all()
    box_in_input = np.array([[10.0, 20.0, 42.0, 36.0]])
    back = transform.to_image(box_in_input)
    expected = (box_in_input - [0, transform.pad_y, 0, transform.pad_y]) / 0.32
    np.testing.assert_allclose(back, expected)


def test_nms_keeps_best_and_respects_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.95, 0.5, 0.3])
    assert nms_xyxy(boxes, scores, 0.5).tolist() == [1, 3]
    # box 2 is another class: it survives next to box 1
    assert nms_xyxy(boxes, scores, 0.5, np.array([0, 0, 1, 0])).tolist() == [1, 2, 3]
    assert nms_xyxy(boxes, scores, 0.5, max_output=1).tolist() == [1]
    assert nms_xyxy(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_nms_matrix_and_row_paths_agree(monkeypatch):
    from reidsort.detection import nms

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 300, (200, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(10, 80, (200, 2))], axis=1)
    scores, classes = rng.random(200), rng.integers(0, 3, 200)
    fast = nms_xyxy(boxes, scores, 0.45, classes, max_output=50)
    monkeypatch.setattr(nms, "PAIRWISE_LIMIT", 0)  # force the one-row-per-kept-box path
    assert fast.tolist() == nms_xyxy(boxes, scores, 0.45, classes, max_output=50).tolist()
    assert len(fast) == 50


def _yolox_table():
    table = np.zeros((1, CELLS, 5 + NUM_CLASSES), np.float32)
    table[0, :, 2:4] = -5.0  # tiny boxes elsewhere, objectness 0
    # cell (x=1, y=2) of stride 16 -> box centre (24, 40), size 32x48 in input pixels
    table[0, 73] = [0.5, 0.5, math.log(2.0), math.log(3.0), 0.9, 0.1, 0.8]
    # a near-duplicate in the neighbouring stride-8 cell with a lower score: NMS removes it
    table[0, 4 * 8 + 2] = [0.9, 0.6, math.log(4.0), math.log(6.0), 0.8, 0.1, 0.7]
    return table


def test_yolox_layout_is_detected_and_decoded(tmp_path):
    model = constant_output_model(tmp_path / "yolox.onnx", _yolox_table(), INPUT_HW)
    detector = YoloOnnxDetector(model, classes=[1], score_threshold=0.3)
    assert detector.layout is YoloLayout.YOLOX and detector.num_classes == NUM_CLASSES
    image = np.zeros((128, 128, 3), np.uint8)  # scale 0.5, no padding
    (dets,) = detector.detect_images([image])
    assert len(dets) == 1 and dets.class_ids.tolist() == [1]
    assert dets.scores[0] == pytest.approx(0.72, rel=1e-5)
    np.testing.assert_allclose(dets.xyxy[0], [16.0, 32.0, 80.0, 128.0], rtol=1e-5)
    # the person class (0) scores 0.9 * 0.1: below the threshold
    (nothing,) = YoloOnnxDetector(model, classes=[0]).detect_images([image])
    assert len(nothing) == 0


def test_yolox_decoded_layout_skips_the_grid(tmp_path):
    table = np.zeros((1, CELLS, 5 + NUM_CLASSES), np.float32)
    table[0, 10] = [24.0, 40.0, 32.0, 48.0, 1.0, 0.6, 0.2]
    model = constant_output_model(tmp_path / "decoded.onnx", table, INPUT_HW)
    detector = YoloOnnxDetector(model, layout="yolox_decoded", classes=None)
    (dets,) = detector.detect_images([np.zeros((64, 64, 3), np.uint8)])
    np.testing.assert_allclose(dets.xyxy[0], [8.0, 16.0, 40.0, 64.0])
    assert dets.class_ids.tolist() == [0] and dets.scores[0] == pytest.approx(0.6)


def test_yolov5_layout_centred_letterbox(tmp_path):
    table = np.zeros((1, 3 * CELLS, 5 + NUM_CLASSES), np.float32)
    table[0, 100] = [32.0, 32.0, 16.0, 32.0, 0.8, 0.9, 0.05]
    model = constant_output_model(tmp_path / "v5.onnx", table, INPUT_HW)
    detector = YoloOnnxDetector(model)
    assert detector.layout is YoloLayout.YOLOV5 and detector.convention.center
    # 128 high x 64 wide -> scale 0.5, 32x64 image centred: 16 px of padding left and right
    (dets,) = detector.detect_images([np.zeros((128, 64, 3), np.uint8)])
    np.testing.assert_allclose(dets.xyxy[0], [16.0, 32.0, 48.0, 96.0])
    assert dets.scores[0] == pytest.approx(0.72)


@pytest.mark.parametrize("layout", ["auto", "yolov8", "yolo11"])
def test_yolov8_and_yolo11_transposed_layout(tmp_path, layout):
    table = np.zeros((1, 4 + NUM_CLASSES, CELLS), np.float32)
    table[0, :, 5] = [20.0, 30.0, 10.0, 20.0, 0.85, 0.1]
    table[0, :, 6] = [21.0, 30.0, 10.0, 20.0, 0.80, 0.1]  # duplicate: suppressed
    table[0, :, 50] = [50.0, 50.0, 8.0, 8.0, 0.2, 0.6]  # class 1: filtered out
    model = constant_output_model(tmp_path / "v8.onnx", table, INPUT_HW)
    detector = YoloOnnxDetector(model, layout=layout)
    assert detector.layout is YoloLayout.YOLOV8
    (dets,) = detector.detect_images([np.zeros((64, 64, 3), np.uint8)])
    np.testing.assert_allclose(dets.xyxy, [[15.0, 20.0, 25.0, 40.0]])
    assert dets.class_ids.tolist() == [0]


def test_input_conventions(tmp_path):
    yolox = YoloOnnxDetector(constant_output_model(tmp_path / "x.onnx", _yolox_table()))
    v8_table = np.zeros((1, 4 + NUM_CLASSES, CELLS), np.float32)
    v8 = YoloOnnxDetector(constant_output_model(tmp_path / "v8.onnx", v8_table))
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0], image[..., 2] = 255, 51  # blue 255, red 51
    batch_x, _ = yolox.preprocess([image])
    batch_v8, _ = v8.preprocess([image])
    assert batch_x[0, 0, 0, 0] == 255.0 and batch_x[0, 2, 0, 0] == 51.0  # BGR, 0..255
    assert batch_v8[0, 0, 0, 0] == pytest.approx(0.2) and batch_v8[0, 2, 0, 0] == 1.0  # RGB 0..1


def test_dynamic_batch_model_batches_frames(tmp_path):
    model = constant_output_model(tmp_path / "dyn.onnx", _yolox_table(), INPUT_HW, batch="N")
    detector = YoloOnnxDetector(model, classes=[1], batch_size=2)
    assert detector.fixed_batch is None and detector.batch_size == 2
    results = detector.detect_images([np.zeros((128, 128, 3), np.uint8)] * 3)
    assert [len(r) for r in results] == [1, 1, 1]
    np.testing.assert_allclose(results[2].xyxy, results[0].xyxy)


def test_unknown_layout_names_the_supported_ones(tmp_path):
    model = constant_output_model(tmp_path / "odd.onnx", np.zeros((1, 10, 7), np.float32))
    with pytest.raises(ReidsortError, match="supported layouts: yolox"):
        YoloOnnxDetector(model)
    with pytest.raises(ReidsortError, match="unknown YOLO layout 'yolov9'"):
        YoloOnnxDetector(model, layout="yolov9")
    with pytest.raises(ReidsortError, match="one row per grid cell"):
        YoloOnnxDetector(model, layout="yolox")
    with pytest.raises(ReidsortError, match="unknown YOLO output layout"):
        infer_layout((1, 84), INPUT_HW)


def test_missing_model_and_bad_classes(tmp_path):
    with pytest.raises(ReidsortError, match="not found"):
        YoloOnnxDetector(tmp_path / "missing.onnx")
    with pytest.raises(ReidsortError, match="model_path"):
        YoloOnnxDetector(None)
    model = constant_output_model(tmp_path / "x.onnx", _yolox_table())
    with pytest.raises(ReidsortError, match="only 2 classes"):
        YoloOnnxDetector(model, classes=[5])
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ReidsortError, match="cannot load"):
        YoloOnnxDetector(tmp_path / "broken.onnx")


def test_yolox_nano_finds_the_people_of_a_real_frame(shared_data):
    detector = YoloOnnxDetector(shared_data / "models" / "yolox_nano.onnx", threads=1)
    assert detector.layout is YoloLayout.YOLOX and detector.input_hw == (416, 416)
    sequence = shared_data / "mot" / "TUD-Campus"
    image = cv2.imread(str(sequence / "img1" / "000001.jpg"))
    (dets,) = detector.detect_images([image])
    gt = np.loadtxt(sequence / "gt" / "gt.txt", delimiter=",")
    gt = gt[gt[:, 0] == 1][:, 2:6]
    gt_xyxy = np.column_stack([gt[:, :2], gt[:, :2] + gt[:, 2:]])
    matched = sum(any(_iou(g, d) >= 0.5 for d in dets.xyxy) for g in gt_xyxy)
    assert matched >= 4, f"only {matched} of {len(gt_xyxy)} people found"
    assert (dets.class_ids == 0).all() and (dets.scores >= 0.3).all()
