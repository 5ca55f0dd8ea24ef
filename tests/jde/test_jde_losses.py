"""FairMOT losses on hand-computed cases (named test_jde_losses: tests/reid has a test_losses)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reidsort.jde.losses import (
    IdentityHead,
    JDELoss,
    UncertaintyWeights,
    emb_scale,
    focal_loss,
    identity_loss,
    masked_l1,
)
from reidsort.jde.model import JDEOutput
from reidsort.utils.errors import ReidsortError


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_focal_loss_on_a_hand_computed_1x1x2x2_case():
    logits = torch.tensor([[[[0.0, 1.0], [-1.0, 20.0]]]])
    target = torch.tensor([[[[1.0, 0.5], [0.0, 0.8]]]])
    p0, p1, p2 = _sigmoid(0.0), _sigmoid(1.0), _sigmoid(-1.0)
    p3 = 1 - 1e-4  # sigmoid(20) clamped
    positive = math.log(p0) * (1 - p0) ** 2
    negative = (math.log(1 - p1) * p1 ** 2 * 0.5 ** 4 + math.log(1 - p2) * p2 ** 2 * 1.0 ** 4
                + math.log(1 - p3) * p3 ** 2 * 0.2 ** 4)
    expected = -(positive + negative) / 1  # one centre
    assert focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)
    # no centre at all: the negative part alone, divided by 1
    no_centre = target.clone()
    no_centre[0, 0, 0, 0] = 0.0
    negative_only = -(negative + math.log(1 - p0) * p0 ** 2)
    assert focal_loss(logits, no_centre).item() == pytest.approx(negative_only, rel=1e-5)
    # two centres: divided by 2
    two = target.clone()
    two[0, 0, 1, 1] = 1.0
    both = -(positive + math.log(p3) * (1 - p3) ** 2 + negative
             - math.log(1 - p3) * p3 ** 2 * 0.2 ** 4) / 2
    assert focal_loss(logits, two).item() == pytest.approx(both, rel=1e-5)


def test_masked_l1_on_a_hand_case():
    pred = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2)  # channel c at cell i: 4c + i
    index = torch.tensor([[3, 0, 1]])
    mask = torch.tensor([[True, True, False]])
    target = torch.tensor([[[1.0, 8.0], [0.5, 4.0], [100.0, 100.0]]])
    # rows: cell 3 -> (3, 7) vs (1, 8): 2 + 1; cell 0 -> (0, 4) vs (0.5, 4): 0.5; row 3 masked
    expected = (2 + 1 + 0.5) / (2 * 2 + 1e-4)
    assert masked_l1(pred, index, mask, target).item() == pytest.approx(expected, rel=1e-6)
    assert masked_l1(pred, index, torch.zeros_like(mask), target).item() == 0.0


def test_emb_scale_is_fairmots_formula_and_needs_three_identities():
    assert emb_scale(100) == pytest.approx(math.sqrt(2) * math.log(99))
    assert emb_scale(3) == pytest.approx(math.sqrt(2) * math.log(2))
    with pytest.raises(ReidsortError, match="num_ids >= 3"):
        IdentityHead(8, 2)


def test_identity_loss_is_the_cross_entropy_of_the_scaled_normalised_embedding():
    torch.manual_seed(0)
    embedding_map = torch.randn(2, 4, 3, 3)  # (B, D, h, w)
    head = IdentityHead(4, num_ids=5)
    index = torch.tensor([[0, 4, 8], [2, 7, 1]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    ids = torch.tensor([[1, -1, 3], [4, 0, -1]])  # -1: no identity; (0, 2) is padding
    # valid rows: (image 0, cell 0, id 1), (image 1, cell 2, id 4), (image 1, cell 7, id 0)
    vectors = torch.stack([embedding_map[0, :, 0, 0], embedding_map[1, :, 0, 2],
                           embedding_map[1, :, 2, 1]])
    scaled = math.sqrt(2) * math.log(4) * vectors / vectors.norm(dim=1, keepdim=True)
    logits = scaled @ head.classifier.weight.T + head.classifier.bias
    expected = F.cross_entropy(logits, torch.tensor([1, 4, 0]))
    loss = identity_loss(embedding_map, index, mask, ids, head)
    torch.testing.assert_close(loss, expected)
    nothing = identity_loss(embedding_map, index, mask, torch.full_like(ids, -1), head)
    assert nothing.item() == 0.0
    with pytest.raises(ReidsortError, match="identity 5 outside the head's 5"):
        identity_loss(embedding_map, index, mask, ids.clamp(min=5), head)


def test_uncertainty_weighting_formula_and_fairmots_initial_values():
    weights = UncertaintyWeights()
    assert weights.s_det.item() == pytest.approx(-1.85) and weights.s_id.item() == pytest.approx(
        -1.05)
    total = weights(torch.tensor(2.0), torch.tensor(3.0))
    expected = 0.5 * (math.exp(1.85) * 2 + math.exp(1.05) * 3 - 1.85 - 1.05)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    total.backward()  # d/ds_det = 0.5 (1 - exp(-s_det) L_det)
    assert weights.s_det.grad.item() == pytest.approx(0.5 * (1 - math.exp(1.85) * 2), rel=1e-6)


def test_jde_loss_combines_the_parts_with_fairmots_weights():
    torch.manual_seed(1)
    output = JDEOutput(torch.randn(1, 1, 4, 4), torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4),
                       torch.randn(1, 8, 4, 4))
    heatmap = torch.zeros(1, 1, 4, 4)
    heatmap[0, 0, 1, 2] = 1.0
    targets = {"heatmap": heatmap, "size": torch.tensor([[[3.0, 5.0], [0.0, 0.0]]]),
               "offset": torch.tensor([[[0.5, 0.25], [0.0, 0.0]]]),
               "index": torch.tensor([[6, 0]]), "mask": torch.tensor([[True, False]]),
               "ids": torch.tensor([[2, -1]])}
    criterion = JDELoss(8, num_ids=4)
    parts = criterion(output, targets)
    assert parts.heatmap == focal_loss(output.heatmap, heatmap)
    index, mask = targets["index"], targets["mask"]
    size = masked_l1(output.size, index, mask, targets["size"])
    offset = masked_l1(output.offset, index, mask, targets["offset"])
    torch.testing.assert_close(parts.size, size)
    torch.testing.assert_close(parts.detection, parts.heatmap + 0.1 * size + offset)
    identity = identity_loss(output.embedding, index, mask, targets["ids"],
                             criterion.identity_head)
    torch.testing.assert_close(parts.identity, identity)
    torch.testing.assert_close(parts.total, criterion.uncertainty(parts.detection, identity))
    with pytest.raises(ReidsortError, match="targets.ids must be a tensor"):
        criterion(output, {**targets, "ids": None})
