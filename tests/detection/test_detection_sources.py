"""File-based detectors (MOT det.txt, COCO annotations), HOG, torchvision, and Detections."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from reidsort.detection import CocoDetector, Detections, HogDetector, PublicDetector
from reidsort.utils.errors import ReidsortError
from reidsort.video.frame import Frame
from reidsort.video.sources import SourceInfo

RUN_SLOW = os.environ.get("REIDSORT_SLOW_TESTS", "") not in ("", "0")


def _info(**kwargs) -> SourceInfo:
    base = dict(name="seq", kind="mot", path=None, frame_rate=25.0, width=100, height=80,
                length=3)
    return SourceInfo(**{**base, **kwargs})


def _frames(count: int, names=None) -> list[Frame]:
    return [Frame(i, None, names[i - 1] if names else None) for i in range(1, count + 1)]


def test_detections_clip_to_the_image_and_drop_empty_boxes():
    dets = Detections(np.array([[-10, 5, 20, 30], [90, 70, 130, 95], [120, 0, 140, 10],
                                [10, 10, 20, np.nan]], float),
                      np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 0, 0, 0]))
    clipped = dets.clipped(80, 100)
    np.testing.assert_allclose(clipped.xyxy, [[0, 5, 20, 30], [90, 70, 100, 80]])
    assert clipped.scores.tolist() == [0.9, 0.8]
    inside = Detections(np.array([[1, 1, 5, 5]], float), [0.5], [0])
    assert inside.clipped(80, 100) is inside
    assert Detections.empty().tracker_input().shape == (0, 6)
    with pytest.raises(ValueError, match="one score and class per box"):
        Detections(np.zeros((2, 4)), [1.0], [0, 0])


def test_public_detector_reads_the_sequence_det_file(tmp_path):
    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n3,-1,0,0,5,5,0.2,-1,-1,-1\n"
                   "1,-1,50,20,10,10,0.4,-1,-1,-1\n")
    detector = PublicDetector(min_score=0.3)
    detector.bind(_info(det_path=det))
    first, second, third = detector.detect(_frames(3))
    np.testing.assert_allclose(first.xyxy, [[10, 20, 40, 60], [50, 20, 60, 30]])
    assert first.scores.tolist() == [0.9, 0.4] and first.class_ids.tolist() == [0, 0]
    assert len(second) == 0 and len(third) == 0  # frame 3's only box scores 0.2
    with pytest.raises(ReidsortError, match="detector=public needs detections"):
        PublicDetector().bind(_info(kind="video", det_path=None))
    with pytest.raises(ReidsortError, match="not found"):
        PublicDetector(path=tmp_path / "none.txt").bind(_info())


def _coco(tmp_path: Path, file_names=("f1.jpg", "f2.jpg")) -> Path:
    data = {
        "images": [{"id": 7, "file_name": f"some/dir/{file_names[0]}", "width": 100, "height": 80},
                   {"id": 8, "file_name": file_names[1], "width": 100, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 7, "bbox": [10, 10, 20, 30], "category_id": 1,
             "segmentation": [[10, 10, 30, 10, 30, 40, 10, 40]]},
            {"id": 2, "image_id": 7, "bbox": [60, 5, 10, 10], "category_id": 2, "score": 0.4},
            {"id": 3, "image_id": 8, "bbox": [0, 0, 4, 4], "category_id": 1,
             "segmentation": {"size": [80, 100], "counts": [0, 3, 77, 3, 7917]}},
        ],
        "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}],
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_detector_matches_frames_by_file_name_and_rasterises_masks(tmp_path):
    detector = CocoDetector(_coco(tmp_path))
    detector.bind(_info(kind="images", frame_names=("f0.jpg", "f1.jpg", "f2.jpg")))
    none, first, second = detector.detect(_frames(3, ["f0.jpg", "f1.jpg", "f2.jpg"]))
    assert len(none) == 0
    np.testing.assert_allclose(first.xyxy, [[10, 10, 30, 40], [60, 5, 70, 15]])
    assert first.scores.tolist() == [1.0, 0.4] and first.class_ids.tolist() == [1, 2]
    assert first.masks.shape == (2, 80, 100)
    assert first.masks[0, 20:35, 12:28].all() and first.masks[0].sum() < 25 * 35
    assert not first.masks[1].any()  # no segmentation
    # uncompressed RLE, column-major: pixels (0..2, 0) and (0..2, 1)
    assert second.masks[0].sum() == 6 and second.masks[0][:3, :2].all()
    only_cells = CocoDetector(_coco(tmp_path), category_ids=[1], masks=False)
    only_cells.bind(_info(kind="images", frame_names=("f1.jpg",), length=1))
    (cells,) = only_cells.detect(_frames(1, ["f1.jpg"]))
    assert cells.class_ids.tolist() == [1] and cells.masks is None


def test_coco_detector_errors(tmp_path):
    path = _coco(tmp_path)
    with pytest.raises(ReidsortError, match="none of its 2 image file names match"):
        CocoDetector(path).bind(_info(kind="images", frame_names=("a.png", "b.png")))
    with pytest.raises(ReidsortError, match="matches frames by image file name"):
        CocoDetector(path).bind(_info(kind="video", frame_names=None))
    (tmp_path / "bad.json").write_text("{\"images\": 3}")
    with pytest.raises(ReidsortError, match="needs 'images' and 'annotations'"):
        CocoDetector(tmp_path / "bad.json")
    with pytest.raises(ReidsortError, match="not found"):
        CocoDetector(tmp_path / "missing.json")


def test_hog_without_opencv4_names_the_fix(monkeypatch):
    monkeypatch.delattr(cv2, "HOGDescriptor", raising=False)  # as in OpenCV 5's main package
    with pytest.raises(ReidsortError, match="install OpenCV 4"):
        HogDetector()


def test_hog_finds_nobody_on_a_blank_frame_and_people_on_a_real_one(shared_data):
    detector = HogDetector()
    (blank,) = detector.detect_images([np.full((240, 320, 3), 128, np.uint8)])
    assert len(blank) == 0
    image = cv2.imread(str(shared_data / "mot" / "TUD-Campus" / "img1" / "000001.jpg"))
    (dets,) = detector.detect_images([image])
    assert len(dets) >= 1 and (dets.scores >= 0.5).all()


@pytest.fixture(scope="module")
def ssdlite_weights(tmp_path_factory) -> Path:
    """A random-init SSDlite state dict: loading and running it tests the real code path."""
    import torch
    import torchvision.models.detection as detection

    torch.manual_seed(0)
    model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                     num_classes=3)
    path = tmp_path_factory.mktemp("tv") / "ssdlite.pth"
    torch.save(model.state_dict(), path)
    return path


def test_torchvision_detector_loads_local_weights_and_detects(ssdlite_weights):
    import torch

    from reidsort.detection import TorchvisionDetector

    torch.set_num_threads(1)
    detector = TorchvisionDetector("ssdlite320_mobilenet_v3_large", ssdlite_weights,
                                   num_classes=3, classes=None, score_threshold=0.0,
                                   model_kwargs={"detections_per_img": 5})
    frames = [np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)] * 2
    first, second = detector.detect_images(frames)
    assert len(first) == 5 and first.masks is None
    assert (first.xyxy[:, 2] <= 160 + 1e-3).all() and (first.xyxy[:, 3] <= 120 + 1e-3).all()
    np.testing.assert_allclose(first.xyxy, second.xyxy, atol=1e-4)
    assert set(first.class_ids.tolist()) <= {1, 2}


def test_torchvision_detector_errors(ssdlite_weights):
    from reidsort.detection import TorchvisionDetector

    with pytest.raises(ReidsortError, match="nothing is downloaded"):
        TorchvisionDetector("fasterrcnn_resnet50_fpn", None)
    with pytest.raises(ReidsortError, match="unknown torchvision detector 'yolo'"):
        TorchvisionDetector("yolo", ssdlite_weights)
    with pytest.raises(ReidsortError, match="does not fit ssdlite320_mobilenet_v3_large with 91"):
        TorchvisionDetector("ssdlite320_mobilenet_v3_large", ssdlite_weights)


@pytest.mark.slow
@pytest.mark.skipif(not RUN_SLOW, reason="builds a 44M-parameter model; REIDSORT_SLOW_TESTS=1")
def test_mask_rcnn_masks_are_kept(tmp_path):
    import torch
    import torchvision.models.detection as detection

    from reidsort.detection import TorchvisionDetector

    torch.manual_seed(0)
    model = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2)
    torch.save(model.state_dict(), tmp_path / "mask.pth")
    detector = TorchvisionDetector("maskrcnn_resnet50_fpn", tmp_path / "mask.pth", num_classes=2,
                                   classes=None, score_threshold=0.0, mask_threshold=0.0,
                                   model_kwargs={"min_size": 128, "max_size": 160,
                                                 "box_detections_per_img": 3})
    assert detector.produces_masks
    (dets,) = detector.detect_images([np.full((120, 160, 3), 90, np.uint8)])
    assert dets.masks is not None and dets.masks.shape == (len(dets), 120, 160)


@pytest.mark.parametrize("name", ["public", "yolo_onnx", "torchvision", "coco", "hog"])
def test_every_detector_config_composes_and_builds_or_names_what_is_missing(name, tmp_path):
    from hydra.utils import instantiate

    from conftest import compose_config

    cfg = compose_config(["task=track", f"detector={name}"], tmp_path)
    if name == "public":
        assert isinstance(instantiate(cfg.detector), PublicDetector)
        return
    if name == "hog":  # needs no file: OpenCV 4 ships its SVM (pyproject pins opencv<5)
        assert isinstance(instantiate(cfg.detector), HogDetector)
        return
    # the others need a file the user names: a one-line error says which
    with pytest.raises(Exception) as error:
        instantiate(cfg.detector)
    cause = error.value.__cause__ or error.value
    while getattr(cause, "__cause__", None) is not None:
        cause = cause.__cause__
    assert isinstance(cause, ReidsortError)
    assert {"yolo_onnx": "model_path", "torchvision": "weights_path", "coco": "annotations"}[name] in str(cause)


def test_hog_on_a_frame_smaller_than_its_window_finds_nobody_instead_of_crashing():
    detector = HogDetector()
    for height, width in ((48, 64), (127, 400), (300, 63)):
        assert len(detector.detect_images([np.zeros((height, width, 3), np.uint8)])[0].xyxy) == 0
