"""The AFLink network in torch (architecture: dyhBUPT/StrongSORT ``AFLink/model.py``).

Layer by layer, see :mod:`reidsort.tracking.aflink` (the NumPy forward of the same weights).
Written without in-place slice assignment so that it exports to ONNX and so that
``state_dict`` names are what the NumPy loader reads: ``{former,latter}.temporal.<i>.conv``,
``{former,latter}.temporal.<i>.norms.<column>``, ``{former,latter}.fusion.{conv,norm}``,
``classifier.fc1``, ``classifier.fc2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from reidsort.tracking.aflink import DEFAULT_INPUT_LENGTH, PAIR_COLUMNS

#: reference PostLinker: TemporalBlock(1, 32) ... TemporalBlock(128, 256)
DEFAULT_CHANNELS = (32, 64, 128, 256)
#: reference TemporalBlock: Conv2d(cin, cout, (7, 1))
DEFAULT_TEMPORAL_KERNEL = 7
#: reference Classifier: Linear(2 * cin, cin // 2)
HIDDEN_DIVISOR = 2
NUM_CLASSES = 2
#: the softmax column that means "same person"
SAME = 1


class TemporalBlock(nn.Module):
    """Convolution along time only, a batch norm per input column (frame, x, y), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel, 1), bias=False)
        self.norms = nn.ModuleList(nn.BatchNorm1d(out_channels) for _ in range(PAIR_COLUMNS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, C, T', 3)
        x = torch.stack([norm(x[..., col]) for col, norm in enumerate(self.norms)], dim=-1)
        return torch.relu(x)


class FusionBlock(nn.Module):
    """Convolution across the three columns, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (1, PAIR_COLUMNS), bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class Branch(nn.Module):
    """One tracklet's encoder: temporal blocks, fusion block, global average pooling."""

    def __init__(self, channels: Sequence[int], kernel: int) -> None:
        super().__init__()
        widths = [1, *channels]
        self.temporal = nn.Sequential(
            *(TemporalBlock(cin, cout, kernel) for cin, cout in pairwise(widths))
        )
        self.fusion = FusionBlock(widths[-1], widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.temporal(x)).mean(dim=(2, 3))


class Classifier(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * features, features // HIDDEN_DIVISOR)
        self.fc2 = nn.Linear(features // HIDDEN_DIVISOR, NUM_CLASSES)

    def forward(self, former: torch.Tensor, latter: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(torch.cat([former, latter], dim=1))))


class AFLinkNet(nn.Module):
    """Two branches (their own weights: the earlier and the later tracklet play different
    roles) and a classifier; :meth:`forward` returns logits, :meth:`probabilities` the softmax
    (the reference's eval-mode output)."""

    def __init__(
        self,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        temporal_kernel: int = DEFAULT_TEMPORAL_KERNEL,
        input_length: int = DEFAULT_INPUT_LENGTH,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < HIDDEN_DIVISOR:
            raise ValueError(f"aflink.model.channels={channels}: a non-empty list of ints >= 2")
        if int(input_length) <= len(channels) * (int(temporal_kernel) - 1):
            raise ValueError(
                f"aflink.model.input_length={input_length} is too short for "
                f"{len(channels)} temporal convolutions of {temporal_kernel} rows"
            )
        self.channels, self.temporal_kernel = channels, int(temporal_kernel)
        self.input_length = int(input_length)
        self.former = Branch(channels, self.temporal_kernel)
        self.latter = Branch(channels, self.temporal_kernel)
        self.classifier = Classifier(channels[-1])

    def forward(self, former: torch.Tensor, latter: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, 3) each -> (B, 2) logits [different, same]."""
        return self.classifier(self.former(former), self.latter(latter))

    def probabilities(self, former: torch.Tensor, latter: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(former, latter), dim=1)


class AFLinkProbabilities(nn.Module):
    """Export wrapper: the softmax output (what the NumPy forward and ONNX return)."""

    def __init__(self, net: AFLinkNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, former: torch.Tensor, latter: torch.Tensor) -> torch.Tensor:
        return self.net.probabilities(former, latter)
