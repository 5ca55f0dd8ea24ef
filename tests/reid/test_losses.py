"""Re-ID losses against answers worked out by hand on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reidsort.reid.losses import (
    CenterLoss,
    CrossEntropyLabelSmooth,
    TripletLoss,
    batch_hard_distances,
)


def _log_softmax_by_hand(row: list[float]) -> list[float]:
    log_sum_exp = math.log(sum(math.exp(value) for value in row))
    return [value - log_sum_exp for value in row]


def test_label_smoothing_three_classes_matches_hand_computation():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    targets = torch.tensor([2, 0])
    epsilon = 0.1
    expected_rows = []
    for row, target in zip(logits.tolist(), targets.tolist()):
        log_probs = _log_softmax_by_hand(row)
        smoothed = [epsilon / 3 + (1 - epsilon) * (cls == target) for cls in range(3)]
        expected_rows.append(-sum(q * lp for q, lp in zip(smoothed, log_probs)))
    expected = sum(expected_rows) / 2

    loss = CrossEntropyLabelSmooth(num_classes=3, epsilon=epsilon)(logits, targets)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # PyTorch's built-in smoothing spreads epsilon over all classes the same way.
    builtin = F.cross_entropy(logits, targets, label_smoothing=epsilon)
    assert loss.item() == pytest.approx(builtin.item(), rel=1e-6)


def test_label_smoothing_two_classes_and_zero_epsilon():
    logits = torch.tensor([[2.0, 0.0]])
    targets = torch.tensor([0])
    log_p0, log_p1 = _log_softmax_by_hand([2.0, 0.0])
    smoothed = CrossEntropyLabelSmooth(2, epsilon=0.2)(logits, targets).item()
    assert smoothed == pytest.approx(-(0.9 * log_p0 + 0.1 * log_p1), rel=1e-6)
    plain = CrossEntropyLabelSmooth(2, epsilon=0.0)(logits, targets).item()
    assert plain == pytest.approx(-log_p0, rel=1e-6)
    assert smoothed > plain  # smoothing penalises a confident correct prediction


def test_label_smoothing_rejects_bad_targets_and_shapes():
    criterion = CrossEntropyLabelSmooth(3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        criterion(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="logits must have shape"):
        criterion(torch.zeros(2, 4), torch.tensor([0, 1]))


# Four 2-D points, two identities; pairwise distances by Pythagoras:
# |a-b| = 5, |a-c| = 1, |a-d| = 2, |b-c| = sqrt(20), |b-d| = sqrt(13), |c-d| = sqrt(5).
POINTS = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
LABELS = torch.tensor([0, 0, 1, 1])
EXPECTED_AP = [5.0, 5.0, math.sqrt(5), math.sqrt(5)]
EXPECTED_AN = [1.0, math.sqrt(13), 1.0, 2.0]


def test_batch_hard_distances_on_hand_made_points():
    dist_ap, dist_an = batch_hard_distances(POINTS, LABELS)
    assert dist_ap.tolist() == pytest.approx(EXPECTED_AP, rel=1e-5)
    assert dist_an.tolist() == pytest.approx(EXPECTED_AN, rel=1e-5)


def test_triplet_loss_hard_margin_value_and_accuracy():
    expected = sum(max(0.0, ap - an + 0.3) for ap, an in zip(EXPECTED_AP, EXPECTED_AN)) / 4
    loss, accuracy = TripletLoss(margin=0.3).loss_and_accuracy(POINTS, LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert accuracy.item() == 0.0  # every hardest positive is farther than the hardest negative

    separated = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0], [5.0, 1.0]])
    loss, accuracy = TripletLoss(margin=0.3).loss_and_accuracy(separated, LABELS)
    assert loss.item() == 0.0 and accuracy.item() == 1.0


def test_triplet_loss_soft_margin_value():
    expected = sum(math.log1p(math.exp(ap - an)) for ap, an in zip(EXPECTED_AP, EXPECTED_AN)) / 4
    loss = TripletLoss(margin=None)(POINTS, LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_triplet_normalize_feature_ignores_scale():
    features = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    criterion = TripletLoss(margin=0.3, normalize_feature=True)
    assert criterion(features, labels).item() == pytest.approx(
        criterion(features * 7.0, labels).item(), rel=1e-5
    )


def test_triplet_excludes_anchors_without_positive_or_negative():
    # The lone identity-1 point has no positive: only the two identity-0 anchors remain.
    points = torch.tensor([[0.0, 0.0], [0.0, 3.0], [4.0, 0.0]])
    dist_ap, dist_an = batch_hard_distances(points, torch.tensor([0, 0, 1]))
    assert dist_ap.tolist() == pytest.approx([3.0, 3.0], rel=1e-5)
    assert dist_an.tolist() == pytest.approx([4.0, 5.0], rel=1e-5)


def test_triplet_with_no_valid_anchor_is_zero_with_gradient():
    features = torch.randn(4, 3, requires_grad=True)
    loss = TripletLoss()(features, torch.tensor([5, 5, 5, 5]))  # no negatives at all
    assert loss.item() == 0.0
    loss.backward()
    assert features.grad is not None and torch.count_nonzero(features.grad) == 0


def test_triplet_gradients_flow_and_stay_finite_with_duplicate_points():
    features = torch.tensor(
        [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True
    )  # two identical points: the distance between them sits at the sqrt clamp
    loss = TripletLoss(margin=0.3)(features, LABELS)
    loss.backward()
    assert torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0


def test_triplet_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="one label per feature row"):
        TripletLoss()(torch.zeros(4, 2), torch.tensor([0, 1, 0]))


def test_center_loss_on_known_centres_and_its_gradients():
    criterion = CenterLoss(num_classes=2, feat_dim=2)
    with torch.no_grad():
        criterion.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    features = torch.tensor([[1.0, 0.0], [1.0, 3.0]], requires_grad=True)
    loss = criterion(features, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx((1.0 + 4.0) / 2)
    loss.backward()
    # d/dx of mean |x - c|^2 is 2 (x - c) / N; the centres get the opposite gradient.
    torch.testing.assert_close(features.grad, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    torch.testing.assert_close(criterion.centers.grad, torch.tensor([[-1.0, 0.0], [0.0, -2.0]]))


def test_center_loss_rejects_wrong_dimension_and_label():
    criterion = CenterLoss(num_classes=3, feat_dim=4)
    with pytest.raises(ValueError, match="feat_dim=4"):
        criterion(torch.zeros(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        criterion(torch.zeros(2, 4), torch.tensor([0, -1]))
