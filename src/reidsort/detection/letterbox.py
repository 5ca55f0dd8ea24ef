"""Letterboxing: resize keeping the aspect ratio, pad to the network's input size, and map boxes
back to the original image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Grey used by YOLOv5/v8/11 and YOLOX for the padding.
PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxTransform:
    """How one image was letterboxed: ``input = image * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes in network-input pixels -> boxes in original-image pixels."""
        boxes = np.asarray(xyxy, dtype=np.float64).copy()
        boxes[:, 0::2] -= self.pad_x
        boxes[:, 1::2] -= self.pad_y
        boxes /= self.scale
        return boxes


def letterbox(image: np.ndarray, size_hw: tuple[int, int], center: bool = True,
              pad_value: int = PAD_VALUE) -> tuple[np.ndarray, LetterboxTransform]:
    """Resize ``image`` to fit ``size_hw`` (aspect kept) and pad the rest with ``pad_value``.

    ``center=True`` pads both sides equally (Ultralytics YOLOv5/v8/11); ``center=False`` puts
    the image in the top-left corner (YOLOX). Returns the padded HxWx3 image and the transform.
    """
    height, width = image.shape[:2]
    target_h, target_w = int(size_hw[0]), int(size_hw[1])
    scale = min(target_h / height, target_w / width)
    new_w, new_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    new_w, new_h = min(new_w, target_w), min(new_h, target_h)
    resized = image if (new_w, new_h) == (width, height) else cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_LINEAR
    )
    if center:
        left, top = (target_w - new_w) // 2, (target_h - new_h) // 2
    else:
        left, top = 0, 0
    out = np.full((target_h, target_w, image.shape[2]), pad_value, dtype=image.dtype)
    out[top:top + new_h, left:left + new_w] = resized
    # the exact per-axis scale would differ by < 1 pixel; one scale keeps boxes undistorted
    return out, LetterboxTransform(scale=scale, pad_x=float(left), pad_y=float(top))
