"""Re-ID backbones: ``forward(images[N,3,H,W]) -> features[N, feature_dim]``.

Every backbone returns the pooled global feature (before any BNNeck), exposes ``feature_dim`` and
a ``feature_map(images)`` accessor for the map before pooling, and takes ``weights`` (a local file,
every tensor checked) and ``pretrained`` (``imagenet``: torchvision's ImageNet weights through its
weights API, cached by torch.hub; only null for networks torchvision does not have).

Build by name with :func:`build_backbone`, or call a builder directly (Hydra:
``_target_: reidsort.reid.backbones.osnet_x1_0``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from torch import nn

from reidsort.reid.backbones.deepsort_cnn import (
    DEEPSORT_INPUT_HW,
    DeepSortVariant,
    WojkeCNN,
    ZQPeiCNN,
    deepsort_cnn,
)
from reidsort.reid.backbones.osnet import (
    OSNet,
    osnet_x0_5,
    osnet_x0_25,
    osnet_x0_75,
    osnet_x1_0,
)
from reidsort.reid.backbones.resnet import (
    ResNetBackbone,
    resnet18,
    resnet34,
    resnet50,
    resnet50_ibn_a,
    resnext50_32x4d,
)
from reidsort.reid.backbones.torchvision_nets import (
    TorchvisionBackbone,
    convnext_tiny,
    efficientnet_b0,
    mobilenet_v2,
    mobilenet_v3_large,
)
from reidsort.reid.backbones.weights import load_backbone_weights

BACKBONE_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "osnet_x1_0": osnet_x1_0,
    "osnet_x0_75": osnet_x0_75,
    "osnet_x0_5": osnet_x0_5,
    "osnet_x0_25": osnet_x0_25,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnext50_32x4d": resnext50_32x4d,
    "resnet50_ibn_a": resnet50_ibn_a,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "efficientnet_b0": efficientnet_b0,
    "convnext_tiny": convnext_tiny,
    "deepsort_cnn": deepsort_cnn,
}
#: The names :func:`build_backbone` accepts.
BACKBONE_NAMES: tuple[str, ...] = tuple(BACKBONE_BUILDERS)


def build_backbone(name: str, weights: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """Build the backbone ``name`` (see ``BACKBONE_NAMES``) with builder-specific ``kwargs``.

    ``kwargs``: ``ibn`` for OSNets, ``last_stride`` for ResNets, ``variant`` for deepsort_cnn.
    """
    builder = BACKBONE_BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONE_NAMES)}")
    return builder(weights=weights, **kwargs)


__all__ = [
    "BACKBONE_BUILDERS",
    "BACKBONE_NAMES",
    "DEEPSORT_INPUT_HW",
    "DeepSortVariant",
    "OSNet",
    "ResNetBackbone",
    "TorchvisionBackbone",
    "WojkeCNN",
    "ZQPeiCNN",
    "build_backbone",
    "convnext_tiny",
    "efficientnet_b0",
    "deepsort_cnn",
    "load_backbone_weights",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "osnet_x0_25",
    "osnet_x0_5",
    "osnet_x0_75",
    "osnet_x1_0",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet50_ibn_a",
    "resnext50_32x4d",
]
