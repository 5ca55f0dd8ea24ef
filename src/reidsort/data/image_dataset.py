"""A map-style dataset of Re-ID images that survives corrupt files."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from reidsort.data.datasets import ImageRecord
from reidsort.data.image_io import read_image_rgb

log = logging.getLogger(__name__)

#: how many other images of the same identity to try before giving up on a sample
MAX_FALLBACK_TRIES = 8


class ReIDImageDataset(Dataset):
    """Items are ``(image, label, camid, index)``.

    A file that cannot be decoded is skipped with a warning and counted (``bad_files``), and
    another image of the same identity is returned instead, so a PK batch keeps its structure
    and training never dies mid-epoch because of one file.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        labels: Sequence[int],
        transform: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        if len(records) != len(labels):
            raise ValueError("records and labels differ in length")
        self.records = list(records)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.camids = np.asarray([r.camid for r in self.records], dtype=np.int64)
        self.transform = transform
        self.bad_files: set[str] = set()
        self._by_label: dict[int, np.ndarray] = {}
        for label in np.unique(self.labels):
            self._by_label[int(label)] = np.flatnonzero(self.labels == label)

    def __len__(self) -> int:
        return len(self.records)

    def _decode(self, index: int) -> np.ndarray | None:
        path = self.records[index].path
        if path in self.bad_files:
            return None
        image = read_image_rgb(path)
        if image is None:
            self.bad_files.add(path)
            warnings.warn(f"skipping unreadable image {path}", RuntimeWarning, stacklevel=2)
        return image

    def __getitem__(self, index: int):
        image = self._decode(index)
        source = index
        if image is None:
            candidates = self._by_label[int(self.labels[index])]
            rng = np.random.default_rng(index)
            for other in rng.permutation(candidates)[:MAX_FALLBACK_TRIES]:
                image = self._decode(int(other))
                if image is not None:
                    source = int(other)
                    break
        if image is None:  # a whole identity unreadable: a black image keeps the batch shape
            image = np.zeros((8, 4, 3), dtype=np.uint8)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        return self.transform(tensor), int(self.labels[index]), int(self.camids[source]), index
