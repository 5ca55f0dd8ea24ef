"""The embedder interface of the tracker, and the crop/batch logic every embedder shares.

An embedder turns detections into appearance features:
``embed(frame_bgr, boxes_xyxy) -> (N, D) float32``, rows L2-normalised, one row per box, in box
order. Boxes are clipped to the image (a box with no pixel inside keeps the nearest 1-pixel strip,
so every box gets a row); no boxes give a ``(0, D)`` array. ``embed_crops`` does the same for
crops already cut out. NumPy only here: no torch.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from reidsort.data.preprocess import PreprocessSpec, preprocess_crops

#: Crops per forward pass unless configured otherwise.
DEFAULT_MAX_BATCH = 32
#: Rows whose norm is below this are left as they are instead of divided by ~0.
_NORM_EPS = 1e-12


@runtime_checkable
class Embedder(Protocol):
    """What the tracker needs from an appearance model."""

    feature_dim: int

    def embed(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(N, D) float32 L2-normalised features of the N boxes (x1, y1, x2, y2) in the frame."""
        ...

    def embed_crops(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 L2-normalised features of N BGR uint8 crops of any sizes."""
        ...


def clip_boxes_xyxy(boxes_xyxy: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 4) int pixel bounds ``[x1, y1, x2, y2)`` of the boxes inside a height x width image.

    Coordinates are rounded (a pixel belongs to the crop when the box covers at least half of
    it, like the detector-box drawing of the synthetic renderer), clipped to the image, and kept
    at least one pixel wide and high.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must have shape (N, 4), got {boxes.shape}")
    if not np.all(np.isfinite(boxes)):
        bad = int(np.flatnonzero(~np.isfinite(boxes).all(axis=1))[0])
        raise ValueError(f"boxes_xyxy row {bad} is not finite: {boxes[bad].tolist()}")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        bad = int(np.flatnonzero(inverted)[0])
        raise ValueError(f"boxes_xyxy row {bad} has x2 < x1 or y2 < y1: {boxes[bad].tolist()}")
    rounded = np.rint(boxes).astype(np.int64)
    x1 = np.clip(rounded[:, 0], 0, width - 1)
    y1 = np.clip(rounded[:, 1], 0, height - 1)
    x2 = np.clip(rounded[:, 2], x1 + 1, width)
    y2 = np.clip(rounded[:, 3], y1 + 1, height)
    return np.stack([x1, y1, x2, y2], axis=1)


def crop_boxes(frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> list[np.ndarray]:
    """The crops (views into the frame) of the boxes, clipped as in :func:`clip_boxes_xyxy`."""
    check_frame(frame_bgr)
    height, width = frame_bgr.shape[:2]
    return [frame_bgr[y1:y2, x1:x2]
            for x1, y1, x2, y2 in clip_boxes_xyxy(boxes_xyxy, height, width)]


def check_frame(frame_bgr: np.ndarray) -> None:
    if not isinstance(frame_bgr, np.ndarray) or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 \
            or frame_bgr.dtype != np.uint8:
        shape = getattr(frame_bgr, "shape", None)
        raise ValueError(f"frame_bgr must be an HxWx3 uint8 image, got shape {shape}")
    if frame_bgr.shape[0] == 0 or frame_bgr.shape[1] == 0:
        raise ValueError(f"frame_bgr is empty (shape {frame_bgr.shape})")


def l2_normalize_rows(features: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (float32); all-zero rows stay zero."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, _NORM_EPS)


def check_max_batch(max_batch: int) -> int:
    if int(max_batch) < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return int(max_batch)


class CropEmbedder(abc.ABC):
    """``embed`` and batching on top of one method: features of a batch of crops."""

    feature_dim: int
    max_batch: int = DEFAULT_MAX_BATCH

    def embed(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        return self.embed_crops(crop_boxes(frame_bgr, boxes_xyxy))

    def embed_crops(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        crops = list(crops_bgr)
        if not crops:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        parts = [
            self._embed_batch(crops[start:start + self.max_batch])
            for start in range(0, len(crops), self.max_batch)
        ]
        features = np.concatenate(parts, axis=0)
        if features.shape != (len(crops), self.feature_dim):
            raise RuntimeError(
                f"{type(self).__name__} returned features of shape {features.shape}, "
                f"expected ({len(crops)}, {self.feature_dim})"
            )
        return l2_normalize_rows(features)

    @abc.abstractmethod
    def _embed_batch(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """(n, D) features of at most ``max_batch`` crops (normalised by the caller)."""


class NetworkEmbedder(CropEmbedder):
    """A CNN embedder: the shared preprocessing, then ``_infer`` on a float32 NCHW batch."""

    spec: PreprocessSpec

    def preprocess(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """The (n, 3, H, W) float32 batch the model sees (see reidsort.data.preprocess)."""
        return preprocess_crops(crops_bgr, self.spec, input_order="BGR")

    def _embed_batch(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        return self._infer(self.preprocess(crops_bgr))

    @abc.abstractmethod
    def _infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """(n, D) features of a preprocessed batch."""
