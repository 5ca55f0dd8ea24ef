"""JDELitModule: the checkpoint contract's hyper-parameters, the optimiser and schedule, a fixed
batch overfits, validation decodes the maps into AP; detection AP on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reidsort.jde.metrics import average_precision, detection_scores, match_detections
from reidsort.jde.model import JDEOutput
from reidsort.jde.module import JDELitModule
from reidsort.jde.targets import build_targets
from reidsort.utils.errors import ReidsortError

INPUT = (64, 96)  # (H, W)
TINY_NET = {"backbone": "resnet18", "embedding_dim": 16, "head_channels": 16, "size_mode": "ltrb"}


# ---------------------------------------------------------------------------- AP
def test_ap_on_a_hand_computed_case():
    gt = [np.array([[0, 0, 10, 10], [20, 0, 30, 10]]), np.array([[0, 0, 10, 10]])]
    frames = [
        (np.array([[0, 0, 10, 10, 0.9, 0],      # TP: gt 1 of image 1
                   [50, 50, 60, 60, 0.8, 0],    # FP: nowhere near a person
                   [20, 0, 30, 12, 0.7, 0]]),   # TP: IoU 100/120 with gt 2
         gt[0]),
        (np.array([[4, 0, 14, 10, 0.6, 0]]),    # FP: IoU 60/140 = 0.43 < 0.5
         gt[1]),
    ]
    scores = detection_scores(frames, iou_threshold=0.5, conf_threshold=0.75)
    # by score: TP FP TP FP -> recall 1/3 1/3 2/3 2/3, precision 1 1/2 2/3 1/2; the envelope is
    # 1 up to recall 1/3 and 2/3 up to 2/3: AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    assert scores.ap == pytest.approx(5 / 9)
    assert scores.num_gt == 3 and scores.num_detections == 4
    # score >= 0.75: the first two detections, one of them right
    assert scores.precision == pytest.approx(0.5) and scores.recall == pytest.approx(1 / 3)
    # a lower IoU threshold turns the last one into a hit: TP FP TP TP, precision 1 1/2 2/3 3/4,
    # envelope 1 3/4 3/4 3/4: AP = 1/3 + 1/3 * 3/4 + 1/3 * 3/4
    assert detection_scores(frames, iou_threshold=0.4).ap == pytest.approx(5 / 6)


def test_a_second_detection_of_one_person_is_a_false_positive():
    gt = np.array([[0, 0, 10, 20], [100, 0, 110, 20]])
    boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [100, 0, 110, 20]])
    hits = match_detections(boxes, np.array([0.9, 0.95, 0.5]), gt)
    # the best-scoring of the two overlapping boxes takes the person, the other is a duplicate
    assert hits.tolist() == [False, True, True]
    assert average_precision(np.array([0.9, 0.95, 0.5]), hits, 2) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3)


def test_ap_edge_cases():
    perfect = [(np.array([[0, 0, 10, 10, 0.5, 0]]), np.array([[0, 0, 10, 10]]))]
    assert detection_scores(perfect).ap == 1.0
    missed = [(np.zeros((0, 6)), np.array([[0, 0, 10, 10]]))]
    assert detection_scores(missed).ap == 0.0 and math.isnan(detection_scores(missed).precision)
    nobody = [(np.array([[0, 0, 10, 10, 0.5, 0]]), np.zeros((0, 4)))]
    assert math.isnan(detection_scores(nobody).ap)
    with pytest.raises(ReidsortError, match="scores"):
        match_detections(np.zeros((2, 4)), np.zeros(3), np.zeros((1, 4)))


# ---------------------------------------------------------------------------- module
def _module(**kwargs) -> JDELitModule:
    options = {"net": TINY_NET, "num_ids": 6, "input_hw": list(INPUT), "amodal": True, **kwargs}
    return JDELitModule(**options)


def _batch(seed: int = 0, size_mode: str = "ltrb"):
    """Two images with 3 people each (ids 0..5) and their targets, stacked as a batch."""
    rng = np.random.default_rng(seed)
    boxes = [np.array([[8, 10, 24, 50], [40, 6, 58, 60], [70, 20, 86, 62]], np.float32),
             np.array([[4, 4, 20, 40], [30, 20, 50, 62], [60, 0, 92, 58]], np.float32)]
    ids = [np.array([0, 1, 2]), np.array([3, 4, 5])]
    targets = [build_targets(b, i, INPUT, max_objects=8, size_mode=size_mode, amodal=True)
               for b, i in zip(boxes, ids)]
    stacked = type(targets[0])(**{
        name: torch.from_numpy(np.stack([getattr(t, name) for t in targets]))
        for name in targets[0].__dataclass_fields__})
    images = torch.from_numpy(rng.normal(size=(2, 3, *INPUT)).astype(np.float32))
    return images, stacked


def test_hyper_parameters_are_the_checkpoint_contract():
    module = _module(backbone_weights=None, backbone_pretrained=None)
    hp = dict(module.hparams)
    assert hp["net"] == {"backbone": "resnet18", "num_classes": 1, "embedding_dim": 16,
                         "head_channels": 16, "size_mode": "ltrb"}
    assert hp["input_hw"] == [64, 96] and hp["num_ids"] == 6 and hp["stride"] == 4
    assert hp["amodal"] is True
    assert hp["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert hp["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert "backbone_weights" not in hp and "backbone_pretrained" not in hp
    assert hp["loss"]["size_weight"] == 0.1
    assert (hp["loss"]["s_det"], hp["loss"]["s_id"]) == (-1.85, -1.05)
    state = module.state_dict()
    assert any(k.startswith("net.heatmap.") for k in state)
    assert {k.split(".")[0] for k in state} == {"net", "loss"}
    # the uncertainty weights are learnable parameters
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    assert {"loss.uncertainty.s_det", "loss.uncertainty.s_id"} <= names


def test_weights_paths_are_not_network_settings():
    with pytest.raises(ReidsortError, match="backbone_weights"):
        _module(net={**TINY_NET, "weights": "/somewhere/imagenet.pt"})
    with pytest.raises(ReidsortError, match="unknown keys"):
        _module(net={**TINY_NET, "depth": 3})
    with pytest.raises(ReidsortError, match="multiples of 32"):
        _module(input_hw=[60, 96])
    with pytest.raises(ReidsortError, match="matches no parameter"):
        _module(freeze=["backbone.*"])


def test_freeze_keeps_matching_parameters_out_of_the_optimiser():
    module = _module(freeze=["net.backbone.body.conv1.*", "net.backbone.body.layer1.*"])
    assert not module.net.backbone.body.conv1.weight.requires_grad
    optimizer = module.configure_optimizers()["optimizer"]
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(module.net.backbone.body.conv1.weight) not in optimised
    assert id(module.loss.uncertainty.s_det) in optimised
    assert id(module.loss.identity_head.classifier.weight) in optimised


def test_optimiser_and_schedule_are_fairmot_by_default():
    module = _module()
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert scheduler["interval"] == "epoch"
    rates = []
    for _ in range(30):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler["scheduler"].step()
    assert rates[19] == pytest.approx(1e-4) and rates[20] == pytest.approx(1e-5)
    plain = _module(scheduler=None, optimizer={"_target_": "torch.optim.SGD",
                                               "_partial_": True, "lr": 0.01})
    assert isinstance(plain.configure_optimizers(), torch.optim.SGD)


def test_one_fixed_batch_overfits():
    torch.manual_seed(0)
    module = _module(optimizer={"lr": 1e-3}).train()
    images, targets = _batch()
    optimizer = module.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(20):
        parts = module.loss(module.net(images), targets)
        optimizer.zero_grad()
        parts.total.backward()
        optimizer.step()
        losses.append(float(parts.total.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.6 * losses[0], losses
    fresh = _module()  # untrained, for scale
    with torch.no_grad():
        final = module.loss(module.net(images), targets)
        first = fresh.loss(fresh.net(images), targets)
    assert float(final.heatmap) < float(first.heatmap)


def _perfect_output(targets, size_mode: str = "ltrb") -> JDEOutput:
    """Maps a perfect network would give: a sure peak at each centre, the targets' size and
    offset there."""
    batch, _, h, w = targets.heatmap.shape
    heatmap = torch.where(targets.heatmap == 1, torch.tensor(8.0), torch.tensor(-8.0))
    channels = targets.size.shape[-1]
    size = torch.zeros(batch, channels, h * w)
    offset = torch.zeros(batch, 2, h * w)
    for b in range(batch):
        valid = targets.mask[b]
        index = targets.index[b][valid]
        size[b][:, index] = targets.size[b][valid].T
        offset[b][:, index] = targets.offset[b][valid].T
    return JDEOutput(heatmap, size.reshape(batch, channels, h, w),
                     offset.reshape(batch, 2, h, w), torch.zeros(batch, 16, h, w))


@pytest.mark.parametrize("size_mode", ["ltrb", "wh"])
def test_validation_decodes_perfect_maps_to_ap_one(size_mode):
    module = _module(net={**TINY_NET, "size_mode": size_mode})
    _, targets = _batch(size_mode=size_mode)
    frames = module.decode_frames(_perfect_output(targets, size_mode), targets)
    assert [len(gt) for _, gt in frames] == [3, 3]
    for dets, gt in frames:
        assert len(dets) >= 3
        found = dets[:3, :4]
        np.testing.assert_allclose(found[np.argsort(found[:, 0])], gt[np.argsort(gt[:, 0])],
                                   atol=1e-4)
    assert detection_scores(frames).ap == pytest.approx(1.0)
    # an untrained network does not
    images, _ = _batch()
    with torch.no_grad():
        untrained = module.decode_frames(module.net.eval()(images), targets)
    assert detection_scores(untrained).ap < 0.5
