"""FairMOT's training losses (ifzhang/FairMOT src/lib/models/losses.py, trains/mot.py MotLoss).

* heatmap: CenterNet's penalty-reduced focal loss (Law & Deng 2018, Zhou et al. 2019);
* size and centre offset: L1 at the ground-truth centres;
* identity: cross-entropy over the training identities of the scaled, L2-normalised embedding
  at each centre that has an identity;
* the detection and identity losses balanced by learned uncertainty weights (Kendall et al.
  2018), FairMOT's ``multi_loss='uncertainty'``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reidsort.utils.errors import ReidsortError

#: CenterNet focal loss exponents: (1 - p)^ALPHA on positives, (1 - y)^BETA on negatives
FOCAL_ALPHA = 2
FOCAL_BETA = 4
#: FairMOT ``_sigmoid``: probabilities clamped away from 0 and 1 so the logs stay finite
PROB_CLAMP = 1e-4
#: FairMOT RegL1Loss: added to the denominator (no division by zero without objects)
L1_EPS = 1e-4
#: FairMOT opts: ``hm_weight``, ``wh_weight``, ``off_weight``
HEATMAP_WEIGHT = 1.0
SIZE_WEIGHT = 0.1
OFFSET_WEIGHT = 1.0
#: FairMOT MotLoss: initial log-variances of the detection and identity tasks
S_DET = -1.85
S_ID = -1.05


def focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Penalty-reduced focal loss of heatmap ``logits`` (B, C, h, w) against the Gaussian
    ``target`` (same shape, exactly 1 at centres), summed and divided by the number of
    centres (by 1 when there are none, which leaves the negative part as it is)."""
    if logits.shape != target.shape:
        raise ReidsortError(f"focal_loss: logits {tuple(logits.shape)} and target "
                            f"{tuple(target.shape)} differ")
    prob = torch.sigmoid(logits.float()).clamp(PROB_CLAMP, 1 - PROB_CLAMP)
    target = target.float()
    positive = target.eq(1).float()
    negative_weight = (1 - target).pow(FOCAL_BETA) * (1 - positive)
    positive_loss = torch.log(prob) * (1 - prob).pow(FOCAL_ALPHA) * positive
    negative_loss = torch.log(1 - prob) * prob.pow(FOCAL_ALPHA) * negative_weight
    return -(positive_loss.sum() + negative_loss.sum()) / positive.sum().clamp(min=1)


def gather_at(feature_map: Tensor, index: Tensor) -> Tensor:
    """``feature_map`` (B, c, h, w) read at the flattened cells ``index`` (B, K): (B, K, c)
    (FairMOT ``_tranpose_and_gather_feat``)."""
    batch, channels = feature_map.shape[:2]
    flat = feature_map.reshape(batch, channels, -1)
    picked = flat.gather(2, index.long().unsqueeze(1).expand(batch, channels, index.shape[1]))
    return picked.permute(0, 2, 1)


def masked_l1(pred_map: Tensor, index: Tensor, mask: Tensor, target: Tensor) -> Tensor:
    """L1 between ``pred_map`` (B, c, h, w) at the centres ``index`` (B, K) and ``target``
    (B, K, c) over the rows where ``mask`` (B, K) is set: sum |.| / (rows * c + 1e-4)."""
    pred = gather_at(pred_map, index).float()
    if pred.shape != target.shape:
        raise ReidsortError(f"masked_l1: prediction {tuple(pred.shape)} at the centres and "
                            f"target {tuple(target.shape)} differ")
    weight = mask.float().unsqueeze(2).expand_as(pred)
    return (weight * (pred - target.float())).abs().sum() / (weight.sum() + L1_EPS)


def emb_scale(num_ids: int) -> float:
    """FairMOT's scale of the normalised embedding before the classifier: sqrt(2) log(nID - 1),
    which grows the logits' range with the number of classes to keep the softmax trainable."""
    if int(num_ids) < 3:
        # log(1) = 0 at nID = 2 would zero every logit and stop the identity head learning
        raise ReidsortError(f"the identity loss needs num_ids >= 3 (emb_scale = sqrt(2) "
                            f"log(num_ids - 1)), got num_ids={num_ids}")
    return math.sqrt(2) * math.log(int(num_ids) - 1)


class IdentityHead(nn.Module):
    """The training-only identity classifier (FairMOT: ``nn.Linear(emb_dim, nID)`` with bias)."""

    def __init__(self, embedding_dim: int, num_ids: int, bias: bool = True) -> None:
        super().__init__()
        self.num_ids = int(num_ids)
        self.scale = emb_scale(num_ids)
        self.classifier = nn.Linear(int(embedding_dim), self.num_ids, bias=bias)

    def forward(self, embeddings: Tensor) -> Tensor:
        """Logits (N, num_ids) of raw embeddings (N, D)."""
        return self.classifier(self.scale * F.normalize(embeddings, dim=1))


def identity_loss(embedding_map: Tensor, index: Tensor, mask: Tensor, ids: Tensor,
                  head: IdentityHead) -> Tensor:
    """Cross-entropy of the identity ``head`` on the embeddings of ``embedding_map`` (B, D, h, w)
    at the centres ``index`` (B, K) that are valid (``mask``) and have an identity
    (``ids`` >= 0), averaged over them; 0 when there are none."""
    valid = mask.bool() & (ids >= 0)
    if ids.numel() and int(ids.max()) >= head.num_ids:
        raise ReidsortError(f"identity {int(ids.max())} outside the head's {head.num_ids} "
                            "training identities")
    embeddings = gather_at(embedding_map, index)[valid].float()
    logits = head(embeddings)
    total = F.cross_entropy(logits, ids[valid].long(), reduction="sum")
    return total / valid.sum().clamp(min=1)


class UncertaintyWeights(nn.Module):
    """Learned task balance: 0.5 (exp(-s_det) L_det + exp(-s_id) L_id + s_det + s_id)."""

    def __init__(self, s_det: float = S_DET, s_id: float = S_ID) -> None:
        super().__init__()
        self.s_det = nn.Parameter(torch.tensor(float(s_det)))
        self.s_id = nn.Parameter(torch.tensor(float(s_id)))

    def forward(self, det_loss: Tensor, id_loss: Tensor) -> Tensor:
        return 0.5 * (torch.exp(-self.s_det) * det_loss + torch.exp(-self.s_id) * id_loss
                      + self.s_det + self.s_id)


class JDELossParts(NamedTuple):
    """Every part of the loss, for logging; ``total`` is the one to back-propagate."""

    total: Tensor
    detection: Tensor
    heatmap: Tensor
    size: Tensor
    offset: Tensor
    identity: Tensor


class JDELoss(nn.Module):
    """FairMOT's MotLoss on a ``JDEOutput`` and a batch of targets (a ``JDETargets`` of tensors
    with a batch dimension, or a mapping with its field names). Holds the learnable identity
    classifier and uncertainty weights: give its parameters to the optimiser."""

    def __init__(self, embedding_dim: int, num_ids: int, *,
                 heatmap_weight: float = HEATMAP_WEIGHT, size_weight: float = SIZE_WEIGHT,
                 offset_weight: float = OFFSET_WEIGHT, s_det: float = S_DET,
                 s_id: float = S_ID) -> None:
        super().__init__()
        self.identity_head = IdentityHead(embedding_dim, num_ids)
        self.uncertainty = UncertaintyWeights(s_det, s_id)
        self.heatmap_weight = float(heatmap_weight)
        self.size_weight = float(size_weight)
        self.offset_weight = float(offset_weight)

    def forward(self, output: Any, targets: Any) -> JDELossParts:
        heatmap, size, offset, index, mask, ids = (
            _field(targets, name) for name in ("heatmap", "size", "offset", "index", "mask", "ids"))
        heatmap_loss = focal_loss(output.heatmap, heatmap)
        size_loss = masked_l1(output.size, index, mask, size)
        offset_loss = masked_l1(output.offset, index, mask, offset)
        detection = (self.heatmap_weight * heatmap_loss + self.size_weight * size_loss
                     + self.offset_weight * offset_loss)
        identity = identity_loss(output.embedding, index, mask, ids, self.identity_head)
        total = self.uncertainty(detection, identity)
        return JDELossParts(total, detection, heatmap_loss, size_loss, offset_loss, identity)


def _field(targets: Any, name: str) -> Tensor:
    value = targets.get(name) if isinstance(targets, Mapping) else getattr(targets, name, None)
    if not isinstance(value, Tensor):
        raise ReidsortError(f"JDELoss: targets.{name} must be a tensor, got "
                            f"{type(value).__name__}")
    return value


__all__ = [
    "FOCAL_ALPHA",
    "FOCAL_BETA",
    "SIZE_WEIGHT",
    "S_DET",
    "S_ID",
    "IdentityHead",
    "JDELoss",
    "JDELossParts",
    "UncertaintyWeights",
    "emb_scale",
    "focal_loss",
    "gather_at",
    "identity_loss",
    "masked_l1",
]
