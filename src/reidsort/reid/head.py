"""BNNeck head (Luo et al. 2019, "Bag of Tricks and A Strong Baseline for Deep Person Re-ID").

pooled feature -> BatchNorm1d with a frozen (zero) bias -> bias-free linear classifier.
The triplet loss uses the feature before BN, cross-entropy the logits, and retrieval the
(L2-normalised) feature after BN. Freezing the BN shift keeps the normalised feature centred,
which is what makes the two losses compatible in one embedding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class HeadOutput(NamedTuple):
    """What the head returns; ``logits`` is None in eval mode (no classifier cost at inference)."""

    feature: Tensor  # pre-BN pooled feature (triplet / center loss)
    bn_feature: Tensor  # post-BN feature (retrieval)
    logits: Tensor | None  # classifier scores (cross-entropy), training only


class BNNeckHead(nn.Module):
    """BatchNorm neck + bias-free classifier over ``num_classes`` training identities."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.bn = nn.BatchNorm1d(in_features)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(in_features, num_classes, bias=False)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feature: Tensor) -> HeadOutput:
        bn_feature = self.bn(feature)
        logits = self.classifier(bn_feature) if self.training else None
        return HeadOutput(feature=feature, bn_feature=bn_feature, logits=logits)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier for a new set of identities (fine-tuning)."""
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.in_features, num_classes, bias=False).to(
            self.bn.weight.device
        )
        nn.init.normal_(self.classifier.weight, std=0.001)


@torch.no_grad()
def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)
