"""Train and eval transforms (torchvision v2) on uint8 RGB tensors.

``eval_transform`` is THE preprocessing of the project: training's validation, the exporters and
the embedders use it (or its parameters: size, ImageNet mean/std, RGB order), so inference sees
exactly what training saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5
    pad: int = 10
    random_resized_crop: bool = False
    color_jitter: float = 0.0
    random_erasing: float = 0.5


def _normalize() -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def eval_transform(image_size: Sequence[int]) -> v2.Compose:
    """Resize to ``(height, width)`` (bilinear, antialiased) and ImageNet-normalise."""
    height, width = int(image_size[0]), int(image_size[1])
    return v2.Compose([v2.Resize((height, width), antialias=True), *_normalize()])


def train_transform(image_size: Sequence[int], augment: AugmentConfig) -> v2.Compose:
    """Strong-baseline augmentation: resize, flip, pad + random crop, random erasing."""
    height, width = int(image_size[0]), int(image_size[1])
    steps: list[v2.Transform] = []
    if augment.random_resized_crop:
        steps.append(v2.RandomResizedCrop((height, width), scale=(0.6, 1.0), ratio=(0.4, 0.6),
                                          antialias=True))
    else:
        steps.append(v2.Resize((height, width), antialias=True))
    if augment.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(augment.hflip))
    if augment.pad > 0 and not augment.random_resized_crop:
        steps += [v2.Pad(augment.pad), v2.RandomCrop((height, width))]
    if augment.color_jitter > 0:
        c = augment.color_jitter
        steps.append(v2.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(c, 0.5) / 4))
    steps += _normalize()
    if augment.random_erasing > 0:
        steps.append(v2.RandomErasing(p=augment.random_erasing, value=0))
    return v2.Compose(steps)
