"""One frame of a source, as every stage of the tracking application sees it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """A frame: its 1-based number in the source, its pixels and (for image files) its name.

    ``image`` is an HxWx3 uint8 BGR array, or None when the run needs no pixels (public
    detections, no appearance embedder, no video output): MOT sequences without images can then
    still be tracked. ``name`` is the image file name (image folders and MOT sequences), which
    annotation-file detectors match frames by.
    """

    index: int
    image: np.ndarray | None
    name: str | None = None

    @property
    def height_width(self) -> tuple[int, int] | None:
        return None if self.image is None else (int(self.image.shape[0]), int(self.image.shape[1]))
