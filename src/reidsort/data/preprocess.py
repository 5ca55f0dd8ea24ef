"""THE preprocessing of the project: person crop -> model input. NumPy, SciPy, OpenCV; no torch.

Training's eval transform (:func:`reidsort.data.transforms.eval_transform`), the exporters'
verification and every embedder of the tracker call :func:`preprocess_crops`, so a deployed model
sees exactly the numbers validation saw, and the torch-free ONNX embedder needs no torch for it.

Steps, per crop:

1. resize to the model's (height, width) with antialiased bilinear (triangle-filter) resampling:
   the kernel torchvision's ``Resize(antialias=True)`` (and PIL's ``BILINEAR``) use, so training's
   ``train_transform`` and this function filter the same way (within one grey level: they differ
   only in rounding, tested);
2. round to uint8 levels (as torchvision does for uint8 images), reorder channels to the model's
   order (RGB for every reidsort model; OpenCV frames are BGR);
3. ``(pixel / 255 - mean) / std`` in float32 (ImageNet statistics unless the model says otherwise),
   looked up per uint8 level from a 256-entry table per channel (bit-identical, ~5x cheaper);
4. write them as a contiguous float32 ``(N, 3, H, W)`` batch.

The resampling is separable: one sparse (output x input) weight matrix per axis, cached per size
pair, applied as two sparse-dense products (within about 2x of torchvision's C++ kernel). About
0.4 ms per typical pedestrian crop (185x55 -> 256x128) on this project's 2-core CPU, 3.5x less
than the first version (benchmarks/RESULTS.md, tracking application speed).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: uint8 pixels are divided by this before mean/std normalisation.
PIXEL_SCALE = 255.0
#: Channel orders a model or an image can have.
CHANNEL_ORDERS: tuple[str, ...] = ("RGB", "BGR")
#: Resampling tables kept (one per (input size, output size) pair); crops come in many sizes.
_WEIGHT_CACHE_SIZE = 2048


@dataclass(frozen=True)
class PreprocessSpec:
    """What a model expects: input (height, width), normalisation and channel order."""

    size_hw: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    # pixels are divided by this first (255: uint8 levels -> [0, 1])
    pixel_scale: float = PIXEL_SCALE

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.size_hw)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"input size must be a positive (height, width), got {self.size_hw}")
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values each, got {self.mean} and {self.std}")
        if not all(np.isfinite(std)) or min(std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        order = str(self.channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise ValueError(f"channel order must be one of {CHANNEL_ORDERS}, got {order!r}")
        object.__setattr__(self, "size_hw", size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "channel_order", order)
        if not float(self.pixel_scale) > 0:
            raise ValueError(f"pixel_scale must be positive, got {self.pixel_scale}")
        object.__setattr__(self, "pixel_scale", float(self.pixel_scale))


@functools.lru_cache(maxsize=_WEIGHT_CACHE_SIZE)
def _resample_matrix(in_size: int, out_size: int) -> scipy.sparse.csr_matrix:
    """(out_size, in_size) triangle-filter weights; rows sum to 1.

    Output pixel ``i`` is centred at ``(i + 0.5) * scale`` in input coordinates. When shrinking,
    the filter is stretched by ``scale`` (that is the antialiasing); when enlarging it is plain
    bilinear. Taps outside the image are dropped and the rest renormalised (no edge padding),
    which is what torchvision/PIL do.
    """
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    # int() truncation of the reference implementations: first tap, one past the last tap
    first = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    stop = np.minimum((centres + support + 0.5).astype(np.int64), in_size)
    taps = int((stop - first).max())
    columns = first[:, None] + np.arange(taps)[None, :]
    weights = np.clip(1.0 - np.abs((columns - centres[:, None] + 0.5) / support), 0.0, None)
    weights[columns >= stop[:, None]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(out_size), taps)
    matrix = scipy.sparse.csr_matrix(
        (weights.ravel().astype(np.float32), (rows, np.minimum(columns, in_size - 1).ravel())),
        shape=(out_size, in_size),
    )
    matrix.eliminate_zeros()
    return matrix


@functools.lru_cache(maxsize=_WEIGHT_CACHE_SIZE)
def _interleaved_resample_matrix(in_size: int, out_size: int,
                                 channels: int) -> scipy.sparse.csr_matrix:
    """The width matrix for pixels stored as interleaved channels (row = W * C values)."""
    identity = scipy.sparse.identity(channels, dtype=np.float32, format="csr")
    return scipy.sparse.kron(_resample_matrix(in_size, out_size), identity, format="csr")


def resize_antialiased(image: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size_hw`` (antialiased bilinear); returns uint8.

    Horizontal pass first, rounded to uint8, then the vertical pass: the order and the rounding
    of torchvision's uint8 kernel, so results match it exactly or within one grey level.
    """
    _check_image(image, "image")
    out_h, out_w = int(size_hw[0]), int(size_hw[1])
    in_h, in_w, channels = image.shape
    if (out_h, out_w) == (in_h, in_w):
        return image.copy()
    pixels = image.reshape(in_h, in_w * channels)
    if out_w != in_w:
        # the sparse product wants the summed axis first and C-contiguous: transpose while
        # converting to float (one copy), keep the result transposed until the next pass
        columns = np.empty((in_w * channels, in_h), dtype=np.float32)
        columns[...] = pixels.T
        pixels = _to_uint8(_interleaved_resample_matrix(in_w, out_w, channels) @ columns).T
    if out_h != in_h:
        rows = np.empty(pixels.shape, dtype=np.float32)
        rows[...] = pixels
        pixels = _to_uint8(_resample_matrix(in_h, out_h) @ rows)
    return np.ascontiguousarray(pixels).reshape(out_h, out_w, channels)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Round a fresh float array of resampled pixels to uint8, half up (in place, then cast).

    Round half up like torchvision's fixed-point kernel (np.rint would round ties to even, and
    exact ties are common: 2x upscaling gives (3a + b) / 4). The weights are non-negative and sum
    to 1, so values lie in [0, 255 + float error]: truncating ``v + 0.5`` is floor(v + 0.5) and
    needs no clipping.
    """
    values += 0.5
    return values.astype(np.uint8)


@functools.lru_cache(maxsize=64)
def _normalisation_tables(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per model channel, a 256-entry float32 table: the normalised value of each uint8 level.

    Computed with the same float32 operations as ``(level / scale - mean) / std``, so looking
    values up gives bit-identical results at a fraction of the cost of computing them per pixel.
    """
    levels = np.arange(256, dtype=np.float32)
    return tuple(
        np.ascontiguousarray((levels / np.float32(spec.pixel_scale) - np.float32(mean))
                             / np.float32(std))
        for mean, std in zip(spec.mean, spec.std)
    )


def preprocess_crops(
    crops: Sequence[np.ndarray], spec: PreprocessSpec, input_order: str = "BGR"
) -> np.ndarray:
    """(N, 3, H, W) float32 model input from HxWx3 uint8 crops of any sizes.

    ``input_order`` is the crops' channel order: "BGR" for OpenCV frames, "RGB" for decoded
    dataset images (``read_image_rgb``, training). An empty sequence gives a (0, 3, H, W) array.
    """
    order = str(input_order).upper()
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"input_order must be one of {CHANNEL_ORDERS}, got {input_order!r}")
    height, width = spec.size_hw
    if not len(crops):
        return np.empty((0, 3, height, width), dtype=np.float32)
    batch = np.empty((len(crops), height, width, 3), dtype=np.uint8)
    for index, crop in enumerate(crops):
        _check_image(crop, f"crop {index}")
        batch[index] = resize_antialiased(crop, spec.size_hw)
    # planar uint8 first (a cheap 1-byte transpose), then one table lookup per channel straight
    # into the float32 NCHW result; input channel 2 - c feeds model channel c when orders differ
    planes = np.ascontiguousarray(batch.transpose(0, 3, 1, 2)).reshape(len(crops), 3, -1)
    normalised = np.empty(planes.shape, dtype=np.float32)
    for channel, table in enumerate(_normalisation_tables(spec)):
        source = channel if order == spec.channel_order else 2 - channel
        normalised[:, channel] = cv2.LUT(planes[:, source], table)
    return normalised.reshape(len(crops), 3, height, width)


def preprocess_image(
    image: np.ndarray, spec: PreprocessSpec, input_order: str = "RGB"
) -> np.ndarray:
    """(3, H, W) float32 model input from one HxWx3 uint8 image (see :func:`preprocess_crops`)."""
    return preprocess_crops([image], spec, input_order=input_order)[0]


def _check_image(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 \
            or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name} must be an HxWx3 uint8 array, got shape {shape} dtype {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
