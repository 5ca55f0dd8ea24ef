"""Detections and embeddings of a source, computed once and reused (tuning sweeps, re-runs).

A tuning trial changes only tracker knobs, so everything upstream of the tracker is the same
for every trial: the detections of a source depend on (source content, detector config) and the
embeddings on (source, detector, embedder config). Each is stored as one ``.npz`` file named by
a hash of exactly those inputs (config values plus size and modification time of every file a
config names, e.g. the ONNX model), so a changed model, threshold or frame invalidates the
entry by itself. Files are written atomically; an unreadable entry is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidsort.detection.base import Detections
from reidsort.utils.io import atomic_output

log = logging.getLogger(__name__)

#: Bump when the stored arrays change meaning, so old entries are never read.
CACHE_VERSION = 1
KEY_LENGTH = 16
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _with_file_fingerprints(value: Any) -> Any:
    """``value`` with every string naming an existing file replaced by path + size + mtime."""
    if isinstance(value, dict):
        return {k: _with_file_fingerprints(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_with_file_fingerprints(v) for v in value]
    if isinstance(value, str) and value and os.path.isfile(value):
        stat = os.stat(value)
        return f"{os.path.realpath(value)}:{stat.st_size}:{stat.st_mtime_ns}"
    return value


def cache_key(*parts: Any) -> str:
    """A short hash of JSON-able ``parts`` (files they name are fingerprinted)."""
    text = json.dumps([CACHE_VERSION, *(_with_file_fingerprints(p) for p in parts)],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


@dataclass
class DetectionTable:
    """Detections of every processed frame of a source, as flat arrays.

    ``frame_ids`` lists the processed frames (unreadable frames are absent, so a cached run
    skips them too); detection rows carry their frame in ``det_frames``.
    """

    frame_ids: np.ndarray
    det_frames: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        order = np.argsort(self.det_frames, kind="stable")
        frames, starts = np.unique(self.det_frames[order], return_index=True)
        self._rows = dict(zip(frames.tolist(), np.split(order, starts[1:])))
        self._processed = set(self.frame_ids.tolist())

    def has_frame(self, index: int) -> bool:
        return index in self._processed

    def rows(self, index: int) -> np.ndarray:
        return self._rows.get(index, np.zeros(0, dtype=np.int64))

    def for_frame(self, index: int) -> Detections:
        rows = self.rows(index)
        return Detections(self.xyxy[rows], self.scores[rows], self.class_ids[rows])


class FeatureRecorder:
    """Collects what a run computed, frame by frame, into a table (and embeddings)."""

    def __init__(self) -> None:
        self.frame_ids: list[int] = []
        self._frames: list[np.ndarray] = []
        self._dets: list[Detections] = []
        self._embeddings: list[np.ndarray] = []

    def add(self, index: int, dets: Detections, embeddings: np.ndarray | None) -> None:
        self.frame_ids.append(int(index))
        self._frames.append(np.full(len(dets), int(index), dtype=np.int64))
        self._dets.append(dets)
        if embeddings is not None:
            self._embeddings.append(np.asarray(embeddings, dtype=np.float32))

    def detections(self) -> DetectionTable:
        def cat(parts, shape, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

        return DetectionTable(
            frame_ids=np.asarray(self.frame_ids, dtype=np.int64),
            det_frames=cat(self._frames, (0,), np.int64),
            xyxy=cat([d.xyxy for d in self._dets], (0, 4), np.float64),
            scores=cat([d.scores for d in self._dets], (0,), np.float64),
            class_ids=cat([d.class_ids for d in self._dets], (0,), np.int64),
        )

    def embeddings(self) -> np.ndarray | None:
        if not self._embeddings or len(self._embeddings) != len(self._dets):
            return None
        return np.concatenate(self._embeddings).astype(np.float32)


class FeatureCache:
    """``.npz`` entries under ``root``: ``<source>-det-<key>.npz`` and ``<source>-emb-<key>.npz``.

    Embedding rows align with the detection rows of the table they were computed for (the
    embedding key includes the detection key).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, source_name: str, kind: str, key: str) -> Path:
        return self.root / f"{_UNSAFE_NAME.sub('_', source_name)}-{kind}-{key}.npz"

    def _load(self, path: Path) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, KeyError, EOFError) as error:
            log.warning("ignoring unreadable cache entry %s (%s)", path, error)
            return None

    def _save(self, path: Path, arrays: dict[str, np.ndarray]) -> Path:
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        return path

    def load_detections(self, source_name: str, key: str) -> DetectionTable | None:
        data = self._load(self._path(source_name, "det", key))
        if data is None:
            return None
        try:
            return DetectionTable(data["frame_ids"], data["det_frames"], data["xyxy"],
                                  data["scores"], data["class_ids"])
        except KeyError:
            return None

    def save_detections(self, source_name: str, key: str, table: DetectionTable) -> Path:
        return self._save(self._path(source_name, "det", key), {
            "frame_ids": table.frame_ids, "det_frames": table.det_frames, "xyxy": table.xyxy,
            "scores": table.scores, "class_ids": table.class_ids,
        })

    def load_embeddings(self, source_name: str, key: str, rows: int) -> np.ndarray | None:
        data = self._load(self._path(source_name, "emb", key))
        if data is None or "embeddings" not in data or len(data["embeddings"]) != rows:
            return None
        return data["embeddings"]

    def save_embeddings(self, source_name: str, key: str, embeddings: np.ndarray) -> Path:
        return self._save(self._path(source_name, "emb", key), {"embeddings": embeddings})
