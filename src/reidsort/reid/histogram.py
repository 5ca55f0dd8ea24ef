"""Colour-histogram appearance features: a training-free Re-ID baseline.

Each crop is resized to a fixed size, converted to HSV and cut into horizontal stripes (head,
shoulders, torso, ..., feet), in the spirit of the classic part-based colour descriptors (ELF,
LOMO). Each stripe gets a joint HSV histogram; keeping the stripes separate is what tells a red
shirt over blue jeans from a blue shirt over red trousers. Stripe histograms are normalised to
sum 1, concatenated, square-rooted (Hellinger mapping: Euclidean/cosine distance between
square-rooted histograms approximates the Bhattacharyya distance, which suits histograms far
better than raw L2) and L2-normalised, so cosine distance can compare them directly.

NumPy and OpenCV only: this module must stay importable without torch, for the torch-free
embedder of the tracker.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

DEFAULT_STRIPES = 6
# Joint (hue, saturation, value) bins: hue carries most of the identity, so it gets more bins.
DEFAULT_BINS = (8, 4, 4)
# (height, width) every crop is resized to: the usual 2:1 pedestrian crop size of Market-1501.
DEFAULT_RESIZE_HW = (128, 64)

# OpenCV's 8-bit HSV stores hue in [0, 180) and saturation/value in [0, 256).
_HUE_LEVELS = 180
_SATURATION_VALUE_LEVELS = 256


def color_histogram_dim(stripes: int = DEFAULT_STRIPES, bins: Sequence[int] = DEFAULT_BINS) -> int:
    """Length of the feature vector :func:`color_histogram_features` returns."""
    hue_bins, saturation_bins, value_bins = bins
    return stripes * hue_bins * saturation_bins * value_bins


def _check_settings(stripes: int, bins: Sequence[int], resize_hw: Sequence[int]) -> None:
    if len(bins) != 3:
        raise ValueError(f"bins must give (hue, saturation, value) counts, got {tuple(bins)}")
    hue_bins, saturation_bins, value_bins = bins
    if not (1 <= hue_bins <= _HUE_LEVELS and 1 <= saturation_bins <= _SATURATION_VALUE_LEVELS
            and 1 <= value_bins <= _SATURATION_VALUE_LEVELS):
        raise ValueError(f"bins must lie in [1, 180] x [1, 256] x [1, 256], got {tuple(bins)}")
    if len(resize_hw) != 2 or min(resize_hw) < 1:
        raise ValueError(f"resize_hw must be a positive (height, width), got {tuple(resize_hw)}")
    if not 1 <= stripes <= resize_hw[0]:
        raise ValueError(
            f"stripes must lie in [1, {resize_hw[0]}] (the resized height), got {stripes}"
        )


def _resized_bgr_stack(
    images_bgr: Sequence[np.ndarray] | np.ndarray, resize_hw: Sequence[int]
) -> np.ndarray:
    """(N, H, W, 3) uint8 stack of the crops resized to ``resize_hw``, with input checks."""
    if isinstance(images_bgr, np.ndarray) and images_bgr.ndim != 4:
        raise ValueError(
            "images_bgr must be a sequence of HxWx3 crops or one (N, H, W, 3) array, got an "
            f"array of shape {images_bgr.shape}"
        )
    height, width = resize_hw
    resized = np.empty((len(images_bgr), height, width, 3), dtype=np.uint8)
    for index, image in enumerate(images_bgr):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image {index} must be an HxWx3 uint8 BGR array, got shape {image.shape} "
                f"and dtype {image.dtype}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image {index} is empty (shape {image.shape})")
        # INTER_AREA averages when shrinking (no aliasing); INTER_LINEAR when enlarging.
        shrinking = image.shape[0] >= height and image.shape[1] >= width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        resized[index] = cv2.resize(image, (width, height), interpolation=interpolation)
    return resized


def color_histogram_features(
    images_bgr: Sequence[np.ndarray] | np.ndarray,
    stripes: int = DEFAULT_STRIPES,
    bins: Sequence[int] = DEFAULT_BINS,
    resize_hw: Sequence[int] = DEFAULT_RESIZE_HW,
) -> np.ndarray:
    """(N, stripes * prod(bins)) float32 L2-normalised stripe HSV histograms of BGR uint8 crops.

    ``images_bgr`` is a sequence of HxWx3 uint8 BGR crops of any sizes (or one (N, H, W, 3)
    array). The result is deterministic; an empty input gives a (0, D) array.
    """
    _check_settings(stripes, bins, resize_hw)
    hue_bins, saturation_bins, value_bins = bins
    bins_per_stripe = hue_bins * saturation_bins * value_bins
    num_images = len(images_bgr)
    if num_images == 0:
        return np.zeros((0, stripes * bins_per_stripe), dtype=np.float32)

    height, width = resize_hw
    stack = _resized_bgr_stack(images_bgr, resize_hw)
    # One cvtColor call for all crops: stacked vertically they form a single tall image.
    hsv = cv2.cvtColor(stack.reshape(num_images * height, width, 3), cv2.COLOR_BGR2HSV)
    hsv = hsv.reshape(num_images, height, width, 3).astype(np.int32)

    hue_bin = hsv[..., 0] * hue_bins // _HUE_LEVELS
    saturation_bin = hsv[..., 1] * saturation_bins // _SATURATION_VALUE_LEVELS
    value_bin = hsv[..., 2] * value_bins // _SATURATION_VALUE_LEVELS
    colour_bin = (hue_bin * saturation_bins + saturation_bin) * value_bins + value_bin

    stripe_of_row = np.arange(height) * stripes // height
    image_stripe = np.arange(num_images)[:, None] * stripes + stripe_of_row[None, :]
    flat_bin = image_stripe[:, :, None] * bins_per_stripe + colour_bin
    counts = np.bincount(flat_bin.ravel(), minlength=num_images * stripes * bins_per_stripe)
    histograms = counts.reshape(num_images, stripes, bins_per_stripe).astype(np.float64)

    histograms /= histograms.sum(axis=2, keepdims=True)
    features = np.sqrt(histograms).reshape(num_images, stripes * bins_per_stripe)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return features.astype(np.float32)
