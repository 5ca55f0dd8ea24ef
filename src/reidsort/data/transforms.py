"""Train and eval transforms on uint8 RGB tensors.

``eval_transform`` is the tensor front-end of THE preprocessing of the project,
:func:`reidsort.data.preprocess.preprocess_crops` (NumPy only): training's validation, the
exporters' verification and the embedders of the tracker all run that one function, so inference
sees exactly what training saw. ``train_transform`` resizes with torchvision's antialiased
bilinear, the same filter (tested within one grey level), before its augmentations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec, preprocess_image


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5
    pad: int = 10
    random_resized_crop: bool = False
    color_jitter: float = 0.0
    random_erasing: float = 0.5


def _normalize() -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


class EvalTransform:
    """uint8 RGB ``(3, H, W)`` tensor -> float32 ``(3, height, width)`` model input.

    A thin wrapper: the numbers come from :func:`reidsort.data.preprocess.preprocess_image`.
    """

    def __init__(self, image_size: Sequence[int]) -> None:
        self.spec = PreprocessSpec(size_hw=(int(image_size[0]), int(image_size[1])))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype != torch.uint8 or image.ndim != 3:
            raise ValueError(f"expected a uint8 (3, H, W) image tensor, got {image.dtype} "
                             f"{tuple(image.shape)}")
        array = image.permute(1, 2, 0).contiguous().numpy()
        return torch.from_numpy(preprocess_image(array, self.spec, input_order="RGB"))

    def __repr__(self) -> str:
        return f"EvalTransform(size_hw={self.spec.size_hw})"


def eval_transform(image_size: Sequence[int]) -> EvalTransform:
    """Resize to ``(height, width)`` (bilinear, antialiased) and ImageNet-normalise."""
    return EvalTransform(image_size)


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
