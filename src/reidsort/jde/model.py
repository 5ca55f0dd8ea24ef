"""JDENet: FairMOT's one-shot detector + embedder (backbone, upsampling neck, four heads).

Input: letterboxed RGB (B, 3, H, W), H and W multiples of 32, scaled to [0, 1] and normalised
with the ImageNet mean and std (FairMOT only divides by 255; the ImageNet backbones here were
trained on normalised input). Output: :class:`JDEOutput`, maps at stride 4 (H/4, W/4):

* ``heatmap`` (B, num_classes): centre LOGITS (sigmoid them to decode);
* ``size`` (B, 2 | 4): box width/height or centre-to-side distances, output-map units;
* ``offset`` (B, 2): sub-cell centre offset;
* ``embedding`` (B, embedding_dim): raw identity embedding (L2-normalise it to compare).

Backbones (no deformable convolutions, so every device and ONNX runtime can run them):
``resnet18`` / ``resnet34`` (torchvision, through the Re-ID builders) and ``mobilenet_v2``
(torchvision; the shared ImageNet file ``models/mobilenetv2_imagenet.pt`` loads as
``weights=<file>``) with an upsampling neck: from stride 32 to 4, each step upsamples
bilinearly and adds a projected skip connection of the trunk, then a 3x3 conv. ``dla34``: the
DLA-34 trunk with FairMOT's DLA-up aggregation (see ``dla.py``). ``weights`` and ``pretrained``
apply to the backbone (the neck and heads start random); whole-model checkpoints are loaded by
the training module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from reidsort.jde.dla import FIRST_LEVEL, DLAUp, dla34
from reidsort.jde.targets import SIZE_MODES
from reidsort.reid.backbones.resnet import IMAGENET_LAST_STRIDE, ResNetBackbone, resnet18, resnet34
from reidsort.reid.backbones.torchvision_nets import mobilenet_v2
from reidsort.utils.errors import ReidsortError

#: CenterNet / FairMOT: initial heatmap bias -log((1 - 0.1) / 0.1), a prior probability of ~0.1
#: per cell, so the focal loss does not start swamped by the many negatives
HEATMAP_BIAS = -2.19
#: FairMOT ``opt.head_conv`` and ``opt.reid_dim``
HEAD_CHANNELS = 256
EMBEDDING_DIM = 128
#: the neck's widths at strides 16, 8 and 4 (the last one is FairMOT's DLA-34 output width)
NECK_CHANNELS = (256, 128, 64)
#: trunk channels at strides 4, 8, 16 and 32
RESNET_BASIC_CHANNELS = (64, 128, 256, 512)
#: torchvision MobileNetV2 ``features``: the blocks after which the map has stride 4, 8, 16, 32
#: (the last one is the 1x1 conv to 1280, kept so every tensor of the ImageNet file is used)
MOBILENET_V2_TAPS = (3, 6, 13, 18)
MOBILENET_V2_CHANNELS = (24, 32, 96, 1280)


class JDEOutput(NamedTuple):
    heatmap: Tensor
    size: Tensor
    offset: Tensor
    embedding: Tensor


class ResNetTrunk(nn.Module):
    """A torchvision ResNet-18/34 trunk (ImageNet strides): ``images -> [c4, c8, c16, c32]``."""

    channels = RESNET_BASIC_CHANNELS

    def __init__(self, body: ResNetBackbone) -> None:
        super().__init__()
        self.body = body

    def forward(self, images: Tensor) -> list[Tensor]:
        body = self.body
        x = body.maxpool(body.relu(body.bn1(body.conv1(images))))
        c4 = body.layer1(x)
        c8 = body.layer2(c4)
        c16 = body.layer3(c8)
        return [c4, c8, c16, body.layer4(c16)]


class MobileNetV2Trunk(nn.Module):
    """torchvision's MobileNetV2 ``features``, tapped at strides 4, 8, 16 and 32."""

    channels = MOBILENET_V2_CHANNELS

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features

    def forward(self, images: Tensor) -> list[Tensor]:
        outputs, x = [], images
        for i, block in enumerate(self.features):
            x = block(x)
            if i in MOBILENET_V2_TAPS:
                outputs.append(x)
        return outputs


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, 1, kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UpFuse(nn.Module):
    """One neck step: reduce the deep map, upsample it to the skip's size, add the projected
    skip and mix with a 3x3 conv."""

    def __init__(self, deep_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(deep_channels, out_channels)  # at low resolution: cheap
        self.lateral = conv_bn_relu(skip_channels, out_channels, 1)
        self.fuse = conv_bn_relu(out_channels, out_channels)

    def forward(self, deep: Tensor, skip: Tensor) -> Tensor:
        up = F.interpolate(self.reduce(deep), size=skip.shape[-2:], mode="bilinear",
                           align_corners=False)
        return self.fuse(up + self.lateral(skip))


class UpsamplingNeck(nn.Module):
    """Strides 4..32 in (``channels``), ``NECK_CHANNELS[-1]`` channels at stride 4 out."""

    def __init__(self, channels: tuple[int, int, int, int],
                 widths: tuple[int, int, int] = NECK_CHANNELS) -> None:
        super().__init__()
        deep = [channels[3], *widths[:-1]]
        skips = channels[2::-1]
        self.steps = nn.ModuleList(UpFuse(d, s, w) for d, s, w in zip(deep, skips, widths))
        self.out_channels = widths[-1]

    def forward(self, features: list[Tensor]) -> Tensor:
        x = features[3]
        for step, skip in zip(self.steps, features[2::-1]):
            x = step(x, skip)
        return x


def head(in_channels: int, hidden: int, out_channels: int, bias: float | None) -> nn.Sequential:
    """FairMOT's head: 3x3 conv + ReLU + 1x1 conv. ``bias``: the last conv's bias (the heatmap's
    prior); None: every bias 0 (FairMOT ``fill_fc_weights``)."""
    layers = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
                           nn.Conv2d(hidden, out_channels, 1))
    if bias is None:
        nn.init.zeros_(layers[0].bias)
    nn.init.constant_(layers[2].bias, 0.0 if bias is None else bias)
    return layers


def _resnet(builder: Callable[..., ResNetBackbone]) -> Callable[..., tuple[nn.Module, nn.Module]]:
    def build(weights, pretrained):
        # ImageNet strides (the Re-ID default is last stride 1): the neck expects stride 32
        trunk = ResNetTrunk(builder(weights=weights, pretrained=pretrained,
                                    last_stride=IMAGENET_LAST_STRIDE))
        return trunk, UpsamplingNeck(trunk.channels)
    return build


def _mobilenet_v2(weights, pretrained) -> tuple[nn.Module, nn.Module]:
    # the Re-ID builder reads torchvision's and the tonylins layout (the shared ImageNet file)
    body = mobilenet_v2(weights=weights, pretrained=pretrained, last_stride=IMAGENET_LAST_STRIDE)
    trunk = MobileNetV2Trunk(body.features)
    return trunk, UpsamplingNeck(trunk.channels)


class DLATrunk(nn.Module):
    """DLA-34's levels 2..5 (strides 4..32)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.channels = body.channels[FIRST_LEVEL:]

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.body(images)[FIRST_LEVEL:]


def _dla34(weights, pretrained) -> tuple[nn.Module, nn.Module]:
    trunk = DLATrunk(dla34(weights=weights, pretrained=pretrained))
    return trunk, DLAUp(trunk.channels)


#: backbone name -> builder(weights, pretrained) -> (trunk, neck)
BACKBONES: dict[str, Callable[..., tuple[nn.Module, nn.Module]]] = {
    "resnet18": _resnet(resnet18),
    "resnet34": _resnet(resnet34),
    "dla34": _dla34,
    "mobilenet_v2": _mobilenet_v2,
}


class JDENet(nn.Module):
    """Backbone + neck + heatmap / size / offset / embedding heads at stride 4."""

    def __init__(self, backbone: str = "resnet18", num_classes: int = 1,
                 embedding_dim: int = EMBEDDING_DIM, head_channels: int = HEAD_CHANNELS,
                 size_mode: str = "wh", pretrained: str | None = None,
                 weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ReidsortError(f"unknown JDE backbone {backbone!r}; valid: "
                                f"{', '.join(BACKBONES)}")
        if size_mode not in SIZE_MODES:
            raise ReidsortError(f"size_mode must be one of {', '.join(SIZE_MODES)}, got "
                                f"{size_mode!r}")
        for name, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim),
                            ("head_channels", head_channels)):
            if int(value) < 1:
                raise ReidsortError(f"JDENet: {name} must be >= 1, got {value}")
        self.backbone_name = backbone
        self.num_classes = int(num_classes)
        self.embedding_dim = int(embedding_dim)
        self.size_mode = size_mode
        self.backbone, self.neck = BACKBONES[backbone](weights, pretrained)
        width, hidden = self.neck.out_channels, int(head_channels)
        self.heatmap = head(width, hidden, self.num_classes, HEATMAP_BIAS)
        self.size = head(width, hidden, SIZE_MODES[size_mode], None)
        self.offset = head(width, hidden, 2, None)
        self.embedding = head(width, hidden, self.embedding_dim, None)

    def forward(self, images: Tensor) -> JDEOutput:
        x = self.neck(self.backbone(images))
        return JDEOutput(self.heatmap(x), self.size(x), self.offset(x), self.embedding(x))


__all__ = ["BACKBONES", "EMBEDDING_DIM", "HEAD_CHANNELS", "HEATMAP_BIAS", "JDENet", "JDEOutput",
           "UpsamplingNeck"]
