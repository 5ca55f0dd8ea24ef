"""The Re-ID training objective: weighted sum of CE, batch-hard triplet, center and LSRO losses.

Generated images (label :data:`reidsort.data.generated.GENERATED_LABEL`, ``data.generated_root``)
get LSRO (Zheng, Zheng & Yang, ICCV 2017): the cross-entropy against the uniform distribution
over the training identities. Everything else is computed on the real images only: the
label-smoothed CE, the centre loss and (unless ``generated_in_triplet``) triplet mining.

How LSRO is weighted: the paper puts real and generated images into one cross-entropy average,
``(sum_real CE + sum_generated LSRO) / (n_real + n_generated)``, so every generated image
counts as much as a real one. Here the real CE stays the mean over the real images, exactly
the term of a run without generated images (so the CE / triplet balance, and a comparison with
and without them, is not shifted by the 1 / (1 + ratio) dilution), and the LSRO term added is
``lsro_weight * sum_generated LSRO / n_real``: ``lsro_weight = 1`` keeps the paper's per-image
parity (a generated image weighs what a real image weighs in the CE) at any
``data.generated_ratio``; 0 turns the term off. ``train/lsro`` logs the plain per-image mean
(``log C`` at its minimum, uniform logits).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from reidsort.data.generated import GENERATED_LABEL
from reidsort.reid.head import HeadOutput
from reidsort.reid.losses import CenterLoss, CrossEntropyLabelSmooth, TripletLoss, lsro_loss


class LossTerms(NamedTuple):
    total: Tensor
    ce: Tensor
    triplet: Tensor
    center: Tensor
    #: mean LSRO over the batch's generated images (0 without any)
    lsro: Tensor
    #: how many generated images the batch held (0: train/lsro has nothing to report)
    num_generated: int


def generated_mask(targets: Tensor) -> Tensor:
    """(N,) True where a sample is a generated image (no identity)."""
    return targets == GENERATED_LABEL


class ReIDObjective(nn.Module):
    """CE on the BNNeck logits, triplet and center loss on the pre-BN feature (Luo et al. 2019),
    LSRO on the logits of generated images (see the module docstring for its weighting).

    A term with weight 0 is not computed. Center-loss centres are parameters of this module; the
    LightningModule steps them with plain SGD at ``center_lr`` on their gradient divided by
    ``center_weight``, inside its one optimizer object (:mod:`reidsort.reid.optim`).
    ``generated_in_triplet``: generated images join batch-hard mining as negatives only (never
    anchors or positives); off, they are left out of it.
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
        lsro_weight: float = 1.0,
        generated_in_triplet: bool = False,
    ) -> None:
        super().__init__()
        if ce_weight <= 0 and triplet_weight <= 0:
            raise ValueError("loss: at least one of ce_weight and triplet_weight must be > 0")
        if lsro_weight < 0:
            raise ValueError(f"loss.lsro_weight={lsro_weight}: must be >= 0")
        self.ce_weight = float(ce_weight)
        self.triplet_weight = float(triplet_weight)
        self.center_weight = float(center_weight)
        self.center_lr = float(center_lr)
        self.lsro_weight = float(lsro_weight)
        self.generated_in_triplet = bool(generated_in_triplet)
        self.ce = CrossEntropyLabelSmooth(num_classes, epsilon=label_smoothing)
        self.triplet = TripletLoss(margin=triplet_margin)
        self.center = CenterLoss(num_classes, feat_dim) if center_weight > 0 else None

    def _triplet(self, features: Tensor, targets: Tensor) -> Tensor:
        generated = generated_mask(targets)
        if not bool(generated.any()):
            return self.triplet(features, targets)
        if self.generated_in_triplet:
            return self.triplet(features, targets, negative_only=generated)
        return self.triplet(features[~generated], targets[~generated])

    def forward(self, out: HeadOutput, targets: Tensor,
                mining: tuple[Tensor, Tensor] | None = None) -> LossTerms:
        """The weighted terms; ``mining`` = (features, labels) of the *global* batch for the
        triplet loss under DDP (gathered with gradients), else this batch's pre-BN features."""
        zero = out.feature.new_zeros(())
        generated = generated_mask(targets)
        num_generated = int(generated.sum())
        real = ~generated
        logits = out.logits
        if num_generated:
            real_logits = logits[real] if logits is not None else None
            real_feature, real_targets = out.feature[real], targets[real]
        else:  # the common path, exactly as without LSRO
            real_logits, real_feature, real_targets = logits, out.feature, targets
        ce = self.ce(real_logits, real_targets) if self.ce_weight > 0 else zero
        mining_features, mining_targets = mining if mining is not None else (out.feature,
                                                                              targets)
        triplet = (self._triplet(mining_features, mining_targets) if self.triplet_weight > 0
                   else zero)
        center = self.center(real_feature, real_targets) if self.center is not None else zero
        lsro = zero
        total = self.ce_weight * ce + self.triplet_weight * triplet + self.center_weight * center
        if num_generated and logits is not None:
            lsro = lsro_loss(logits[generated])
            if self.lsro_weight > 0:
                # sum over generated / n_real = mean x (n_generated / n_real): per-image parity
                per_real_image = num_generated / max(1, int(real.sum()))
                total = total + self.lsro_weight * per_real_image * lsro
        return LossTerms(total=total, ce=ce.detach(), triplet=triplet.detach(),
                         center=center.detach(), lsro=lsro.detach(),
                         num_generated=num_generated)


def accuracy(logits: Tensor, targets: Tensor) -> Tensor:
    """Identity accuracy over the real images (generated ones have no identity to get right)."""
    with torch.no_grad():
        real = ~generated_mask(targets)
        if not bool(real.any()):
            return logits.new_zeros(())
        return (logits[real].argmax(dim=1) == targets[real]).float().mean()
