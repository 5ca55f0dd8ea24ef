"""LSRO (Zheng, Zheng & Yang, ICCV 2017) and how the objective treats generated images: CE,
centre loss and accuracy on the real ones only, triplet mining without them or with them as
negatives only, the LSRO term weighted per image like a real image's CE."""

from __future__ import annotations

import math

import pytest
import torch

from reidsort.data.generated import GENERATED_LABEL
from reidsort.reid.head import HeadOutput
from reidsort.reid.losses import (
    CrossEntropyLabelSmooth,
    TripletLoss,
    batch_hard_distances,
    lsro_loss,
    uniform_target_nll,
)
from reidsort.reid.objective import ReIDObjective, accuracy

G = GENERATED_LABEL


def test_lsro_is_the_uniform_cross_entropy_on_a_hand_computed_case():
    # softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6, so -(1/3) sum log p = ln 6 - ln(6) / 3
    skewed = [0.0, math.log(2.0), math.log(3.0)]
    logits = torch.tensor([skewed, [5.0, 5.0, 5.0]], requires_grad=True)
    per_image = uniform_target_nll(logits)
    assert per_image.tolist() == pytest.approx([2.0 / 3.0 * math.log(6.0), math.log(3.0)])
    loss = lsro_loss(logits)
    assert loss.item() == pytest.approx((2.0 / 3.0 * math.log(6.0) + math.log(3.0)) / 2)
    # its gradient pulls the prediction towards uniform: (softmax - 1/3) / batch
    loss.backward()
    expected = torch.tensor([[-1 / 6, 0.0, 1 / 6], [0.0, 0.0, 0.0]]) / 2
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    # uniform logits are its minimum, log C: no identity preferred
    assert lsro_loss(torch.zeros(4, 7)).item() == pytest.approx(math.log(7.0))
    empty = torch.zeros(0, 3, requires_grad=True)
    assert lsro_loss(empty).item() == 0.0 and lsro_loss(empty).requires_grad


def _batch(seed: int = 0):
    """6 real images of 3 identities + 2 generated ones; features and logits at random."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.tensor([0, 0, 1, 1, 2, 2, G, G])
    feature = torch.randn(8, 5, generator=generator, requires_grad=True)
    logits = torch.randn(8, 3, generator=generator, requires_grad=True)
    return HeadOutput(feature, feature, logits), targets


@pytest.mark.parametrize("lsro_weight", [1.0, 0.5, 0.0])
def test_the_objective_adds_lsro_per_image_and_keeps_ce_on_real_images(lsro_weight):
    out, targets = _batch()
    objective = ReIDObjective(num_classes=3, feat_dim=5, lsro_weight=lsro_weight,
                              center_weight=0.01)
    terms = objective(out, targets)
    real = targets >= 0
    ce = CrossEntropyLabelSmooth(3, epsilon=0.1)(out.logits[real], targets[real])
    triplet = TripletLoss(margin=0.3)(out.feature[real], targets[real])
    center = objective.center(out.feature[real], targets[real])
    lsro = uniform_target_nll(out.logits[~real]).mean()
    assert terms.num_generated == 2
    assert terms.ce.item() == pytest.approx(ce.item())
    assert terms.triplet.item() == pytest.approx(triplet.item())
    assert terms.center.item() == pytest.approx(center.item())
    assert terms.lsro.item() == pytest.approx(lsro.item()) and terms.lsro.item() > 0
    # lsro_weight x (sum of LSRO over generated) / (real images): 2 generated, 6 real
    expected = ce + triplet + 0.01 * center + lsro_weight * lsro * 2 / 6
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-6)
    terms.total.backward()
    generated_grad = out.logits.grad[~real].abs().sum().item()
    assert (generated_grad > 0) == (lsro_weight > 0)


def test_a_batch_without_generated_images_is_the_plain_objective():
    out, targets = _batch()
    real = targets >= 0
    plain = HeadOutput(out.feature[real], out.feature[real], out.logits[real])
    with_lsro = ReIDObjective(num_classes=3, feat_dim=5, lsro_weight=1.0)(plain, targets[real])
    baseline = ReIDObjective(num_classes=3, feat_dim=5, lsro_weight=0.0)(plain, targets[real])
    assert with_lsro.total.item() == baseline.total.item()
    assert with_lsro.num_generated == 0 and with_lsro.lsro.item() == 0.0


def _points_with_a_close_generated_image():
    """Two identities far apart and a generated image right next to identity 0's first image:
    it would be that anchor's hardest negative, if it were one."""
    features = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0], [5.0, 1.0], [0.1, 0.0],
                             [0.1, 0.0]])
    return features, torch.tensor([0, 0, 1, 1, G, G])


def test_generated_images_as_negatives_only():
    features, labels = _points_with_a_close_generated_image()
    dist_ap, dist_an = batch_hard_distances(features, labels, negative_only=labels == G)
    # four real anchors, never the generated ones (which share a label but are no positives)
    assert dist_ap.shape == (4,)
    assert dist_ap.tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert dist_an[0].item() == pytest.approx(0.1)  # the generated image is anchor 0's closest
    assert dist_an[1].item() == pytest.approx(math.hypot(0.1, 1.0))
    # identity 1: the generated image (4.9 away) for (5, 0); identity 0's (0, 1) for (5, 1)
    assert dist_an[2:].tolist() == pytest.approx([4.9, 5.0])


@pytest.mark.parametrize("in_triplet", [False, True])
def test_generated_in_triplet_off_and_on(in_triplet):
    features, labels = _points_with_a_close_generated_image()
    logits = torch.zeros(6, 2)
    objective = ReIDObjective(num_classes=2, feat_dim=2, ce_weight=0.0,
                              generated_in_triplet=in_triplet)
    terms = objective(HeadOutput(features, features, logits), labels)
    real_only = TripletLoss(margin=0.3)(features[:4], labels[:4]).item()
    assert real_only == pytest.approx(0.0)  # the identities are separated by more than 0.3
    if in_triplet:
        # anchors 0 and 1 now find the generated image closer than their positive
        expected = ((1.0 - 0.1 + 0.3) + (1.0 - math.hypot(0.1, 1.0) + 0.3)) / 4
        assert terms.triplet.item() == pytest.approx(expected, rel=1e-5)
    else:
        assert terms.triplet.item() == pytest.approx(real_only)
    # under DDP the same holds for the gathered mining batch
    gathered = objective(HeadOutput(features[:4], features[:4], logits[:4]), labels[:4],
                         mining=(features, labels))
    assert gathered.triplet.item() == pytest.approx(terms.triplet.item())


def test_accuracy_counts_real_images_only():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    assert accuracy(logits, torch.tensor([0, 0, G, G])).item() == pytest.approx(0.5)
    assert accuracy(logits[:2], torch.tensor([G, G])).item() == 0.0


def test_a_negative_lsro_weight_is_an_error():
    with pytest.raises(ValueError, match="loss.lsro_weight=-1.0: must be >= 0"):
        ReIDObjective(num_classes=3, feat_dim=5, lsro_weight=-1.0)


def test_the_loss_configs_carry_the_lsro_keys(make_config):
    for loss in ("ce_triplet", "ce", "ce_triplet_center"):
        cfg = make_config([f"loss={loss}"])
        assert cfg.loss.lsro_weight == 1.0 and cfg.loss.generated_in_triplet is False
    cfg = make_config(["data.generated_root=/gen", "loss.generated_in_triplet=true"])
    assert cfg.data.generated_root == "/gen" and cfg.data.generated_ratio == 0.25
