"""Public detections: a MOTChallenge ``det.txt`` (the sequence's own, or any file)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidsort.detection.base import Detections
from reidsort.tracking.detection import tlwh_to_xyxy
from reidsort.tracking.mot_io import DEFAULT_CLASS_ID, read_mot_detections
from reidsort.utils.errors import ReidsortError
from reidsort.video.frame import Frame
from reidsort.video.sources import SourceInfo


class PublicDetector:
    """Detections read from a MOTChallenge ``det.txt``; no pixels needed.

    Args:
        path: a ``det.txt``; None uses each MOT sequence's own ``det/det.txt``.
        min_score: rows scoring below this are dropped (None keeps all; the tracker's
            ``min_confidence`` filters again).
        class_id: class given to every detection (``det.txt`` has no class column).
    """

    needs_pixels = False
    produces_masks = False

    def __init__(self, path: str | os.PathLike | None = None, min_score: float | None = None,
                 class_id: int = DEFAULT_CLASS_ID) -> None:
        self.path = None if path is None else Path(path)
        self.min_score = None if min_score is None else float(min_score)
        self.class_id = int(class_id)
        self._rows_by_frame: dict[int, np.ndarray] = {}
        self._xyxy = np.zeros((0, 4))
        self._scores = np.zeros(0)

    def bind(self, source: SourceInfo) -> None:
        path = self.path or source.det_path
        if path is None:
            raise ReidsortError(
                f"detector=public needs detections: {source.name} is not a MOT sequence with "
                "det/det.txt (set detector.path=<det.txt>, or use a model detector: "
                "detector=yolo_onnx detector.model_path=<model.onnx>, or detector=hog)"
            )
        try:
            table = read_mot_detections(path)
        except (FileNotFoundError, ValueError) as error:
            raise ReidsortError(str(error)) from None
        keep = np.ones(len(table), dtype=bool)
        if self.min_score is not None:
            keep = table.scores >= self.min_score
        frames = table.frame_ids[keep]
        self._xyxy = tlwh_to_xyxy(table.tlwh[keep])
        self._scores = table.scores[keep]
        order = np.argsort(frames, kind="stable")  # rows of a frame keep their file order
        unique, starts = np.unique(frames[order], return_index=True)
        self._rows_by_frame = dict(zip(unique.tolist(), np.split(order, starts[1:])))

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for frame in frames:
            rows = self._rows_by_frame.get(frame.index)
            if rows is None:
                out.append(Detections.empty())
                continue
            out.append(Detections(self._xyxy[rows], self._scores[rows],
                                  np.full(len(rows), self.class_id, dtype=np.int64)))
        return out
