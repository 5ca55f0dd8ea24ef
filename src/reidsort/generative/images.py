"""GAN samples as images: seeded sampling in batches, uint8 conversion, grids and files.

Images inside the GAN code are float ``(B, 3, H, W)`` tensors in [-1, 1]; on disk they are
uint8 RGB files ``H`` pixels tall and ``W`` wide (a person stands upright: PIL's ``image.size``
is ``(W, H)``). Files are written to a temporary name and renamed, so a folder never holds a
half-written image.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from reidsort.utils.io import atomic_write_bytes

#: [-1, 1] -> [0, 255]
HALF_PIXEL_RANGE = 127.5
#: JPEG quality of generated images (PIL's scale, 1-95 useful)
DEFAULT_JPEG_QUALITY = 95
#: pixels between the tiles of a grid, and their value in [0, 1] (black)
GRID_PADDING = 2
GRID_PAD_VALUE = 0.0


class ImageFormat(str, Enum):
    PNG = "png"
    JPEG = "jpg"

    @classmethod
    def parse(cls, value: str) -> ImageFormat:
        text = str(value).lower().lstrip(".")
        if text == "jpeg":
            text = cls.JPEG.value
        for member in cls:
            if member.value == text:
                return member
        raise ValueError(f"task.format={value!r}: expected png or jpg")


def to_uint8(images: Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, H, W, 3)`` uint8 RGB (rounded, clipped)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
    scaled = ((images.detach().float().cpu() + 1.0) * HALF_PIXEL_RANGE).round().clamp(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def encode_image(array: np.ndarray, image_format: ImageFormat,
                 jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """One ``(H, W, 3)`` uint8 image as PNG or JPEG bytes (deterministic for the same array)."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode="RGB")
    if image_format is ImageFormat.JPEG:
        image.save(buffer, format="JPEG", quality=int(jpeg_quality))
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_image(path: str | Path, array: np.ndarray, image_format: ImageFormat,
                jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> Path:
    """Write one image atomically (temporary file + rename)."""
    return atomic_write_bytes(path, encode_image(array, image_format, jpeg_quality))


def grid_image(images: Tensor, columns: int, padding: int = GRID_PADDING) -> np.ndarray:
    """Tiles of ``(n, 3, H, W)`` images in rows of ``columns``: one ``(rows * (H + p) + p,
    columns * (W + p) + p, 3)`` uint8 array, each tile upright (H tall, W wide)."""
    from torchvision.utils import make_grid

    unit = (images.detach().float().cpu().clamp(-1, 1) + 1.0) / 2.0
    grid = make_grid(unit, nrow=int(columns), padding=int(padding), pad_value=GRID_PAD_VALUE)
    return (grid * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def batch_seed(seed: int, index: int) -> int:
    """The seed of batch ``index`` of a run seeded with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


@dataclass(frozen=True)
class SampleBatch:
    start: int
    images: Tensor
    labels: Tensor | None


def conditioning(module: torch.nn.Module) -> int:
    """The number of identities ``module`` conditions on (0: unconditional)."""
    hparams = getattr(module, "hparams", {}) or {}
    return int(hparams.get("num_classes", 0) or 0) if hparams.get("conditional") else 0


def sample_in_batches(module: torch.nn.Module, count: int, batch_size: int, seed: int,
                      use_ema: bool = True, labels: Sequence[int] | None = None,
                      offset: int = 0) -> Iterator[SampleBatch]:
    """``count`` samples of a GAN module, ``batch_size`` at a time, batch ``i`` seeded with
    :func:`batch_seed` ``(seed, i)`` (same seed, same images). A conditional module gets
    ``labels`` (cycled when shorter) or every identity in turn; ``offset`` shifts where the
    cycle starts (e.g. one shard per rank)."""
    if int(count) < 0 or int(batch_size) < 1:
        raise ValueError(f"count={count}, batch_size={batch_size}: expected >= 0 and >= 1")
    classes = conditioning(module)
    given = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
    if given is not None and (given.numel() == 0 or (classes and (given.min() < 0
                                                                     or given.max() >= classes))):
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {given.tolist()[:8]}")
    for index, start in enumerate(range(0, int(count), int(batch_size))):
        size = min(int(batch_size), int(count) - start)
        batch_labels = None
        if classes:
            positions = torch.arange(offset + start, offset + start + size)
            batch_labels = (given[positions % given.numel()] if given is not None
                            else positions % classes)
        images = module.sample(size, labels=batch_labels, seed=batch_seed(seed, index),
                               use_ema=use_ema)
        yield SampleBatch(start, images, batch_labels)


__all__ = ["ImageFormat", "SampleBatch", "batch_seed", "conditioning",
           "encode_image", "grid_image", "sample_in_batches", "to_uint8", "write_image"]
