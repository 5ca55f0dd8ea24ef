"""Decode FairMOT's output maps into detections and embeddings (NumPy only: no torch import, so
``task=track`` can run an exported ONNX FairMOT torch-free).

CenterNet's decoding (ifzhang/FairMOT src/lib/models/decode.py ``mot_decode``): peaks of the
heatmap are its 3x3 local maxima (max-pool "NMS"), the ``top_k`` best over all classes are kept,
and each one reads the size, offset and embedding maps at its cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from reidsort.jde.targets import OUTPUT_STRIDE, SIZE_MODES
from reidsort.utils.errors import ReidsortError

if TYPE_CHECKING:
    from reidsort.detection.letterbox import LetterboxTransform

#: FairMOT's ``opt.K``: detections kept per image before the score threshold
TOP_K = 500
#: FairMOT's max-pool kernel (``_nms(heat, kernel=3)``)
NMS_KERNEL = 3
#: guards the L2 normalisation of an all-zero embedding
NORM_EPS = 1e-12


class DecodedFrame(NamedTuple):
    """Detections of one image, best first."""

    dets: np.ndarray  # (K, 6) float32 [x1, y1, x2, y2, score, cls] in network-input pixels
    embeddings: np.ndarray | None  # (K, D) float32 L2-normalised, or None


def max_pool_nms(heatmap: np.ndarray, kernel: int = NMS_KERNEL) -> np.ndarray:
    """``heatmap`` (C, h, w) with every value that is not the maximum of its ``kernel`` x
    ``kernel`` neighbourhood set to 0 (ties all stay, as with CenterNet's ``hmax == heat``)."""
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 3:
        raise ReidsortError(f"heatmap must be (C, h, w), got shape {heatmap.shape}")
    if kernel < 1 or kernel % 2 == 0:
        raise ReidsortError(f"max-pool kernel must be odd and >= 1, got {kernel}")
    pad = kernel // 2
    padded = np.pad(heatmap, ((0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    local_max = sliding_window_view(padded, (kernel, kernel), axis=(1, 2)).max(axis=(-2, -1))
    return np.where(heatmap == local_max, heatmap, 0).astype(heatmap.dtype, copy=False)


def decode(
    heatmap_prob: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    embedding: np.ndarray | None = None,
    *,
    stride: int = OUTPUT_STRIDE,
    top_k: int = TOP_K,
    score_threshold: float = 0.0,
    size_mode: str = "wh",
    letterbox: LetterboxTransform | None = None,
) -> DecodedFrame:
    """Detections from one image's maps: ``heatmap_prob`` (C, h, w) probabilities (sigmoid of
    the network's logits), ``size`` (2 | 4, h, w) and ``offset`` (2, h, w) in output-map units,
    ``embedding`` (D, h, w) raw or None.

    Keeps the ``top_k`` best 3x3 peaks with a score above ``score_threshold`` (FairMOT's tracker
    passes ``conf_thres`` 0.4). Boxes are in network-input pixels, or in original-image pixels
    when the frame's ``letterbox`` transform is given.
    """
    heatmap_prob = np.asarray(heatmap_prob, dtype=np.float32)
    size, offset = np.asarray(size, dtype=np.float32), np.asarray(offset, dtype=np.float32)
    _check_maps(heatmap_prob, size, offset, embedding, size_mode)
    height, width = heatmap_prob.shape[1:]
    if top_k < 1:
        raise ReidsortError(f"top_k must be >= 1, got {top_k}")
    peaks = max_pool_nms(heatmap_prob).reshape(-1)
    k = min(int(top_k), peaks.size)
    best = np.argpartition(-peaks, k - 1)[:k]
    # stable order: score descending, then flat index (deterministic on ties)
    best = best[np.lexsort((best, -peaks[best]))]
    best = best[peaks[best] > score_threshold]

    cls, cell = np.divmod(best, height * width)
    ys, xs = np.divmod(cell, width)
    cx, cy = xs + offset[0, ys, xs], ys + offset[1, ys, xs]
    box_size = size[:, ys, xs]
    if size_mode == "wh":
        half_w, half_h = box_size[0] / 2, box_size[1] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    else:
        boxes = np.stack([cx - box_size[0], cy - box_size[1], cx + box_size[2],
                          cy + box_size[3]], axis=1)
    boxes = boxes * stride
    if letterbox is not None:
        boxes = letterbox.to_image(boxes)
    dets = np.concatenate([boxes, peaks[best, None], cls[:, None]], axis=1).astype(np.float32)

    embeddings = None
    if embedding is not None:
        vectors = np.asarray(embedding, dtype=np.float32)[:, ys, xs].T
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        embeddings = (vectors / np.maximum(norms, NORM_EPS)).astype(np.float32)
    return DecodedFrame(dets=dets, embeddings=embeddings)


def decode_batch(
    heatmap_prob: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    embedding: np.ndarray | None = None,
    **kwargs,
) -> list[DecodedFrame]:
    """:func:`decode` for each image of (B, ...) maps (keyword arguments shared; a
    ``letterbox`` here must be a sequence of B transforms)."""
    transforms = kwargs.pop("letterbox", None)
    heatmap_prob = np.asarray(heatmap_prob)
    if heatmap_prob.ndim != 4:
        raise ReidsortError(f"decode_batch: heatmap must be (B, C, h, w), got {heatmap_prob.shape}")
    batch = heatmap_prob.shape[0]
    if transforms is not None and len(transforms) != batch:
        raise ReidsortError(f"decode_batch: {len(transforms)} letterbox transforms for {batch} "
                            "images")
    return [decode(heatmap_prob[b], size[b], offset[b],
                   None if embedding is None else embedding[b],
                   letterbox=None if transforms is None else transforms[b], **kwargs)
            for b in range(batch)]


def _check_maps(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray,
                embedding: np.ndarray | None, size_mode: str) -> None:
    if size_mode not in SIZE_MODES:
        raise ReidsortError(f"size_mode must be one of {', '.join(SIZE_MODES)}, got {size_mode!r}")
    if heatmap.ndim != 3:
        raise ReidsortError(f"heatmap must be (C, h, w), got shape {heatmap.shape}")
    spatial = heatmap.shape[1:]
    expected = {"size": (SIZE_MODES[size_mode], *spatial), "offset": (2, *spatial)}
    maps = {"size": size, "offset": offset}
    if embedding is not None:
        maps["embedding"] = np.asarray(embedding)
        expected["embedding"] = (maps["embedding"].shape[0], *spatial) \
            if maps["embedding"].ndim == 3 else ("D", *spatial)
    for name, array in maps.items():
        if array.shape != expected[name]:
            raise ReidsortError(f"{name} map must be {expected[name]} for a {heatmap.shape} "
                                f"heatmap (size_mode={size_mode!r}), got {array.shape}")


__all__ = ["NMS_KERNEL", "TOP_K", "DecodedFrame", "decode", "decode_batch", "max_pool_nms"]
