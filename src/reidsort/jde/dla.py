"""DLA-34 (Yu et al., "Deep Layer Aggregation", CVPR 2018) and FairMOT's DLA-up neck, without
deformable convolutions.

The trunk follows ucbdrive/dla as FairMOT uses it (src/lib/models/networks/pose_dla_dcn.py):
``levels = [1, 1, 1, 2, 2, 1]``, ``channels = [16, 32, 64, 128, 256, 512]``, basic residual
blocks aggregated by trees. Its modules keep the reference names (``base_layer``, ``level0`` ...
``level5``, ``tree1`` / ``tree2`` / ``root`` / ``project``), so the ImageNet file of the DLA
authors fits it tensor for tensor (``pretrained=imagenet``; its ``fc`` and two projections that
the reference builds but never uses are dropped).

The neck is FairMOT's ``DLAUp`` + ``IDAUp`` (iterative deep aggregation from stride 32 up to
stride 4), with a plain 3x3 conv + BN + ReLU where FairMOT has a DCNv2 ``DeformConv``, so it runs
and exports everywhere; upsampling keeps FairMOT's depthwise transposed convolutions initialised
to bilinear interpolation (``fill_up_weights``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

#: DLA-34 (pose_dla_dcn.py ``dla34``): blocks per level and channels per level
DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)
#: the DLA authors' ImageNet DLA-34 (the file FairMOT's ``dla34(pretrained=True)`` loads)
DLA34_IMAGENET_URL = "http://dl.yf.io/dla/models/imagenet/dla34-ba72cf86.pth"
#: the reference's projections in DLA-34's two-level trees, built but never used in forward
DLA34_UNUSED_PROJECTIONS = ("level3.project.", "level4.project.")
#: pose_dla_dcn.py ``BN_MOMENTUM``
BN_MOMENTUM = 0.1
#: FairMOT's ``down_ratio`` 4 = level 2 is the first level the neck uses; level 5 the last
FIRST_LEVEL = 2


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual that the tree may supply (its projection)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        residual = x if residual is None else residual
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + residual)


class Root(nn.Module):
    """Aggregation node: 1x1 conv + BN + ReLU over the concatenated children."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *children: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(torch.cat(children, 1))))


class Tree(nn.Module):
    """A DLA tree of ``levels`` levels; ``level_root`` also feeds its (downsampled) input to the
    root, as the reference does from level 3 on."""

    def __init__(self, levels: int, in_channels: int, out_channels: int, stride: int = 1,
                 level_root: bool = False, root_dim: int = 0) -> None:
        super().__init__()
        root_dim = (root_dim or 2 * out_channels) + (in_channels if level_root else 0)
        if levels == 1:
            self.tree1 = BasicBlock(in_channels, out_channels, stride)
            self.tree2 = BasicBlock(out_channels, out_channels, 1)
            self.root = Root(root_dim, out_channels)
        else:
            self.tree1 = Tree(levels - 1, in_channels, out_channels, stride)
            self.tree2 = Tree(levels - 1, out_channels, out_channels,
                              root_dim=root_dim + out_channels)
        self.levels = levels
        self.level_root = level_root
        self.downsample = nn.MaxPool2d(stride, stride) if stride > 1 else None
        # only the block pair uses a projected residual; the reference also builds one in deeper
        # trees whose output is discarded (as timm does, it is left out: unused parameters
        # break DDP), and its tensors in the reference files are skipped on loading
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        ) if levels == 1 and in_channels != out_channels else None

    def forward(self, x: Tensor, children: list[Tensor] | None = None) -> Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            residual = self.project(bottom) if self.project is not None else bottom
            x1 = self.tree1(x, residual)
            return self.root(self.tree2(x1), x1, *children)
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLA(nn.Module):
    """The DLA trunk: ``forward(images) -> [level0 ... level5]`` at strides 1, 2, 4, 8, 16, 32."""

    def __init__(self, levels: tuple[int, ...] = DLA34_LEVELS,
                 channels: tuple[int, ...] = DLA34_CHANNELS) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.base_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], 7, 1, 3, bias=False),
            nn.BatchNorm2d(channels[0], momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
        self.level0 = _conv_level(channels[0], channels[0], levels[0], 1)
        self.level1 = _conv_level(channels[0], channels[1], levels[1], 2)
        self.level2 = Tree(levels[2], channels[1], channels[2], 2, level_root=False)
        self.level3 = Tree(levels[3], channels[2], channels[3], 2, level_root=True)
        self.level4 = Tree(levels[4], channels[3], channels[4], 2, level_root=True)
        self.level5 = Tree(levels[5], channels[4], channels[5], 2, level_root=True)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.base_layer(images)
        outputs = []
        for level in (self.level0, self.level1, self.level2, self.level3, self.level4,
                      self.level5):
            x = level(x)
            outputs.append(x)
        return outputs


def _conv_level(in_channels: int, out_channels: int, convs: int, stride: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    for i in range(convs):
        modules += [nn.Conv2d(in_channels, out_channels, 3, stride if i == 0 else 1, 1,
                              bias=False),
                    nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*modules)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """FairMOT's ``DeformConv`` (DCN 3x3 + BN + ReLU) with a plain 3x3 convolution."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A depthwise transposed convolution that upsamples by ``factor``, initialised to bilinear
    interpolation and learnable (pose_dla_dcn.py ``fill_up_weights``)."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2,
                            groups=channels, bias=False)
    centre = (2 * factor - 1 - factor % 2) / 2
    ramp = 1 - (torch.arange(2 * factor, dtype=torch.float32) - centre).abs() / factor
    with torch.no_grad():
        up.weight.copy_((ramp[:, None] * ramp[None, :]).expand_as(up.weight))
    return up


class IDAUp(nn.Module):
    """Iterative deep aggregation: ``layers[i]`` (i > 0) is projected to ``out_channels``,
    upsampled by ``factors[i]`` to the resolution of ``layers[0]`` and fused with its
    predecessor; returns the list with the fused maps."""

    def __init__(self, out_channels: int, channels: tuple[int, ...],
                 factors: tuple[int, ...]) -> None:
        super().__init__()
        self.proj = nn.ModuleList(conv_bn_relu(c, out_channels) for c in channels[1:])
        self.up = nn.ModuleList(bilinear_upsampler(out_channels, int(f)) for f in factors[1:])
        self.node = nn.ModuleList(conv_bn_relu(out_channels, out_channels) for _ in channels[1:])

    def forward(self, layers: list[Tensor]) -> list[Tensor]:
        layers = list(layers)
        for i, (proj, up, node) in enumerate(zip(self.proj, self.up, self.node), start=1):
            layers[i] = node(up(proj(layers[i])) + layers[i - 1])
        return layers


class DLAUp(nn.Module):
    """FairMOT's ``DLAUp`` followed by its final ``IDAUp``: strides 4..32 in, ``channels[0]``
    channels at stride 4 out."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        channels = tuple(channels)
        scales = [2 ** i for i in range(len(channels))]
        in_channels = list(channels)
        # ida[k] aggregates the deepest k + 2 maps, at the resolution of map -(k + 2)
        stages = []
        for k in range(len(channels) - 1):
            j = len(channels) - k - 2
            stages.append(IDAUp(channels[j], tuple(in_channels[j:]),
                                tuple(s // scales[j] for s in scales[j:])))
            scales[j + 1:] = [scales[j]] * (len(channels) - j - 1)
            in_channels[j + 1:] = [channels[j]] * (len(channels) - j - 1)
        self.ida = nn.ModuleList(stages)
        last = len(channels) - 1  # FairMOT's last_level 5: the stride-32 map is not re-fused
        self.ida_final = IDAUp(channels[0], channels[:last], tuple(2 ** i for i in range(last)))
        self.out_channels = channels[0]

    def forward(self, features: list[Tensor]) -> Tensor:
        layers = list(features)
        pyramid = [layers[-1]]
        for k, ida in enumerate(self.ida):
            start = len(layers) - k - 2
            layers[start:] = ida(layers[start:])
            pyramid.insert(0, layers[-1])
        # pyramid: the finest aggregate at each stride (4, 8, 16, 32); fuse all but the last
        return self.ida_final(pyramid[:-1])[-1]


def drop_unused_projections(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` without the reference's never-used projections of DLA-34's deeper trees (any
    key prefix, e.g. ``model.backbone.``, kept for the rest)."""
    return {key: value for key, value in state.items()
            if not any(key.startswith(name) or f".{name}" in key
                       for name in DLA34_UNUSED_PROJECTIONS)}


def dla34(weights: str | os.PathLike | None = None, pretrained: str | None = None) -> DLA:
    """The DLA-34 trunk; ``weights``: a local file, ``pretrained="imagenet"``: the DLA authors'
    ImageNet file through the torch hub cache (every tensor checked)."""
    model = DLA()
    if weights is not None:
        from reidsort.reid.backbones.weights import (
            extract_state_dict,
            fit_state_dict,
            read_checkpoint,
        )

        path = Path(weights)
        state = drop_unused_projections(extract_state_dict(read_checkpoint(path), path))
        model.load_state_dict(fit_state_dict(model, state, path), strict=True)
    elif pretrained:
        from reidsort.reid.backbones.pretrained import IMAGENET, load_hub_file

        if str(pretrained).lower() != IMAGENET:
            raise ValueError(f"model.backbone.pretrained={pretrained!r}: dla34 knows imagenet "
                             "(the DLA authors' weights) or null")
        load_hub_file(model, DLA34_IMAGENET_URL, "dla34 ImageNet", rename=drop_unused_projections)
    return model


__all__ = [
    "DLA",
    "DLA34_CHANNELS",
    "DLA34_IMAGENET_URL",
    "DLA34_LEVELS",
    "DLA34_UNUSED_PROJECTIONS",
    "DLAUp",
    "IDAUp",
    "bilinear_upsampler",
    "dla34",
    "drop_unused_projections",
]
