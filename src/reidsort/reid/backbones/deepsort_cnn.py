"""The DeepSORT appearance CNN: a small wide residual network on 128x64 person crops.

Two layouts, chosen with ``variant``:

``"wojke"`` (default): the original network of Wojke, Bewley & Paulus, "Simple Online and Realtime
Tracking with a Deep Association Metric" (ICIP 2017, Table 1) and Wojke & Bewley, "Deep Cosine
Metric Learning for Person Re-identification" (WACV 2018), as defined in nwojke/deep_sort
(``tools/freeze_model.py``, which made ``mars-small128.pb``) and nwojke/cosine_metric_learning
(``nets/deep_sort/network_definition.py``)::

    conv1_1  3x3 conv 32 + BN + ELU                      128x64
    conv1_2  3x3 conv 32 + BN + ELU                      128x64
    pool1    3x3/2 max pool                               64x32
    conv2_1, conv2_3   residual 32                        64x32
    conv3_1, conv3_3   residual 64  (first one /2)        32x16
    conv4_1, conv4_3   residual 128 (first one /2)        16x8
    flatten, dropout, fc1 128 + BN + ELU  ->  the 128-d feature returned by ``forward``

  Residual blocks are pre-activation (BN + ELU before the block, skipped for conv2_1) with dropout
  (keep 0.6) between their two 3x3 convolutions; the skip path takes the raw input (1x1/2
  projection when the width doubles). Batch norms are TF-slim's default, shift only (no scale),
  and convolutions followed by one have no bias; this reproduces the published parameter count of
  2,800,864. The "ball" batch norm and L2 normalisation that follow fc1 in the TF graph belong to
  the cosine-softmax classifier and are left to the head (BNNeck) and the tracker.
  Module names mirror the TF variable scopes (``conv3_1.projection``, ``fc1``, ...), so a TF
  checkpoint converts by renaming and transposing (HWIO -> OIHW; fc1 rows from NHWC to NCHW
  flatten order). Loads: checkpoints saved from this class (reidsort or plain state dicts).
  Differences from TF that do not change parameters: symmetric zero padding in the strided
  convolutions and pool (TF "SAME" pads bottom/right only), and PyTorch's BN momentum.

``"zqpei"``: the ResNet-like port of ZQPei/deep_sort_pytorch (``deep_sort/deep/model.py``), whose
public ``ckpt.t7`` most PyTorch DeepSORT users have: 3x3 conv 64 + BN + ReLU + 3x3/2 max pool,
four stages of two BasicBlocks (64, 128, 256, 512; stages 2-4 halve the resolution), global
average pool -> 512-d feature. Parameter names equal that file's (``conv.0.weight``,
``layer2.0.downsample.0.weight``, ...), so its ``ckpt.t7`` (``{"net_dict": ...}``) loads directly
(its ``classifier.*`` head is dropped). Unlike ZQPei's extractor, ``forward`` does not
L2-normalise; the consumer (BNNeck / tracker) does. Not loadable: ZQPei's ``original_model.py``
port (a different, 128-d layout) and TF ``.pb`` / ``.ckpt`` files.

Inputs are expected at 128x64 (height x width). The ``"wojke"`` layout requires it (its fc1
flattens the 16x8 map); ``"zqpei"`` pools globally and accepts any size.
"""

from __future__ import annotations

import os
from enum import Enum

import torch
from torch import Tensor, nn

#: The network's input size, (height, width) (paper Table 1).
DEEPSORT_INPUT_HW: tuple[int, int] = (128, 64)
#: Embedding size of the original network.
WOJKE_FEATURE_DIM = 128
#: Embedding size of ZQPei's port.
ZQPEI_FEATURE_DIM = 512
#: Dropout of the original (TF keep_prob 0.6), inside residual blocks and before fc1.
WOJKE_DROPOUT = 0.4
#: TF-slim's batch-norm epsilon (the PyTorch default is 1e-5).
SLIM_BATCH_NORM_EPS = 1e-3


class DeepSortVariant(str, Enum):
    """Which DeepSORT CNN layout to build."""

    WOJKE = "wojke"  # original TF network, 128-d
    ZQPEI = "zqpei"  # deep_sort_pytorch ckpt.t7 layout, 512-d

    @classmethod
    def parse(cls, value: str | DeepSortVariant) -> DeepSortVariant:
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(repr(v.value) for v in cls)
            raise ValueError(f"unknown deepsort_cnn variant {value!r}; valid: {valid}") from None


class _ShiftOnlyBatchNormMixin:
    """Batch norm with a learned shift but no learned scale (TF-slim's ``batch_norm`` default).

    The ``weight`` parameter is removed (``F.batch_norm`` treats ``None`` as a scale of 1), so it
    neither trains nor appears in the state dict or the parameter count.
    """

    def _drop_scale(self) -> None:
        self.register_parameter("weight", None)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if getattr(self, "bias", None) is not None:
            nn.init.zeros_(self.bias)


class ShiftOnlyBatchNorm2d(_ShiftOnlyBatchNormMixin, nn.BatchNorm2d):
    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=SLIM_BATCH_NORM_EPS)
        self._drop_scale()


class ShiftOnlyBatchNorm1d(_ShiftOnlyBatchNormMixin, nn.BatchNorm1d):
    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=SLIM_BATCH_NORM_EPS)
        self._drop_scale()


class ConvBnElu(nn.Module):
    """3x3 conv (no bias) + shift-only BN + ELU: TF-slim ``conv2d`` with ``normalizer_fn``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn = ShiftOnlyBatchNorm2d(out_channels)
        self.elu = nn.ELU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.elu(self.bn(self.conv(x)))


class WojkeResidualBlock(nn.Module):
    """Pre-activation residual block of the original network (``residual_block`` in TF).

    ``increase_dim`` doubles the width and halves the resolution; the skip path then uses a
    bias-free 1x1/2 projection of the block's raw input.
    """

    def __init__(
        self,
        in_channels: int,
        increase_dim: bool = False,
        is_first: bool = False,
        dropout: float = WOJKE_DROPOUT,
    ) -> None:
        super().__init__()
        out_channels = 2 * in_channels if increase_dim else in_channels
        stride = 2 if increase_dim else 1
        # The first block follows the stem's ELU directly, so it skips the pre-activation.
        self.pre_bn = None if is_first else ShiftOnlyBatchNorm2d(in_channels)
        self.pre_elu = nn.ELU()
        self.conv1 = ConvBnElu(in_channels, out_channels, stride=stride)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=True)
        self.projection = (
            nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False) if increase_dim else None
        )

    def forward(self, x: Tensor) -> Tensor:
        activated = x if self.pre_bn is None else self.pre_elu(self.pre_bn(x))
        residual = self.conv2(self.dropout(self.conv1(activated)))
        identity = x if self.projection is None else self.projection(x)
        return identity + residual


class WojkeCNN(nn.Module):
    """The original DeepSORT CNN (2,800,864 parameters): 128x64 crops -> 128-d features."""

    def __init__(self, dropout: float = WOJKE_DROPOUT) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"deepsort_cnn dropout must be in [0, 1), got {dropout}")
        self.feature_dim = WOJKE_FEATURE_DIM
        self.input_hw = DEEPSORT_INPUT_HW
        self.conv1_1 = ConvBnElu(3, 32)
        self.conv1_2 = ConvBnElu(32, 32)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2_1 = WojkeResidualBlock(32, is_first=True, dropout=dropout)
        self.conv2_3 = WojkeResidualBlock(32, dropout=dropout)
        self.conv3_1 = WojkeResidualBlock(32, increase_dim=True, dropout=dropout)
        self.conv3_3 = WojkeResidualBlock(64, dropout=dropout)
        self.conv4_1 = WojkeResidualBlock(64, increase_dim=True, dropout=dropout)
        self.conv4_3 = WojkeResidualBlock(128, dropout=dropout)
        map_height, map_width = (side // 8 for side in DEEPSORT_INPUT_HW)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(128 * map_height * map_width, WOJKE_FEATURE_DIM, bias=False)
        self.fc1_bn = ShiftOnlyBatchNorm1d(WOJKE_FEATURE_DIM)
        self.fc1_elu = nn.ELU(inplace=True)
        self._init_parameters()

    def _init_parameters(self) -> None:
        """He initialisation (as torchvision and torchreid), not the TF code's.

        The TF code draws every weight from a truncated normal with std 1e-3, which only works
        through batch statistics in training mode: an untrained model in eval mode then outputs
        features of about 1e-10. He initialisation keeps activations at unit scale from the start
        and does not change the architecture.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            else:
                continue
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def feature_map(self, images: Tensor) -> Tensor:
        """The ``[N, 128, 16, 8]`` map of the last residual block (before flatten)."""
        if tuple(images.shape[-2:]) != self.input_hw:
            height, width = self.input_hw
            raise ValueError(
                f"deepsort_cnn (variant 'wojke') needs {height}x{width} (HxW) input, "
                f"got {images.shape[-2]}x{images.shape[-1]}"
            )
        x = self.pool1(self.conv1_2(self.conv1_1(images)))
        x = self.conv2_3(self.conv2_1(x))
        x = self.conv3_3(self.conv3_1(x))
        return self.conv4_3(self.conv4_1(x))

    def forward(self, images: Tensor) -> Tensor:
        flat = torch.flatten(self.feature_map(images), 1)
        return self.fc1_elu(self.fc1_bn(self.fc1(self.dropout(flat))))


class ZQPeiBasicBlock(nn.Module):
    """ResNet basic block with the attribute names of deep_sort_pytorch's ``BasicBlock``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        residual = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(identity + residual)


def _zqpei_stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        ZQPeiBasicBlock(in_channels, out_channels, stride=stride),
        ZQPeiBasicBlock(out_channels, out_channels),
    )


class ZQPeiCNN(nn.Module):
    """deep_sort_pytorch's re-ID net without classifier: 128x64 crops -> 512-d features."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_dim = ZQPEI_FEATURE_DIM
        self.input_hw = DEEPSORT_INPUT_HW
        self.conv = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.layer1 = _zqpei_stage(64, 64, stride=1)
        self.layer2 = _zqpei_stage(64, 128, stride=2)
        self.layer3 = _zqpei_stage(128, 256, stride=2)
        self.layer4 = _zqpei_stage(256, 512, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def feature_map(self, images: Tensor) -> Tensor:
        """The ``[N, 512, H/16, W/16]`` map before pooling (8x4 at 128x64)."""
        x = self.layer2(self.layer1(self.conv(images)))
        return self.layer4(self.layer3(x))

    def forward(self, images: Tensor) -> Tensor:
        return torch.flatten(self.avgpool(self.feature_map(images)), 1)


def deepsort_cnn(
    weights: str | os.PathLike | None = None,
    variant: str | DeepSortVariant = "wojke",
    dropout: float = WOJKE_DROPOUT,
    pretrained: str | None = None,
) -> WojkeCNN | ZQPeiCNN:
    """The DeepSORT appearance CNN; ``variant="zqpei"`` loads deep_sort_pytorch's ``ckpt.t7``.

    ``dropout`` applies to the original layout only (ZQPei's port has none): the paper's 0.4
    suits long training; short CPU schedules learn faster with less.
    """
    from reidsort.reid.backbones.pretrained import no_torchvision_weights

    no_torchvision_weights("deepsort_cnn", pretrained)
    chosen = DeepSortVariant.parse(variant)
    model: WojkeCNN | ZQPeiCNN = (
        WojkeCNN(dropout=dropout) if chosen is DeepSortVariant.WOJKE else ZQPeiCNN()
    )
    if weights is not None:
        from reidsort.reid.backbones.weights import load_backbone_weights

        load_backbone_weights(model, weights)
    return model
