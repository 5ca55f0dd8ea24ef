"""Colour-histogram retrieval baseline on a query/gallery split (no learning)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from reidsort.data.datasets import ImageRecord
from reidsort.data.image_io import read_image_rgb
from reidsort.reid.histogram import color_histogram_features
from reidsort.reid.metrics import RetrievalResult, evaluate_retrieval


def _features(records: Sequence[ImageRecord]) -> np.ndarray:
    images = []
    for record in records:
        rgb = read_image_rgb(record.path)
        if rgb is None:
            rgb = np.zeros((128, 64, 3), dtype=np.uint8)
        images.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return color_histogram_features(images)


def histogram_baseline(query: Sequence[ImageRecord],
                       gallery: Sequence[ImageRecord]) -> RetrievalResult:
    """mAP / CMC of HSV part-histograms with cosine distance, Market-1501 protocol."""
    q, g = _features(query), _features(gallery)
    return evaluate_retrieval(
        torch.from_numpy(q), torch.from_numpy(g),
        np.array([r.pid for r in query]), np.array([r.pid for r in gallery]),
        np.array([r.camid for r in query]), np.array([r.camid for r in gallery]),
        metric="cosine",
    )
