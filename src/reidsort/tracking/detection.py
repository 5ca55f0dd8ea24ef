"""Detections and bounding-box conversions.

Every array name carries its box format, because mixing them up is the most common tracker bug:

* ``tlwh``: top-left x, top-left y, width, height (MOTChallenge files, the original DeepSORT).
* ``xyxy``: x1, y1, x2, y2 (most detectors, our tracker input and output).
* ``xyah``: centre x, centre y, aspect ratio width / height, height (the Kalman measurement).

All converters are vectorised over a leading axis: they accept ``(4,)`` or ``(N, 4)`` arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Columns of the one-call tracker input ``dets``: ``[x1, y1, x2, y2, score, cls]``.
DETECTION_COLUMNS: int = 6


def tlwh_to_xyxy(tlwh: np.ndarray) -> np.ndarray:
    """``(x, y, w, h)`` -> ``(x1, y1, x2, y2)``."""
    tlwh = np.asarray(tlwh, dtype=np.float64)
    xyxy = tlwh.copy()
    xyxy[..., 2:] += tlwh[..., :2]
    return xyxy


def xyxy_to_tlwh(xyxy: np.ndarray) -> np.ndarray:
    """``(x1, y1, x2, y2)`` -> ``(x, y, w, h)``."""
    xyxy = np.asarray(xyxy, dtype=np.float64)
    tlwh = xyxy.copy()
    tlwh[..., 2:] -= xyxy[..., :2]
    return tlwh


def tlwh_to_xyah(tlwh: np.ndarray) -> np.ndarray:
    """``(x, y, w, h)`` -> ``(centre x, centre y, w / h, h)``, the Kalman measurement space."""
    tlwh = np.asarray(tlwh, dtype=np.float64)
    xyah = tlwh.copy()
    xyah[..., :2] += tlwh[..., 2:] / 2
    xyah[..., 2] /= tlwh[..., 3]
    return xyah


def xyah_to_tlwh(xyah: np.ndarray) -> np.ndarray:
    """``(centre x, centre y, w / h, h)`` -> ``(x, y, w, h)``."""
    xyah = np.asarray(xyah, dtype=np.float64)
    tlwh = xyah.copy()
    tlwh[..., 2] *= xyah[..., 3]
    tlwh[..., :2] -= tlwh[..., 2:] / 2
    return tlwh


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(centre x, centre y, w / h, h)`` -> ``(x1, y1, x2, y2)``."""
    return tlwh_to_xyxy(xyah_to_tlwh(xyah))


def invalid_box_mask(tlwh: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """True for rows a tracker cannot use: non-finite values, zero or negative width/height.

    A zero-height box has no aspect ratio and a zero-size box makes the Kalman covariance
    singular, so they are rejected before they can put NaN into the filter state.
    """
    tlwh = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(tlwh).all(axis=1) | ~(tlwh[:, 2] > 0) | ~(tlwh[:, 3] > 0)
    if scores is not None:
        bad |= ~np.isfinite(np.asarray(scores, dtype=np.float64).reshape(-1))
    return bad


@dataclass(frozen=True)
class Detection:
    """One detection in one image: a box, a confidence, a class and an optional embedding.

    Kept for callers who think per object (visualisation, tests). The tracker itself consumes
    :class:`DetectionBatch`, the vectorised form.
    """

    tlwh: np.ndarray
    confidence: float
    class_id: int = 0
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tlwh", np.asarray(self.tlwh, dtype=np.float64).reshape(4))
        if self.embedding is not None:
            object.__setattr__(
                self, "embedding", np.asarray(self.embedding, dtype=np.float32).reshape(-1)
            )

    def to_xyxy(self) -> np.ndarray:
        return tlwh_to_xyxy(self.tlwh)

    def to_xyah(self) -> np.ndarray:
        return tlwh_to_xyah(self.tlwh)


@dataclass
class DetectionBatch:
    """All detections of one frame as aligned arrays (the tracker's internal input form).

    ``source_index`` maps every row back to the row of the caller's input (after filtering and
    non-maximum suppression reorder or drop rows), so outputs can name the detection they used.
    """

    tlwh: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    embeddings: np.ndarray | None = None
    source_index: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.tlwh = np.asarray(self.tlwh, dtype=np.float64).reshape(-1, 4)
        count = len(self.tlwh)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(count)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(count)
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if self.embeddings.ndim != 2 or len(self.embeddings) != count:
                raise ValueError(
                    f"embeddings must have shape ({count}, D) to match {count} detections, "
                    f"got {self.embeddings.shape}"
                )
        if self.source_index is None:
            self.source_index = np.arange(count, dtype=np.int64)
        else:
            self.source_index = np.asarray(self.source_index, dtype=np.int64).reshape(count)

    def __len__(self) -> int:
        return len(self.tlwh)

    @classmethod
    def trusted(
        cls,
        tlwh: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
        embeddings: np.ndarray | None,
        source_index: np.ndarray,
    ) -> DetectionBatch:
        """Wrap arrays that already have the right dtypes and shapes, skipping all checks.

        For the tracker's hot path, which has validated its input; callers use the constructor.
        """
        batch = cls.__new__(cls)
        batch.tlwh, batch.scores, batch.class_ids = tlwh, scores, class_ids
        batch.embeddings, batch.source_index = embeddings, source_index
        return batch

    @classmethod
    def empty(cls, embedding_dim: int | None = None) -> DetectionBatch:
        embeddings = None if embedding_dim is None else np.zeros((0, embedding_dim), np.float32)
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), embeddings)

    @classmethod
    def from_xyxy_array(
        cls, dets: np.ndarray, embeddings: np.ndarray | None = None
    ) -> DetectionBatch:
        """Build from the one-call tracker input ``(N, 6)`` ``[x1, y1, x2, y2, score, cls]``.

        Class ids are truncated to integers; a non-finite class id is an error (the tracker
        validates or drops such rows before it gets here).
        """
        dets = np.asarray(dets, dtype=np.float64)
        if dets.size == 0:
            dets = dets.reshape(0, DETECTION_COLUMNS)
        if dets.ndim != 2 or dets.shape[1] != DETECTION_COLUMNS:
            raise ValueError(
                f"dets must have shape (N, {DETECTION_COLUMNS}) [x1, y1, x2, y2, score, cls], "
                f"got {dets.shape}"
            )
        class_column = dets[:, 5]
        if not np.isfinite(class_column).all():
            row = int(np.flatnonzero(~np.isfinite(class_column))[0])
            raise ValueError(f"dets row {row} has a non-finite class id: {dets[row].tolist()}")
        return cls(xyxy_to_tlwh(dets[:, :4]), dets[:, 4], class_column.astype(np.int64), embeddings)

    @classmethod
    def from_detections(cls, detections: Sequence[Detection]) -> DetectionBatch:
        """Stack per-object :class:`Detection` instances (all with or all without embeddings)."""
        if len(detections) == 0:
            return cls.empty()
        with_embedding = [d.embedding is not None for d in detections]
        if any(with_embedding) and not all(with_embedding):
            raise ValueError("either every Detection has an embedding or none does")
        embeddings = np.stack([d.embedding for d in detections]) if all(with_embedding) else None
        return cls(
            np.stack([d.tlwh for d in detections]),
            np.array([d.confidence for d in detections], dtype=np.float64),
            np.array([d.class_id for d in detections], dtype=np.int64),
            embeddings,
        )

    def subset(self, rows: np.ndarray) -> DetectionBatch:
        """Rows ``rows`` (indices or a boolean mask), in that order, keeping ``source_index``."""
        return DetectionBatch(
            self.tlwh[rows],
            self.scores[rows],
            self.class_ids[rows],
            None if self.embeddings is None else self.embeddings[rows],
            self.source_index[rows],
        )

    def to_xyah(self) -> np.ndarray:
        return tlwh_to_xyah(self.tlwh)

    def to_xyxy(self) -> np.ndarray:
        return tlwh_to_xyxy(self.tlwh)

    def to_list(self) -> list[Detection]:
        return [
            Detection(
                self.tlwh[i],
                float(self.scores[i]),
                int(self.class_ids[i]),
                None if self.embeddings is None else self.embeddings[i],
            )
            for i in range(len(self))
        ]
