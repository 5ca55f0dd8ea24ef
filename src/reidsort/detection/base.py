"""What every detector returns (:class:`Detections`) and the interface the tracking app uses.

A detector takes a batch of :class:`~reidsort.video.frame.Frame` objects and returns one
:class:`Detections` per frame: ``xyxy`` boxes in frame pixels, scores, class ids and, for
instance-segmentation models, boolean masks. Detectors that read detections from files (MOT
``det.txt``, COCO annotations) never look at pixels (``needs_pixels = False``) and are told the
source first (:meth:`Detector.bind`). Joint detection + embedding models (FairMOT) also return
one appearance embedding per box (``embeddings``, ``produces_embeddings = True``): the tracking
app then runs no embedder.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from reidsort.video.frame import Frame
from reidsort.video.sources import SourceInfo

#: Boxes narrower or lower than this (pixels, after clipping to the image) are dropped.
MIN_BOX_SIDE_PX = 1.0


@dataclass(frozen=True)
class Detections:
    """Detections of one frame: ``xyxy`` (N, 4) float64, ``scores`` (N,), ``class_ids`` (N,)
    int64, and optionally ``masks`` (N, H, W) bool and ``embeddings`` (N, D) float32 (L2-normalised
    appearance features of a joint detection + embedding model)."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        count = len(xyxy)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if len(scores) != count or len(class_ids) != count:
            raise ValueError(
                f"detections need one score and class per box: {count} boxes, "
                f"{len(scores)} scores, {len(class_ids)} classes"
            )
        if self.masks is not None and (self.masks.ndim != 3 or len(self.masks) != count):
            raise ValueError(f"masks must be (N, H, W) for {count} boxes, got {self.masks.shape}")
        if self.embeddings is not None:
            embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if embeddings.ndim != 2 or len(embeddings) != count:
                raise ValueError(f"embeddings must be (N, D) for {count} boxes, got "
                                 f"{embeddings.shape}")
            object.__setattr__(self, "embeddings", embeddings)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, keep: np.ndarray) -> Detections:
        """The detections at ``keep`` (a boolean mask or indices), masks and embeddings
        included."""
        return Detections(self.xyxy[keep], self.scores[keep], self.class_ids[keep],
                          None if self.masks is None else self.masks[keep],
                          None if self.embeddings is None else self.embeddings[keep])

    def tracker_input(self) -> np.ndarray:
        """``(N, 6)`` ``[x1, y1, x2, y2, score, cls]``, what ``DeepSortTracker.update`` takes."""
        return np.column_stack([self.xyxy, self.scores, self.class_ids.astype(np.float64)])

    def clipped(self, height: int, width: int, min_side: float = MIN_BOX_SIDE_PX) -> Detections:
        """Boxes clipped to the image; boxes with (almost) nothing inside and non-finite rows are
        dropped. Returns ``self`` when nothing changes (the common case)."""
        if len(self) == 0:
            return self
        xyxy = self.xyxy.copy()
        np.clip(xyxy[:, 0::2], 0.0, float(width), out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0.0, float(height), out=xyxy[:, 1::2])
        keep = np.isfinite(self.xyxy).all(axis=1) & np.isfinite(self.scores)
        keep &= (xyxy[:, 2] - xyxy[:, 0] >= min_side) & (xyxy[:, 3] - xyxy[:, 1] >= min_side)
        if keep.all() and np.array_equal(xyxy, self.xyxy):
            return self
        masks = None if self.masks is None else self.masks[keep]
        embeddings = None if self.embeddings is None else self.embeddings[keep]
        return Detections(xyxy[keep], self.scores[keep], self.class_ids[keep], masks, embeddings)


@runtime_checkable
class Detector(Protocol):
    """A detector as the tracking application uses it."""

    #: False for detectors that read detections from files: frames need not be decoded.
    needs_pixels: bool
    #: True when detections carry instance masks (drawn on the video).
    produces_masks: bool
    # A detector whose class sets ``produces_embeddings = True`` fills ``Detections.embeddings``
    # (task=track then runs no embedder); not a protocol member, so file-based detectors need
    # not declare it: read it with ``getattr(cls, "produces_embeddings", False)``.

    def bind(self, source: SourceInfo) -> None:
        """Get ready for the frames of ``source`` (file-based detectors load its detections)."""
        ...

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """One :class:`Detections` per frame, in frame order."""
        ...


class PixelDetector(abc.ABC):
    """Base of the model detectors: they need pixels and nothing about the source."""

    needs_pixels = True
    produces_masks = False
    produces_embeddings = False

    def bind(self, source: SourceInfo) -> None:  # noqa: B027 - deliberately a no-op
        """Model detectors work on any frame; nothing to prepare."""

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        images = []
        for frame in frames:
            if frame.image is None:
                raise ValueError(f"{type(self).__name__} needs decoded frames (frame "
                                 f"{frame.index} has no pixels)")
            images.append(frame.image)
        return self.detect_images(images)

    @abc.abstractmethod
    def detect_images(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per BGR uint8 image."""


def keep_classes(class_ids: np.ndarray, classes: Sequence[int] | None) -> np.ndarray:
    """Boolean mask of the rows whose class is in ``classes`` (all rows when None)."""
    if classes is None:
        return np.ones(len(class_ids), dtype=bool)
    return np.isin(class_ids, np.asarray(list(classes), dtype=np.int64))


def class_list(classes: Sequence[int] | int | None) -> tuple[int, ...] | None:
    """Normalise a ``classes`` option (None = all classes)."""
    if classes is None:
        return None
    if isinstance(classes, (int, np.integer)):
        return (int(classes),)
    return tuple(int(c) for c in classes)
