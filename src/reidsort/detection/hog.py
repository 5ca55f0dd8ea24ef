"""OpenCV's built-in HOG + linear SVM people detector (Dalal & Triggs, 2005): no weights needed.

Its window is 64x128 pixels, so people smaller than about 128 pixels are missed unless the
frame is upscaled (``upscale``). Scores are the SVM margins mapped through a logistic function
into (0, 1), so the tracker's ``min_confidence`` works in the same units as for other detectors
(margin 0 -> 0.5).

OpenCV 5 moved the HOG detector out of its main package (to the contrib modules); with OpenCV 5
this detector says so and names the fix instead of failing obscurely.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from reidsort.detection.base import Detections, PixelDetector
from reidsort.detection.nms import nms_xyxy
from reidsort.utils.errors import ReidsortError

#: Class id of the detections (COCO person, as the YOLO detectors report it).
PERSON_CLASS_ID = 0


class HogDetector(PixelDetector):
    """HOG people detector.

    Args:
        hit_threshold: SVM margin a window needs (OpenCV's ``hitThreshold``).
        win_stride, padding, scale: OpenCV ``detectMultiScale`` options (speed vs. recall).
        upscale: resize frames by this factor first (finds smaller people, slower).
        score_threshold: minimum logistic score.
        nms_threshold: IoU above which overlapping windows are merged by NMS.
    """

    def __init__(self, hit_threshold: float = 0.0, win_stride: Sequence[int] = (8, 8),
                 padding: Sequence[int] = (8, 8), scale: float = 1.05, upscale: float = 1.0,
                 score_threshold: float = 0.5, nms_threshold: float = 0.45) -> None:
        if not scale > 1.0 or not upscale > 0:
            raise ValueError(f"scale must be > 1 and upscale > 0, got {scale}, {upscale}")
        if not hasattr(cv2, "HOGDescriptor"):
            raise ReidsortError(
                f"detector=hog needs OpenCV's HOG people detector, which OpenCV 5 moved out of "
                f"its main package (this is OpenCV {cv2.__version__}); install OpenCV 4: "
                "pip install 'opencv-python-headless>=4.8,<5' (or use detector=yolo_onnx)"
            )
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.hit_threshold = float(hit_threshold)
        self.win_stride = tuple(int(v) for v in win_stride)
        self.padding = tuple(int(v) for v in padding)
        self.scale = float(scale)
        self.upscale = float(upscale)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)

    def detect_images(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect(image) for image in images]

    def _detect(self, image: np.ndarray) -> Detections:
        work = image
        if self.upscale != 1.0:
            work = cv2.resize(image, None, fx=self.upscale, fy=self.upscale,
                              interpolation=cv2.INTER_LINEAR)
        window_w, window_h = self.hog.winSize
        if work.shape[0] < window_h or work.shape[1] < window_w:
            # no person window fits (OpenCV's detectMultiScale crashes the process on such frames)
            return Detections.empty()
        rects, weights = self.hog.detectMultiScale(
            work, hitThreshold=self.hit_threshold, winStride=self.win_stride,
            padding=self.padding, scale=self.scale,
        )
        if len(rects) == 0:
            return Detections.empty()
        tlwh = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / self.upscale
        margins = np.asarray(weights, dtype=np.float64).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-margins))
        xyxy = np.concatenate([tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:]], axis=1)
        keep = np.flatnonzero(scores >= self.score_threshold)
        keep = keep[nms_xyxy(xyxy[keep], scores[keep], self.nms_threshold)]
        return Detections(xyxy[keep], scores[keep],
                          np.full(len(keep), PERSON_CLASS_ID, dtype=np.int64))
