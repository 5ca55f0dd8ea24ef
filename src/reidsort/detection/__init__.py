"""Detectors for the tracking application, built from ``conf/detector/*.yaml``.

* :class:`YoloOnnxDetector` - YOLOX / YOLOv5 / YOLOv8 / YOLO11 ONNX exports (ONNX Runtime);
* :class:`TorchvisionDetector` - Faster R-CNN, RetinaNet, SSD, Mask R-CNN (local weights);
* :class:`PublicDetector` - MOTChallenge ``det.txt``;
* :class:`CocoDetector` - a COCO annotations JSON matched to frames by file name;
* :class:`HogDetector` - OpenCV's HOG people detector (no weights);
* :class:`reidsort.detection.fairmot.FairMOTDetector` - FairMOT (``task=jde`` checkpoint or
  ONNX): boxes and embeddings in one pass (not imported here: it builds on :mod:`reidsort.jde`,
  which imports this package's letterbox).

Every detector returns :class:`Detections` per frame (``xyxy`` in frame pixels). Importing this
package never imports torch; only :class:`TorchvisionDetector` and :class:`FairMOTDetector` with a
checkpoint (not its ONNX export) need it, when built.
"""

from reidsort.detection.base import Detections, Detector, PixelDetector
from reidsort.detection.coco import CocoDetector
from reidsort.detection.hog import HogDetector
from reidsort.detection.public import PublicDetector
from reidsort.detection.torchvision_det import TorchvisionDetector
from reidsort.detection.yolo_onnx import YoloLayout, YoloOnnxDetector

__all__ = [
    "CocoDetector",
    "Detections",
    "Detector",
    "HogDetector",
    "PixelDetector",
    "PublicDetector",
    "TorchvisionDetector",
    "YoloLayout",
    "YoloOnnxDetector",
]
