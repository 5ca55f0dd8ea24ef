"""torchvision ResNets as Re-ID backbones, the "strong baseline" way (Luo et al., CVPRW 2019).

Two changes from the ImageNet classifier, both from "Bag of Tricks and A Strong Baseline for Deep
Person Re-identification":

* ``last_stride=1``: the first block of ``layer4`` no longer halves the resolution, so a 256x128
  crop ends in a 16x8 map instead of 8x4. Finer spatial detail for the price of some compute and
  no extra parameters (the paper reports about +1 % rank-1 on Market-1501).
* the fc classifier is removed; ``forward`` returns the global-average-pooled ``layer4`` feature
  (512-d for resnet18/34, 2048-d for resnet50 / resnext50_32x4d), to be followed by a BNNeck;
  ``stripes=k`` pools k horizontal bands instead (k times the dimension).

The module keeps torchvision's attribute names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``), so a
torchvision ImageNet state dict saved on disk loads directly (its ``fc.*`` is dropped):
``weights`` is a local file; ``pretrained="imagenet"`` takes torchvision's ImageNet weights
through its weights API (downloaded once into the torch hub cache, see ``pretrained.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchvision import models as tv_models

#: The stride of ``layer4`` in torchvision's ResNets.
IMAGENET_LAST_STRIDE = 2
#: The strong baseline's stride (Luo et al. 2019, Sec. 3.5).
REID_LAST_STRIDE = 1


def _set_layer4_stride(resnet: tv_models.ResNet, stride: int) -> None:
    """Set the stride of the resolution-reducing convolutions in ``layer4``'s first block.

    BasicBlock strides ``conv1``, Bottleneck (torchvision "v1.5") strides ``conv2``; both also
    stride their 1x1 ``downsample`` projection. Changing every strided convolution of that block
    covers both without depending on the block type.
    """
    for module in resnet.layer4[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (stride, stride)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier: ``forward(images) -> features[N, D]``."""

    def __init__(self, resnet: tv_models.ResNet, last_stride: int = REID_LAST_STRIDE,
                 stripes: int = 1) -> None:
        super().__init__()
        if int(stripes) < 1:
            raise ValueError(f"stripes must be >= 1, got {stripes}")
        self.stripes = int(stripes)
        if last_stride not in (REID_LAST_STRIDE, IMAGENET_LAST_STRIDE):
            valid = f"{REID_LAST_STRIDE} or {IMAGENET_LAST_STRIDE}"
            raise ValueError(f"last_stride must be {valid}, got {last_stride}")
        _set_layer4_stride(resnet, last_stride)
        self.last_stride = last_stride
        self.feature_dim: int = resnet.fc.in_features * self.stripes
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        # stripes > 1: average-pool horizontal bands separately and concatenate them (PCB-style
        # part pooling, Sun et al. 2018), which keeps where on the body a colour or texture is
        self.pool = nn.AdaptiveAvgPool2d((self.stripes, 1))

    def feature_map(self, images: Tensor) -> Tensor:
        """The ``layer4`` map before pooling: ``[N, D, H/16, W/16]`` with last_stride 1."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, images: Tensor) -> Tensor:
        return torch.flatten(self.pool(self.feature_map(images)), 1)


def _build_resnet(
    constructor: Callable[..., tv_models.ResNet],
    weights: str | os.PathLike | None,
    last_stride: int,
    stripes: int = 1,
    pretrained: str | None = None,
) -> ResNetBackbone:
    # torchvision's random init; pretrained weights come through pretrained.py's checked fit
    model = ResNetBackbone(constructor(weights=None), last_stride=last_stride, stripes=stripes)
    if weights is not None:
        from reidsort.reid.backbones.weights import load_backbone_weights

        load_backbone_weights(model, weights)  # a local file replaces every tensor
    elif pretrained:
        from reidsort.reid.backbones.pretrained import load_torchvision_pretrained

        load_torchvision_pretrained(model, constructor.__name__, pretrained)
    return model


def resnet18(
    weights: str | os.PathLike | None = None, last_stride: int = REID_LAST_STRIDE,
    stripes: int = 1, pretrained: str | None = None,
) -> ResNetBackbone:
    """ResNet-18, 512-d feature."""
    return _build_resnet(tv_models.resnet18, weights, last_stride, stripes, pretrained)


def resnet34(
    weights: str | os.PathLike | None = None, last_stride: int = REID_LAST_STRIDE,
    stripes: int = 1, pretrained: str | None = None,
) -> ResNetBackbone:
    """ResNet-34, 512-d feature."""
    return _build_resnet(tv_models.resnet34, weights, last_stride, stripes, pretrained)


def resnet50(
    weights: str | os.PathLike | None = None, last_stride: int = REID_LAST_STRIDE,
    stripes: int = 1, pretrained: str | None = None,
) -> ResNetBackbone:
    """ResNet-50, 2048-d feature (the strong baseline's backbone)."""
    return _build_resnet(tv_models.resnet50, weights, last_stride, stripes, pretrained)


def resnext50_32x4d(
    weights: str | os.PathLike | None = None, last_stride: int = REID_LAST_STRIDE,
    stripes: int = 1, pretrained: str | None = None,
) -> ResNetBackbone:
    """ResNeXt-50 32x4d, 2048-d feature."""
    return _build_resnet(tv_models.resnext50_32x4d, weights, last_stride, stripes, pretrained)


#: IBN-Net's ImageNet ResNet-50-IBN-a (Pan et al., ECCV 2018; the file torch.hub's
#: XingangPan/IBN-Net entry loads); not part of torchvision
RESNET50_IBN_A_URL = ("https://github.com/XingangPan/IBN-Net/releases/download/v1.0/"
                      "resnet50_ibn_a-d9d0bb7b.pth")
#: fraction of a block's first norm's channels that are instance-normalised (IBN-a)
IBN_RATIO = 0.5


class IBN(nn.Module):
    """Instance-batch normalisation (IBN-Net "a"): the first ``ratio`` of the channels get
    InstanceNorm (affine), the rest BatchNorm. Instance statistics remove much of an image's
    colour and contrast style, which helps across cameras and datasets."""

    def __init__(self, channels: int, ratio: float = IBN_RATIO) -> None:
        super().__init__()
        self.half = int(channels * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)  # noqa: N815 - IBN-Net's names
        self.BN = nn.BatchNorm2d(channels - self.half)  # noqa: N815

    def forward(self, x: Tensor) -> Tensor:
        first, rest = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat((self.IN(first.contiguous()), self.BN(rest.contiguous())), dim=1)


def resnet50_ibn_a(
    weights: str | os.PathLike | None = None, last_stride: int = REID_LAST_STRIDE,
    stripes: int = 1, pretrained: str | None = None,
) -> ResNetBackbone:
    """ResNet-50-IBN-a, 2048-d feature: the first BatchNorm of every block of ``layer1`` to
    ``layer3`` is an :class:`IBN` (``layer4`` stays plain), as in IBN-Net and fast-reid. Its
    parameter names are IBN-Net's (``layer1.0.bn1.IN.weight``), so IBN-Net's ImageNet file
    loads; ``pretrained=imagenet`` downloads it into the torch hub cache."""
    resnet = tv_models.resnet50(weights=None)
    for layer in (resnet.layer1, resnet.layer2, resnet.layer3):
        for block in layer:
            block.bn1 = IBN(block.bn1.num_features)
    model = ResNetBackbone(resnet, last_stride=last_stride, stripes=stripes)
    if weights is not None:
        from reidsort.reid.backbones.weights import load_backbone_weights

        load_backbone_weights(model, weights)
    elif pretrained:
        from reidsort.reid.backbones.pretrained import IMAGENET, load_hub_file

        if str(pretrained).lower() != IMAGENET:
            raise ValueError(f"model.backbone.pretrained={pretrained!r}: resnet50_ibn_a knows "
                             "imagenet (IBN-Net's weights) or null")
        load_hub_file(model, RESNET50_IBN_A_URL, "resnet50_ibn_a IBN-Net ImageNet")
    return model
