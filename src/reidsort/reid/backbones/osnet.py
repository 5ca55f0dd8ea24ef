"""OSNet: the Omni-Scale Network for person Re-ID (Zhou et al., ICCV 2019).

Why OSNet: each residual block looks at the input at four receptive-field sizes at once (streams
of 1 to 4 stacked lite 3x3 convolutions) and mixes them with a gate whose weights depend on the
input, so one block can attend to a small logo or to a whole coat. Depthwise-separable ("lite")
convolutions keep x1_0 at about 2.2 M parameters, a tenth of ResNet-50.

Architecture (paper Table 1, width ``x1_0``; the narrower variants scale every width):

    conv1   7x7/2 conv + BN + ReLU,  3x3/2 max pool          64 channels
    conv2   2 x OSBlock, then 1x1 conv + 2x2 average pool    256
    conv3   2 x OSBlock, then 1x1 conv + 2x2 average pool    384
    conv4   2 x OSBlock                                      512
    conv5   1x1 conv + BN + ReLU                             512
    global average pool, fc 512 + BN + ReLU  ->  the 512-d feature returned by ``forward``

Module and parameter names follow torchreid's ``osnet.py`` (``conv1.conv.weight``,
``conv2.0.conv2b.1.conv1.weight``, ``conv2.0.gate.fc1.bias``, ``fc.0.weight``, ...), so
torchreid / deep-person-reid checkpoints load without renaming (their ``classifier.*`` is dropped
by :func:`reidsort.reid.backbones.weights.load_backbone_weights`).

IBN variant (``ibn=True``, torchreid's ``osnet_ibn_x1_0``; Pan et al., ECCV 2018): instance
normalisation in the stem (instead of BN) and after the residual sum of every ``conv2`` block.
Instance norm removes per-image contrast and colour statistics, which differ between cameras and
datasets, while the deeper layers keep batch norm for discriminative power.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from reidsort.reid.backbones.pretrained import no_torchvision_weights

#: Channel widths (stem, conv2, conv3, conv4) of the published variants (paper Sec. 3.3;
#: torchreid ``osnet_x*``).
OSNET_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "x1_0": (64, 256, 384, 512),
    "x0_75": (48, 192, 288, 384),
    "x0_5": (32, 128, 192, 256),
    "x0_25": (16, 64, 96, 128),
}
#: Output of the fc layer; the same 512 for every width (torchreid ``feature_dim=512``).
OSNET_FEATURE_DIM = 512
#: OSBlocks per stage (conv2, conv3, conv4).
BLOCKS_PER_STAGE = 2
#: The bottleneck inside an OSBlock works at ``out_channels // BOTTLENECK_REDUCTION``.
BOTTLENECK_REDUCTION = 4
#: Squeeze ratio of the aggregation gate's hidden layer.
GATE_REDUCTION = 16
#: Attribute names of the four streams, and how many lite 3x3 convolutions each stacks; the
#: receptive fields are 3x3, 5x5, 7x7 and 9x9.
STREAM_DEPTHS: dict[str, int] = {"conv2a": 1, "conv2b": 2, "conv2c": 3, "conv2d": 4}


class ConvNormAct(nn.Module):
    """Convolution (no bias) + normalisation + optional ReLU.

    One class for torchreid's ``ConvLayer``, ``Conv1x1`` and ``Conv1x1Linear``: they differ only
    in kernel size, the norm (instance norm in the IBN stem) and whether a ReLU follows. The
    attribute names ``conv`` / ``bn`` are the checkpoint's.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        instance_norm: bool = False,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn: nn.Module = (
            nn.InstanceNorm2d(out_channels, affine=True)
            if instance_norm
            else nn.BatchNorm2d(out_channels)
        )
        self.activation = nn.ReLU(inplace=True) if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.bn(self.conv(x)))


class LiteConv3x3(nn.Module):
    """Pointwise 1x1 (linear) then depthwise 3x3, then BN + ReLU.

    The paper's "Lite 3x3": a factorised 3x3 convolution costing ``c_in*c_out + 9*c_out``
    weights instead of ``9*c_in*c_out``. Pointwise first (unlike MobileNet) so the depthwise
    kernel sees already-mixed channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class AggregationGate(nn.Module):
    """The unified aggregation gate: per-channel weights in (0, 1) computed from the input.

    A squeeze-excitation style mini-network (global average pool, 1x1 conv down by
    ``GATE_REDUCTION``, ReLU, 1x1 conv up, sigmoid). The same gate (shared weights) scales every
    stream, so the scales are fused by content rather than by fixed weights.
    """

    def __init__(self, channels: int, reduction: int = GATE_REDUCTION) -> None:
        super().__init__()
        hidden = channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        weights = self.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return x * weights


def _lite_stream(channels: int, depth: int) -> nn.Module:
    """``depth`` stacked lite 3x3 convolutions; a bare module for depth 1, as in the checkpoints."""
    if depth == 1:
        return LiteConv3x3(channels, channels)
    return nn.Sequential(*(LiteConv3x3(channels, channels) for _ in range(depth)))


class OSBlock(nn.Module):
    """Omni-scale residual bottleneck block.

    1x1 down to ``out/4`` channels, four lite-conv streams of growing receptive field, gated sum,
    1x1 up (linear), residual add (with a linear 1x1 projection when the width changes), optional
    instance norm (IBN), ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, instance_norm: bool = False) -> None:
        super().__init__()
        mid_channels = out_channels // BOTTLENECK_REDUCTION
        self.conv1 = ConvNormAct(in_channels, mid_channels)
        for name, depth in STREAM_DEPTHS.items():
            setattr(self, name, _lite_stream(mid_channels, depth))
        self.gate = AggregationGate(mid_channels)
        self.conv3 = ConvNormAct(mid_channels, out_channels, activation=False)
        self.downsample = (
            ConvNormAct(in_channels, out_channels, activation=False)
            if in_channels != out_channels
            else None
        )
        # ``IN`` is torchreid's attribute name; kept for checkpoint compatibility.
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        bottleneck = self.conv1(x)
        aggregated = sum(self.gate(getattr(self, name)(bottleneck)) for name in STREAM_DEPTHS)
        residual = self.conv3(aggregated)
        identity = x if self.downsample is None else self.downsample(x)
        out = residual + identity
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


def _transition(channels: int) -> nn.Sequential:
    """1x1 conv + 2x2 average pool: halves the resolution between stages."""
    return nn.Sequential(ConvNormAct(channels, channels), nn.AvgPool2d(2, stride=2))


def _stage(
    in_channels: int, out_channels: int, downsample: bool, instance_norm: bool = False
) -> nn.Sequential:
    blocks: list[nn.Module] = [OSBlock(in_channels, out_channels, instance_norm)]
    blocks += [
        OSBlock(out_channels, out_channels, instance_norm) for _ in range(BLOCKS_PER_STAGE - 1)
    ]
    if downsample:
        blocks.append(_transition(out_channels))
    return nn.Sequential(*blocks)


class OSNet(nn.Module):
    """OSNet backbone without classifier: ``forward(images[N,3,H,W]) -> features[N,512]``.

    Accepts any input size (the Re-ID standard is 256x128, giving a 16x8 final
    map). The returned feature is the fc output (after BN + ReLU), before any BNNeck.
    """

    def __init__(
        self,
        channels: Sequence[int] = OSNET_CHANNELS["x1_0"],
        ibn: bool = False,
        feature_dim: int = OSNET_FEATURE_DIM,
    ) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"OSNet needs 4 channel widths (stem, conv2..conv4), got {channels}")
        stem, width2, width3, width4 = channels
        self.channels = tuple(channels)
        self.ibn = ibn
        self.feature_dim = feature_dim

        self.conv1 = ConvNormAct(3, stem, 7, stride=2, padding=3, instance_norm=ibn)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(stem, width2, downsample=True, instance_norm=ibn)
        self.conv3 = _stage(width2, width3, downsample=True)
        self.conv4 = _stage(width3, width4, downsample=False)
        self.conv5 = ConvNormAct(width4, width4)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(width4, feature_dim),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self._init_parameters()

    def _init_parameters(self) -> None:
        """The initialisation of the reference implementation (torchreid ``_init_params``)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def feature_map(self, images: Tensor) -> Tensor:
        """The final ``[N, C, H/16, W/16]`` map before pooling (for attention maps, debugging)."""
        x = self.maxpool(self.conv1(images))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def forward(self, images: Tensor) -> Tensor:
        pooled = torch.flatten(self.global_avgpool(self.feature_map(images)), 1)
        return self.fc(pooled)


def _build_osnet(width: str, weights: str | os.PathLike | None, ibn: bool) -> OSNet:
    model = OSNet(OSNET_CHANNELS[width], ibn=ibn)
    if weights is not None:
        from reidsort.reid.backbones.weights import load_backbone_weights

        load_backbone_weights(model, weights)
    return model


def osnet_x1_0(weights: str | os.PathLike | None = None, ibn: bool = False,
              pretrained: str | None = None) -> OSNet:
    """OSNet x1.0 (2,169,508 parameters without classifier); ``ibn=True`` is osnet_ibn_x1_0."""
    no_torchvision_weights("osnet_x1_0", pretrained)
    return _build_osnet("x1_0", weights, ibn)


def osnet_x0_75(weights: str | os.PathLike | None = None, ibn: bool = False,
              pretrained: str | None = None) -> OSNet:
    """OSNet x0.75 (1,285,754 parameters without classifier)."""
    no_torchvision_weights("osnet_x0_75", pretrained)
    return _build_osnet("x0_75", weights, ibn)


def osnet_x0_5(weights: str | os.PathLike | None = None, ibn: bool = False,
              pretrained: str | None = None) -> OSNet:
    """OSNet x0.5 (630,034 parameters without classifier)."""
    no_torchvision_weights("osnet_x0_5", pretrained)
    return _build_osnet("x0_5", weights, ibn)


def osnet_x0_25(weights: str | os.PathLike | None = None, ibn: bool = False,
              pretrained: str | None = None) -> OSNet:
    """OSNet x0.25 (201,864 parameters without classifier)."""
    no_torchvision_weights("osnet_x0_25", pretrained)
    return _build_osnet("x0_25", weights, ibn)
