"""Image + box augmentation for joint detection-and-embedding training (FairMOT's recipe).

NumPy + OpenCV only. Boxes are ``xyxy`` float64 in pixels of the image they belong to; every
random draw comes from the ``numpy.random.Generator`` passed in, so a sample is reproducible
from its seed. The steps, in FairMOT's order (``src/lib/datasets/dataset/jde.py``):

1. :func:`hsv_jitter` on the original frame: saturation and value each scaled by a factor drawn
   from ``[1 - fraction, 1 + fraction]`` (FairMOT: fraction 0.5), hue untouched.
2. :func:`letterbox_frame` to the network input (H, W), padded with FairMOT's grey 127.5 (kept
   exact by working in float32; FairMOT's uint8 ``copyMakeBorder`` rounds it to 128).
3. :func:`random_affine`: rotation, scale, translation and shear about the image centre
   (FairMOT's ``degrees=(-5, 5), translate=(0.1, 0.1), scale=(0.5, 1.2), shear=(-2, 2)``), the
   same grey outside the frame. Boxes are mapped by their 4 corners and replaced by the
   axis-aligned box around them, shrunk for the rotation as FairMOT (YOLOv3) does.
   :func:`box_candidates` then drops boxes with less than ``min_area_fraction`` of their
   (transformed) area inside the image, a visible part not wider/taller than ``min_size``
   pixels, or an aspect ratio beyond ``max_aspect``.
   One deliberate difference: FairMOT translates x by a fraction of the image *height* and y
   by one of the *width* (swapped); here x moves with the width and y with the height.
4. :func:`hflip` with probability ``flip`` (identities are untouched: the same person).

Boxes stay amodal (partly outside the image) unless the caller clips them (MOT20's rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from reidsort.detection.letterbox import LetterboxTransform, letterbox
from reidsort.utils.errors import ReidsortError

#: FairMOT's padding / border grey (``letterbox`` and ``random_affine`` ``color=(127.5, ...)``).
PAD_VALUE = 127.5


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ReidsortError(f"jde augment.{name}={value!r}: expected a [low, high] pair") from None
    if low > high:
        raise ReidsortError(f"jde augment.{name}={value!r}: low > high")
    return low, high


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; the defaults are FairMOT's. ``enabled=False`` = letterbox only."""

    enabled: bool = True
    #: HSV: saturation and value scaled by U(1 - f, 1 + f) each (0 = off)
    hsv_fraction: float = 0.5
    #: random affine (``affine=False`` skips it)
    affine: bool = True
    degrees: tuple[float, float] = (-5.0, 5.0)
    translate: tuple[float, float] = (0.1, 0.1)
    scale: tuple[float, float] = (0.5, 1.2)
    shear: tuple[float, float] = (-2.0, 2.0)
    #: boxes with less of their transformed area inside the image are dropped
    min_area_fraction: float = 0.2
    #: boxes whose visible part is not wider and taller than this (input pixels) are dropped
    min_size: float = 4.0
    #: boxes with max(w/h, h/w) at or above this are dropped (FairMOT: 10)
    max_aspect: float = 10.0
    #: probability of a horizontal flip
    flip: float = 0.5

    def __post_init__(self) -> None:
        for name in ("degrees", "scale", "shear"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        try:  # (x, y) fractions of the width and the height, or one for both
            translate = ((float(self.translate),) * 2 if isinstance(self.translate, (int, float))
                         else tuple(float(v) for v in self.translate))
        except (TypeError, ValueError):
            translate = ()
        if len(translate) != 2:
            raise ReidsortError(f"jde augment.translate={self.translate!r}: expected [x, y]")
        object.__setattr__(self, "translate", translate)
        if not (0.0 <= self.hsv_fraction < 1.0 and 0.0 <= self.flip <= 1.0
                and 0.0 <= self.min_area_fraction <= 1.0 and self.min_size >= 0
                and self.max_aspect > 1.0 and self.scale[0] > 0 and min(translate) >= 0):
            raise ReidsortError(f"jde augment: bad settings {self}")

    @classmethod
    def from_config(cls, value: bool | dict[str, Any] | AugmentConfig | None) -> AugmentConfig:
        """``True``/``None``: FairMOT's defaults; ``False``: off; a dict: overrides."""
        if isinstance(value, AugmentConfig):
            return value
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(enabled=False)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ReidsortError(f"jde augment: unknown options {unknown} (known: {sorted(known)})")
        return cls(**dict(value))


# --------------------------------------------------------------------------- colour
def hsv_jitter(image_rgb: np.ndarray, rng: np.random.Generator, fraction: float = 0.5
               ) -> np.ndarray:
    """FairMOT's SV augmentation on an HxWx3 uint8 RGB image (a new array)."""
    hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV)
    for channel in (1, 2):
        factor = 1.0 + fraction * (2.0 * rng.random() - 1.0)
        values = hsv[:, :, channel].astype(np.float32) * factor
        hsv[:, :, channel] = np.clip(values, 0, 255).astype(np.uint8)  # truncates, as FairMOT
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


# --------------------------------------------------------------------------- geometry
def normalised_to_xyxy(cxcywh: np.ndarray, width: int, height: int) -> np.ndarray:
    """FairMOT label boxes (centre and size divided by the image size) -> pixel ``xyxy``."""
    b = np.asarray(cxcywh, dtype=np.float64).reshape(-1, 4)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    return np.stack([(b[:, 0] - half_w) * width, (b[:, 1] - half_h) * height,
                     (b[:, 0] + half_w) * width, (b[:, 1] + half_h) * height], axis=1)


def letterbox_frame(image: np.ndarray, boxes_xyxy: np.ndarray, size_hw: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray, LetterboxTransform]:
    """Letterbox (centred, aspect kept, grey :data:`PAD_VALUE`) to a float32 HxWx3 image and map
    the boxes with the same transform (``input = image * scale + pad``), so
    :meth:`LetterboxTransform.to_image` undoes it exactly."""
    out, transform = letterbox(image.astype(np.float32, copy=False), size_hw,
                               pad_value=PAD_VALUE)  # type: ignore[arg-type]
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4) * transform.scale
    boxes[:, 0::2] += transform.pad_x
    boxes[:, 1::2] += transform.pad_y
    return out, boxes, transform


def affine_matrix(rng: np.random.Generator, size_hw: tuple[int, int], config: AugmentConfig
                  ) -> tuple[np.ndarray, float]:
    """A random 3x3 affine ``M = shear @ translate @ rotate_scale`` (FairMOT's order) and its
    rotation angle in degrees."""
    height, width = size_hw
    angle = rng.uniform(*config.degrees)
    scale = rng.uniform(*config.scale)
    rotate = np.eye(3)
    rotate[:2] = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    translate = np.eye(3)
    translate[0, 2] = (2 * rng.random() - 1) * config.translate[0] * width
    translate[1, 2] = (2 * rng.random() - 1) * config.translate[1] * height
    shear = np.eye(3)
    shear[0, 1] = math.tan(math.radians(rng.uniform(*config.shear)))
    shear[1, 0] = math.tan(math.radians(rng.uniform(*config.shear)))
    return shear @ translate @ rotate, angle


def transform_boxes(boxes_xyxy: np.ndarray, matrix: np.ndarray, angle: float = 0.0) -> np.ndarray:
    """Boxes mapped by their 4 corners through ``matrix`` (3x3 affine); the axis-aligned box
    around the corners is shrunk about its centre by ``sqrt(max(|sin a|, |cos a|))``, FairMOT's
    angle-based reduction (the corners of a rotated person box overstate its extent)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    n = len(b)
    corners = b[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
    mapped = corners @ matrix[:2, :2].T + matrix[:2, 2]
    xs, ys = mapped[:, 0].reshape(n, 4), mapped[:, 1].reshape(n, 4)
    radians = math.radians(angle)
    reduction = max(abs(math.sin(radians)), abs(math.cos(radians))) ** 0.5
    cx, cy = (xs.min(1) + xs.max(1)) / 2, (ys.min(1) + ys.max(1)) / 2
    half_w = (xs.max(1) - xs.min(1)) * reduction / 2
    half_h = (ys.max(1) - ys.min(1)) * reduction / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


def clip_boxes(boxes_xyxy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Boxes clipped to the ``(height, width)`` image (a new array)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
    b[:, 0::2] = b[:, 0::2].clip(0, size_hw[1])
    b[:, 1::2] = b[:, 1::2].clip(0, size_hw[0])
    return b


def box_candidates(boxes_xyxy: np.ndarray, size_hw: tuple[int, int], *,
                   min_area_fraction: float = 0.2, min_size: float = 4.0,
                   max_aspect: float = 10.0) -> np.ndarray:
    """Which boxes to keep after a geometric transform (bool mask, see the module docstring)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    visible = clip_boxes(b, size_hw)
    vw, vh = visible[:, 2] - visible[:, 0], visible[:, 3] - visible[:, 1]
    area = np.maximum(w, 0) * np.maximum(h, 0)
    aspect = np.maximum(w / (h + 1e-16), h / (w + 1e-16))
    return ((vw > min_size) & (vh > min_size) & (area > 0)
            & (vw * vh >= min_area_fraction * area) & (aspect < max_aspect))


def random_affine(image: np.ndarray, boxes_xyxy: np.ndarray, rng: np.random.Generator,
                  config: AugmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp ``image`` (same size out, border :data:`PAD_VALUE`) and its boxes; returns the
    image, the transformed boxes that survive :func:`box_candidates` (amodal, not clipped) and
    the keep mask over the input boxes."""
    height, width = image.shape[:2]
    matrix, angle = affine_matrix(rng, (height, width), config)
    warped = cv2.warpAffine(image, matrix[:2], (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)
    boxes = transform_boxes(boxes_xyxy, matrix, angle)
    keep = box_candidates(boxes, (height, width), min_area_fraction=config.min_area_fraction,
                          min_size=config.min_size, max_aspect=config.max_aspect)
    return warped, boxes[keep], keep


def hflip(image: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image left-right and its boxes with it (``x -> width - x``)."""
    width = image.shape[1]
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    flipped = np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1)
    return np.ascontiguousarray(image[:, ::-1]), flipped
