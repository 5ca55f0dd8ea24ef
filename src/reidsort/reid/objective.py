"""The Re-ID training objective: weighted sum of CE, batch-hard triplet and center losses."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from reidsort.reid.head import HeadOutput
from reidsort.reid.losses import CenterLoss, CrossEntropyLabelSmooth, TripletLoss


class LossTerms(NamedTuple):
    total: Tensor
    ce: Tensor
    triplet: Tensor
    center: Tensor


class ReIDObjective(nn.Module):
    """CE on the BNNeck logits, triplet and center loss on the pre-BN feature (Luo et al. 2019).

    A term with weight 0 is not computed. Center-loss centres are parameters of this module; the
    LightningModule steps them with plain SGD at ``center_lr`` on their gradient divided by
    ``center_weight``, inside its one optimizer object (:mod:`reidsort.reid.optim`).
    """

    def __init__(
        self,
        num_classes: int,
        feat_dim: int,
        ce_weight: float = 1.0,
        label_smoothing: float = 0.1,
        triplet_weight: float = 1.0,
        triplet_margin: float | None = 0.3,
        center_weight: float = 0.0,
        center_lr: float = 0.5,
    ) -> None:
        super().__init__()
        if ce_weight <= 0 and triplet_weight <= 0:
            raise ValueError("loss: at least one of ce_weight and triplet_weight must be > 0")
        self.ce_weight = float(ce_weight)
        self.triplet_weight = float(triplet_weight)
        self.center_weight = float(center_weight)
        self.center_lr = float(center_lr)
        self.ce = CrossEntropyLabelSmooth(num_classes, epsilon=label_smoothing)
        self.triplet = TripletLoss(margin=triplet_margin)
        self.center = CenterLoss(num_classes, feat_dim) if center_weight > 0 else None

    def forward(self, out: HeadOutput, targets: Tensor,
                mining: tuple[Tensor, Tensor] | None = None) -> LossTerms:
        """The weighted terms; ``mining`` = (features, labels) of the *global* batch for the
        triplet loss under DDP (gathered with gradients), else this batch's pre-BN features."""
        zero = out.feature.new_zeros(())
        ce = self.ce(out.logits, targets) if self.ce_weight > 0 else zero
        mining_features, mining_targets = mining if mining is not None else (out.feature,
                                                                              targets)
        triplet = (self.triplet(mining_features, mining_targets) if self.triplet_weight > 0
                   else zero)
        center = self.center(out.feature, targets) if self.center is not None else zero
        total = self.ce_weight * ce + self.triplet_weight * triplet + self.center_weight * center
        return LossTerms(total=total, ce=ce.detach(), triplet=triplet.detach(),
                         center=center.detach())


def accuracy(logits: Tensor, targets: Tensor) -> Tensor:
    with torch.no_grad():
        return (logits.argmax(dim=1) == targets).float().mean()
