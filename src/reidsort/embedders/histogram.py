"""Colour-histogram embedder: HSV histograms per horizontal body stripe, no model needed.

The training-free baseline of :mod:`reidsort.reid.histogram` (NumPy + OpenCV) behind the
embedder interface: a tracker can run with appearance cues before any Re-ID model is trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reidsort.embedders.base import DEFAULT_MAX_BATCH, CropEmbedder, check_max_batch
from reidsort.reid.histogram import (
    DEFAULT_BINS,
    DEFAULT_RESIZE_HW,
    DEFAULT_STRIPES,
    color_histogram_features,
)


class HistogramEmbedder(CropEmbedder):
    """``stripes`` body parts x joint HSV ``bins`` histograms of crops resized to ``resize_hw``."""

    def __init__(
        self,
        stripes: int = DEFAULT_STRIPES,
        bins: Sequence[int] = DEFAULT_BINS,
        resize_hw: Sequence[int] = DEFAULT_RESIZE_HW,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.stripes = int(stripes)
        self.bins = tuple(int(b) for b in bins)
        self.resize_hw = tuple(int(v) for v in resize_hw)
        self.max_batch = check_max_batch(max_batch)
        # an empty call validates the settings (one clear ValueError) and gives (0, D)
        self.feature_dim = int(self._embed_batch([]).shape[1])

    def _embed_batch(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        return color_histogram_features(crops_bgr, stripes=self.stripes, bins=self.bins,
                                        resize_hw=self.resize_hw)
