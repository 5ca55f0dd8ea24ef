"""Re-ID training losses: label-smoothed cross-entropy, batch-hard triplet, centre loss, LSRO.

The first three are the losses of the "bag of tricks" strong baseline (Luo et al., CVPR-W
2019): identity classification with label smoothing, a batch-hard triplet loss on the embedding
and, optionally, a centre loss that pulls each embedding towards a learnable class centre.
LSRO (Zheng, Zheng & Yang, ICCV 2017) is the cross-entropy of unlabelled (generated) images
against the uniform distribution over the training identities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Luo et al. 2019 use epsilon = 0.1 (Szegedy et al. 2016 also use 0.1 on ImageNet).
DEFAULT_LABEL_SMOOTHING = 0.1
# Margin of the batch-hard triplet loss in Luo et al. 2019 (Hermans et al. 2017 use soft margin).
DEFAULT_TRIPLET_MARGIN = 0.3
# Floor for squared distances before the square root: sqrt has an infinite derivative at 0.
_MIN_SQUARED_DISTANCE = 1e-12
# Ceiling for the centre loss distances, so that one exploding feature cannot dominate a batch.
_MAX_SQUARED_DISTANCE = 1e12


def _check_features_and_labels(features: torch.Tensor, labels: torch.Tensor) -> None:
    """Fail early with a readable message instead of a broadcasting error deep inside a loss."""
    if features.dim() != 2:
        raise ValueError(f"features must be 2-D (batch, dim), got shape {tuple(features.shape)}")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels must be 1-D with one label per feature row ({features.shape[0]}), "
            f"got shape {tuple(labels.shape)}"
        )


def _check_class_range(labels: torch.Tensor, num_classes: int) -> None:
    """Out-of-range labels crash CUDA kernels with an opaque device assert; catch them here."""
    if labels.numel() and bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got min {int(labels.min())} "
            f"and max {int(labels.max())}"
        )


def uniform_target_nll(logits: torch.Tensor) -> torch.Tensor:
    """(N,) cross-entropy of each row of (N, C) ``logits`` against the uniform target 1/C:
    ``-(1/C) sum_c log softmax(logits)_c``, in float32 (fp16 logs lose the small terms).

    Its minimum, ``log C``, is reached by uniform logits: the model is told that the image
    belongs to none of the training identities more than to any other.
    """
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must have shape (batch, classes), got {tuple(logits.shape)}")
    return -F.log_softmax(logits.float(), dim=1).mean(dim=1)


def lsro_loss(logits: torch.Tensor) -> torch.Tensor:
    """Label smoothing regularisation for outliers (Zheng, Zheng & Yang, ICCV 2017): the mean
    over the batch of :func:`uniform_target_nll`; a zero in the graph for an empty batch."""
    if logits.shape[0] == 0:
        return logits.float().sum() * 0.0
    return uniform_target_nll(logits).mean()


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against smoothed targets ``(1 - epsilon) * one_hot + epsilon / num_classes``.

    Label smoothing (Szegedy et al., CVPR 2016) stops the identity classifier from becoming
    over-confident on the few images per training identity, which Luo et al. (2019) found to add
    about 1 point of Rank-1 on Market-1501. The smoothing mass is spread over *all* classes,
    the true one included, as in the paper.
    """

    def __init__(self, num_classes: int, epsilon: float = DEFAULT_LABEL_SMOOTHING) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the smoothed cross-entropy; ``logits`` is (N, num_classes)."""
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must have shape (batch, {self.num_classes}), got {tuple(logits.shape)}"
            )
        _check_features_and_labels(logits, targets)
        _check_class_range(targets, self.num_classes)
        # float32 log-softmax even under mixed precision: fp16 logs lose the small class terms.
        log_probs = F.log_softmax(logits.float(), dim=1)
        true_class_nll = -log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
        uniform_nll = -log_probs.mean(dim=1)  # = uniform_target_nll, reusing the log-softmax
        per_sample = (1.0 - self.epsilon) * true_class_nll + self.epsilon * uniform_nll
        return per_sample.mean()


def pairwise_euclidean_distance(features: torch.Tensor) -> torch.Tensor:
    """(N, N) Euclidean distances in float32, with the square root made safe at zero.

    The squared distance is expanded as ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product) and
    clamped to a small positive floor, so rounding cannot make it negative and the gradient of
    the square root stays finite.
    """
    features = features.float()
    squared_norms = features.pow(2).sum(dim=1)
    squared = squared_norms.unsqueeze(1) + squared_norms.unsqueeze(0) - 2.0 * features @ features.T
    return squared.clamp(min=_MIN_SQUARED_DISTANCE).sqrt()


def batch_hard_distances(
    features: torch.Tensor, labels: torch.Tensor, negative_only: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-hard mining (Hermans et al., 2017): each anchor's farthest positive, closest negative.

    A positive is another sample (never the anchor itself) with the same label; a negative has a
    different label. Anchors without any positive or without any negative in the batch cannot
    form a triplet and are left out, so both returned tensors have one entry per *valid* anchor
    (possibly zero entries). Distances are Euclidean, see :func:`pairwise_euclidean_distance`.

    ``negative_only`` (N,) marks samples that may only be negatives (generated images without
    an identity): never anchors, never positives, a negative of every other anchor.
    """
    _check_features_and_labels(features, labels)
    distances = pairwise_euclidean_distance(features)
    same_label = labels.unsqueeze(0) == labels.unsqueeze(1)
    not_self = ~torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    is_positive = same_label & not_self
    is_negative = ~same_label
    if negative_only is not None:
        if negative_only.shape != labels.shape:
            raise ValueError(f"negative_only must have the labels' shape {tuple(labels.shape)}, "
                             f"got {tuple(negative_only.shape)}")
        outlier = negative_only.bool()
        is_positive &= ~outlier.unsqueeze(0)
        # a labelled anchor's negatives include every outlier, whatever label it carries
        is_negative |= outlier.unsqueeze(0) & ~outlier.unsqueeze(1)
    valid_anchor = is_positive.any(dim=1) & is_negative.any(dim=1)
    if negative_only is not None:
        valid_anchor &= ~negative_only.bool()

    dist_ap = torch.where(is_positive, distances, -torch.inf).amax(dim=1)
    dist_an = torch.where(is_negative, distances, torch.inf).amin(dim=1)
    return dist_ap[valid_anchor], dist_an[valid_anchor]


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al., 2017) with a hard or a soft margin.

    With a margin ``m`` the loss is ``mean(max(0, d_ap - d_an + m))`` (margin ranking loss);
    with ``margin=None`` it is the soft-margin ``mean(log(1 + exp(d_ap - d_an)))``, which keeps
    pulling triplets apart after they satisfy any fixed margin. Batches should come from a
    P x K sampler so every anchor has positives. If no anchor in the batch is valid the loss is
    a zero that still belongs to the autograd graph, so a training step never breaks.
    """

    def __init__(
        self, margin: float | None = DEFAULT_TRIPLET_MARGIN, normalize_feature: bool = False
    ) -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ValueError(f"triplet margin must be >= 0 or None (soft margin), got {margin}")
        self.margin = margin
        self.normalize_feature = normalize_feature

    def loss_and_accuracy(
        self, features: torch.Tensor, labels: torch.Tensor,
        negative_only: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the fraction of valid anchors whose hardest triplet has ``d_ap < d_an``.

        The fraction is a cheap training-progress signal; it is 0 when no anchor is valid.
        ``negative_only``: see :func:`batch_hard_distances`.
        """
        if self.normalize_feature:
            features = F.normalize(features.float(), dim=1)
        dist_ap, dist_an = batch_hard_distances(features, labels, negative_only)
        if dist_ap.numel() == 0:
            zero_with_grad = features.sum() * 0.0
            return zero_with_grad, zero_with_grad.detach()
        difference = dist_ap - dist_an
        if self.margin is None:
            loss = F.softplus(difference).mean()
        else:
            loss = F.relu(difference + self.margin).mean()
        accuracy = (dist_ap < dist_an).float().mean()
        return loss, accuracy

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                negative_only: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar batch-hard triplet loss for (N, D) features and their (N,) identity labels."""
        return self.loss_and_accuracy(features, labels, negative_only)[0]


class CenterLoss(nn.Module):
    """Centre loss (Wen et al., ECCV 2016): mean squared distance of features to their class centre.

    Triplet and softmax losses shape *relative* distances only; the centre loss also makes each
    identity compact. The centres are learnable parameters (initialised from a standard normal).
    Each squared distance is clamped to ``[1e-12, 1e12]``, the usual guard against overflow.

    Training note (Luo et al., 2019 strong baseline): the centres get their own SGD optimiser with
    learning rate 0.5, the loss is added with weight 0.0005, and the centres' gradients are
    multiplied by ``1 / 0.0005`` before their step so the small loss weight does not freeze them.
    """

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(
                f"num_classes and feat_dim must be >= 1, got {num_classes} and {feat_dim}"
            )
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar mean over the batch of ``|x_i - c_{y_i}|^2`` for (N, feat_dim) features."""
        _check_features_and_labels(features, labels)
        if features.shape[1] != self.feat_dim:
            raise ValueError(
                f"features have dimension {features.shape[1]} but the centre loss was built "
                f"for feat_dim={self.feat_dim}"
            )
        _check_class_range(labels, self.num_classes)
        if features.shape[0] == 0:
            return features.sum() * 0.0 + self.centers.sum() * 0.0
        own_centers = self.centers[labels.long()]
        squared = (features.float() - own_centers.float()).pow(2).sum(dim=1)
        return squared.clamp(min=_MIN_SQUARED_DISTANCE, max=_MAX_SQUARED_DISTANCE).mean()
