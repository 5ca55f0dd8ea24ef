"""FairMOT knowledge distillation (reidsort.jde.distill / teacher): each loss on hand cases and
zero when student = teacher; distillation adds to the tracking loss (weight 0 = exactly the plain
loss); teachers come with trained weights from their files, frozen, crop persons the right way
round and match the project's embedders; the per-sample cache."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from jde_samples import tiny_net, write_jde_checkpoint
from tiny_models import tiny_module, write_checkpoint
from torch import nn

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from reidsort.jde.data import collate_jde, image_tensor
from reidsort.jde.distill import (
    DistillationLoss,
    distill_enabled,
    embedding_distillation,
    heatmap_distillation,
    kl_distillation,
    plain_config,
)
from reidsort.jde.losses import JDELoss, gather_at
from reidsort.jde.model import JDEOutput
from reidsort.jde.targets import build_targets
from reidsort.jde.teacher import JDETeacher, ReidTeacher, TeacherCache
from reidsort.utils.errors import ReidsortError

torch.set_num_threads(1)

INPUT_HW = (64, 96)
MAP_HW = (16, 24)
REID_SIZE = (64, 32)  # the tiny Re-ID teacher's (height, width)
NUM_IDS = 5
#: per sample: non-square person boxes (x1, y1, x2, y2) in input pixels, and their ids
BOXES = [np.array([[10, 4, 26, 52], [50, 10, 70, 60]], np.float32),
         np.array([[30, 8, 46, 56], [70, 20, 90, 40]], np.float32)]
IDS = [np.array([0, 3]), np.array([2, -1])]


def _frames(seed: int = 0) -> list[np.ndarray]:
    """Smooth random RGB frames (structure at the crops' scale, so orientation matters)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in BOXES:
        coarse = rng.integers(0, 256, (8, 12, 3)).astype(np.float32)
        import cv2

        frame = cv2.resize(coarse, INPUT_HW[::-1], interpolation=cv2.INTER_LINEAR)
        frame += rng.normal(0, 20, frame.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def _batch(frames: list[np.ndarray]):
    items = []
    for frame, boxes, ids in zip(frames, BOXES, IDS):
        targets = build_targets(boxes, ids, INPUT_HW, max_objects=6)
        targets = dataclasses.replace(targets, **{
            f.name: torch.from_numpy(np.ascontiguousarray(getattr(targets, f.name)))
            for f in dataclasses.fields(targets)})
        items.append((image_tensor(frame), targets))
    return collate_jde(items)


@pytest.fixture(scope="module")
def batch():
    frames = _frames()
    images, targets = _batch(frames)
    return frames, images, targets


@pytest.fixture(scope="module")
def reid_ckpt(tmp_path_factory):
    module = tiny_module("osnet_x0_25", num_classes=NUM_IDS)
    path = write_checkpoint(module, tmp_path_factory.mktemp("reid") / "checkpoints" / "last.ckpt",
                            image_size=REID_SIZE)
    return module, path


@pytest.fixture(scope="module")
def reid_teacher(reid_ckpt):
    return ReidTeacher.from_file(reid_ckpt[1], with_classifier=True)


class _TinyReid(nn.Module):
    """A fast stand-in Re-ID network: (embedding L2-normalised, logits)."""

    def __init__(self, dim: int = 8, num_classes: int = NUM_IDS) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, dim, 5, stride=2)
        self.bn = nn.BatchNorm2d(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, crops):
        pooled = self.bn(self.conv(crops)).relu().flatten(2).max(2).values
        return nn.functional.normalize(pooled, dim=1), self.fc(pooled)


def _tiny_teacher(dim: int = 8) -> ReidTeacher:
    return ReidTeacher(PreprocessSpec(REID_SIZE), net=_TinyReid(dim), feature_dim=dim,
                       num_classes=NUM_IDS)


def _student(dim: int, seed: int = 0, batch_size: int = 2, num_classes: int = 1) -> JDEOutput:
    gen = torch.Generator().manual_seed(seed)
    maps = [torch.randn(batch_size, c, *MAP_HW, generator=gen)
            for c in (num_classes, 2, 2, dim)]
    return JDEOutput(*(m.requires_grad_() for m in maps))


def _with_rows(embedding_map: torch.Tensor, targets, rows: torch.Tensor) -> torch.Tensor:
    """``embedding_map`` with ``rows`` written at the ground-truth centres (mask order)."""
    out = embedding_map.detach().clone()
    flat = out.flatten(2)
    mask = targets.mask.bool()
    for (b, k), row in zip(mask.nonzero().tolist(), rows):
        flat[b, :, int(targets.index[b, k])] = row
    return out.requires_grad_()


# ------------------------------------------------------------------- the loss functions
def test_embedding_losses_on_hand_cases_and_zero_when_equal():
    student = torch.tensor([[2.0, 0.0]])
    teacher = torch.tensor([[1.0, 1.0]]) / math.sqrt(2)
    assert embedding_distillation(student, teacher, "cosine").item() == pytest.approx(
        1 - 1 / math.sqrt(2), abs=1e-6)
    assert embedding_distillation(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 1.0]]),
                                  "mse").item() == pytest.approx(1.0)  # (1 + 1) / 2
    rows = torch.randn(5, 7)
    for kind in ("cosine", "mse"):
        assert embedding_distillation(rows, rows, kind).item() == pytest.approx(0, abs=1e-6)
        assert embedding_distillation(rows, rows.flip(0), kind).item() > 0.1
    with pytest.raises(ReidsortError, match="kind must be one of"):
        embedding_distillation(rows, rows, "l1")


def test_kl_on_a_hand_case_with_temperature_scaling():
    teacher = torch.tensor([[0.0, 2 * math.log(3)]])
    student = torch.zeros(1, 2)
    # T = 2: teacher softmax [1/4, 3/4], student [1/2, 1/2]; x T^2 = 4
    expected_t2 = 4 * (0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert kl_distillation(student, teacher, 2.0).item() == pytest.approx(expected_t2, rel=1e-5)
    # T = 1: teacher [1/10, 9/10]
    expected_t1 = 0.1 * math.log(0.2) + 0.9 * math.log(1.8)
    assert kl_distillation(student, teacher, 1.0).item() == pytest.approx(expected_t1, rel=1e-5)
    logits = torch.randn(4, 6)
    assert kl_distillation(logits, logits, 3.0).item() == pytest.approx(0, abs=1e-6)


def test_heatmap_losses_on_hand_cases_and_zero_when_equal():
    student = torch.zeros(1, 1, 1, 2)  # p = 0.5
    teacher = torch.full((1, 1, 1, 2), math.log(3))  # p = 0.75
    assert heatmap_distillation(student, teacher, "mse", 2.0).item() == pytest.approx(
        2 * 0.0625 / 2)
    bce = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))
    assert heatmap_distillation(student, teacher, "focal", 1.0).item() == pytest.approx(
        2 * 0.0625 * bce, rel=1e-5)
    maps = torch.randn(2, 1, 4, 5)
    for kind in ("mse", "focal"):
        assert heatmap_distillation(maps, maps, kind).item() == 0.0
        assert heatmap_distillation(maps, -maps, kind).item() > 0


# ---------------------------------------------------------------- adding, never replacing
def test_weight_zero_gives_exactly_the_tracking_loss_and_default_adds(batch):
    _, images, targets = batch
    config = {"reid": {"path": None, "embedding_weight": 0.0, "logits_weight": 0.0},
              "jde": {"path": None, "heatmap_weight": 0, "embedding_weight": 0}}
    assert not distill_enabled(config)
    distill = DistillationLoss(config, embedding_dim=8, num_ids=NUM_IDS)  # no teacher loaded
    assert distill.teachers == [] and list(distill.parameters()) == []

    def step(distill_loss):
        torch.manual_seed(0)
        tracking = JDELoss(8, NUM_IDS)
        student = _student(8)
        loss = tracking(student, targets).total
        if distill_loss is not None:
            loss = loss + distill_loss(student, targets, images,
                                       identity_head=tracking.identity_head).total
        loss.backward()
        return loss, [p.grad for p in (*student, *tracking.parameters())]

    plain, plain_grads = step(None)
    zero, zero_grads = step(distill)
    assert torch.equal(plain, zero)
    assert all(torch.equal(a, b) for a, b in zip(plain_grads, zero_grads))

    # default weights: the tracking loss is still there at weight 1, distillation on top
    active = DistillationLoss({"reid": {"embedding_weight": 0.5, "logits_weight": 0.25},
                               "cache": False}, embedding_dim=8, num_ids=NUM_IDS,
                              reid_teacher=_tiny_teacher(8))
    added, added_grads = step(active)
    torch.manual_seed(0)
    tracking = JDELoss(8, NUM_IDS)
    parts = active(_student(8), targets, images, identity_head=tracking.identity_head)
    assert parts.embedding > 0 and parts.logits > 0
    assert parts.total.item() == pytest.approx(0.5 * parts.embedding.item()
                                               + 0.25 * parts.logits.item(), rel=1e-6)
    assert added.item() == pytest.approx(plain.item() + parts.total.item(), rel=1e-6)
    # s_det / s_id see only the tracking loss: their gradients are unchanged by distillation
    n_student = len(_student(8))
    for a, b in zip(plain_grads[n_student:][-2:], added_grads[n_student:][-2:]):
        assert torch.allclose(a, b)


# ------------------------------------------------------------------------ Re-ID teacher
def test_reid_teacher_from_a_checkpoint_equals_the_torch_embedder(reid_ckpt, reid_teacher, batch):
    from reidsort.embedders.torch import TorchEmbedder

    module, path = reid_ckpt
    frames, images, targets = batch
    out = reid_teacher(images, targets)
    assert out.embedding.shape == (int(targets.mask.sum()), reid_teacher.feature_dim)
    embedder = TorchEmbedder(path, device="cpu")
    expected = np.concatenate([embedder.embed(np.ascontiguousarray(frame[:, :, ::-1]), boxes)
                               for frame, boxes in zip(frames, BOXES)])
    np.testing.assert_allclose(out.embedding.numpy(), expected, atol=1e-6)
    # the logits: the checkpoint's classifier on its BNNeck feature
    assert out.logits.shape == (len(expected), NUM_IDS)
    crops, _ = reid_teacher.crops(images, [targets.boxes[b][targets.mask[b]] for b in range(2)])
    from reidsort.data.preprocess import preprocess_crops

    module.eval()
    with torch.no_grad():
        feature = module.backbone(torch.from_numpy(
            preprocess_crops(crops, reid_teacher.spec, input_order="RGB")))
        logits = module.head.classifier(module.head.bn(feature))
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
    # weights come from the file: the same architecture with other weights disagrees
    other = ReidTeacher.from_file(write_checkpoint(tiny_module("osnet_x0_25", NUM_IDS, seed=9),
                                                   path.parent.parent / "other" / "last.ckpt",
                                                   image_size=REID_SIZE))
    assert not torch.allclose(other(images, targets).embedding, out.embedding, atol=1e-3)


def test_onnx_teacher_matches_its_checkpoint_and_has_no_logits(reid_ckpt, reid_teacher, batch,
                                                               tmp_path):
    from reidsort.export.onnx import export_onnx

    _, path = reid_ckpt
    _, images, targets = batch
    onnx_path = export_onnx(path, tmp_path / "teacher.onnx", exporter="legacy", num_crops=2,
                            simplify=False)
    teacher = ReidTeacher.from_file(onnx_path)
    out = teacher(images, targets)
    assert out.logits is None
    torch.testing.assert_close(out.embedding, reid_teacher(images, targets).embedding,
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ReidsortError, match="no identity classifier"):
        DistillationLoss({"reid": {"path": str(onnx_path), "logits_weight": 1.0}},
                         embedding_dim=8, num_ids=NUM_IDS)


def test_teacher_crops_keep_height_and_width(reid_ckpt, reid_teacher, batch):
    from reidsort.embedders.torch import TorchEmbedder

    frames, images, targets = batch
    x1, y1, x2, y2 = (int(v) for v in BOXES[0][0])  # 48 tall, 16 wide
    crops, counts = reid_teacher.crops(images, [targets.boxes[0][targets.mask[0]]])
    assert counts == [2] and crops[0].shape == (y2 - y1, x2 - x1, 3)
    crop = frames[0][y1:y2, x1:x2]
    np.testing.assert_array_equal(crops[0], crop)  # the un-normalised pixels exactly
    got = reid_teacher(images, targets).embedding[0].numpy()
    embedder = TorchEmbedder(reid_ckpt[1], device="cpu")  # the tracker's embedder=torch
    right = embedder.embed_crops([np.ascontiguousarray(crop[:, :, ::-1])])[0]
    transposed = embedder.embed_crops([np.ascontiguousarray(crop[:, :, ::-1].transpose(1, 0, 2))])
    np.testing.assert_allclose(got, right, atol=1e-6)
    assert np.abs(got - transposed[0]).max() > 1e-2  # a transposed crop is another embedding
    # and so is the crop fed at the swapped input size (the study's height / width swap)
    swapped = copy.copy(reid_teacher)
    swapped.spec = PreprocessSpec(REID_SIZE[::-1])
    assert np.abs(swapped(images, targets).embedding[0].numpy() - got).max() > 1e-2


def test_kl_needs_a_classifier_over_the_students_identities(reid_ckpt, reid_teacher, batch):
    _, path = reid_ckpt
    _, images, targets = batch
    with pytest.raises(ReidsortError, match=f"classifies {NUM_IDS} identities and the student 7"):
        DistillationLoss({"reid": {"path": str(path), "logits_weight": 1.0}}, embedding_dim=8,
                         num_ids=7)
    distill = DistillationLoss({"reid": {"embedding_weight": 0.0, "logits_weight": 1.0,
                                         "temperature": 3.0}, "cache": False},
                               embedding_dim=8, num_ids=NUM_IDS, reid_teacher=reid_teacher)
    head = JDELoss(8, NUM_IDS).identity_head
    student = _student(8)
    parts = distill(student, targets, images, identity_head=head)
    rows = gather_at(student.embedding, targets.index)[targets.mask.bool()]
    has_id = targets.ids[targets.mask.bool()] >= 0
    assert int(has_id.sum()) == 3  # the id -1 person takes no part in KL
    expected = kl_distillation(head(rows[has_id]),
                               reid_teacher(images, targets).logits[has_id], 3.0)
    torch.testing.assert_close(parts.logits, expected)
    assert parts.embedding.item() == 0.0
    with pytest.raises(ReidsortError, match="identity head"):
        distill(student, targets, images)


def test_reid_embedding_loss_is_zero_when_the_student_equals_the_teacher(reid_teacher, batch):
    _, images, targets = batch
    taught = reid_teacher(images, targets)
    dim = reid_teacher.feature_dim
    for kind in ("cosine", "mse"):
        distill = DistillationLoss({"reid": {"embedding_loss": kind}, "cache": False},
                                   embedding_dim=dim, reid_teacher=reid_teacher)
        student = _student(dim)
        student = student._replace(embedding=_with_rows(student.embedding, targets,
                                                        taught.embedding))
        parts = distill(student, targets, images)
        assert parts.embedding.item() == pytest.approx(0, abs=1e-6), kind
        assert distill(_student(dim), targets, images).embedding.item() > 1e-3


def test_projection_exists_and_learns_only_when_dims_differ(batch):
    _, images, targets = batch
    config = {"reid": {"embedding_weight": 1.0}, "cache": False}
    same = DistillationLoss(config, embedding_dim=8, reid_teacher=_tiny_teacher(8))
    assert same.reid_projection is None and list(same.parameters()) == []

    differ = DistillationLoss(config, embedding_dim=12, reid_teacher=_tiny_teacher(8))
    assert isinstance(differ.reid_projection, nn.Linear)
    assert differ.reid_projection.weight.shape == (8, 12)
    assert [p is differ.reid_projection.weight for p in differ.parameters()] == [True]
    student = _student(12)
    parts = differ(student, targets, images)
    parts.total.backward()
    grad = differ.reid_projection.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with torch.no_grad():  # the value goes through it
        differ.reid_projection.weight.mul_(-1)
    assert differ(student, targets, images).embedding.item() != pytest.approx(
        parts.embedding.item())
    assert any(key.startswith("reid_projection.") for key in differ.state_dict())


# ---------------------------------------------------------------------- FairMOT teacher
def test_jde_teacher_losses_are_zero_for_the_same_network_and_not_otherwise(batch):
    _, images, targets = batch
    teacher_net = tiny_net(seed=2, embedding_dim=16)
    for heatmap_loss, embedding_loss in (("mse", "cosine"), ("focal", "mse")):
        distill = DistillationLoss({"jde": {"heatmap_loss": heatmap_loss,
                                            "embedding_loss": embedding_loss}, "cache": False},
                                   embedding_dim=16, jde_teacher=teacher_net)
        student_net = copy.deepcopy(teacher_net).eval()  # same weights and BN statistics
        parts = distill(student_net(images), targets, images)
        assert parts.heatmap.item() == pytest.approx(0, abs=1e-7)
        assert parts.embedding_map.item() == pytest.approx(0, abs=1e-6)
        other = distill(tiny_net(seed=5, embedding_dim=16)(images), targets, images)
        assert other.heatmap.item() > 1e-4 and other.embedding_map.item() > 1e-4
    # a smaller student: projection onto the teacher's 16 dims
    small = DistillationLoss({"jde": {}, "cache": False}, embedding_dim=8,
                             jde_teacher=teacher_net)
    assert small.jde_projection is not None and small.jde_projection.weight.shape == (16, 8)
    with pytest.raises(ReidsortError, match="same classes"):
        DistillationLoss({"jde": {}}, embedding_dim=16, num_classes=2, jde_teacher=teacher_net)


def test_jde_teacher_from_a_checkpoint_and_renormalisation(tmp_path, batch):
    _, images, targets = batch
    net = tiny_net(seed=4)
    path = write_jde_checkpoint(net, tmp_path / "teacher" / "last.ckpt")
    teacher = JDETeacher.from_file(path)
    with torch.no_grad():
        expected = net(images).heatmap
    torch.testing.assert_close(teacher(images, targets).heatmap, expected)
    # a teacher trained with another normalisation sees the same pixels in its own units
    other = JDETeacher(tiny_net(seed=4), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    unit = images * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) \
        + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(other.teacher_input(images), (unit - 0.5) / 0.25)
    with pytest.raises(ReidsortError, match="is a FairMOT checkpoint"):
        ReidTeacher.from_file(path)


# -------------------------------------------------------------------- trained, frozen
def test_a_teacher_without_weights_is_refused(tmp_path, reid_ckpt):
    for config, key in (({"reid": {}}, "distill.reid.path"), ({"jde": {"path": ""}},
                                                              "distill.jde.path")):
        with pytest.raises(ReidsortError, match=f"{key} is not set") as info:
            DistillationLoss(config, embedding_dim=8, num_ids=NUM_IDS)
        assert "\n" not in str(info.value)
    with pytest.raises(ReidsortError, match="teacher weights not found"):
        DistillationLoss({"jde": {"path": str(tmp_path / "nope.ckpt")}}, embedding_dim=8)
    # a Re-ID checkpoint is no FairMOT teacher (and gets no randomly initialised JDENet)
    with pytest.raises(ReidsortError, match="Re-ID checkpoint"):
        DistillationLoss({"jde": {"path": str(reid_ckpt[1])}}, embedding_dim=8)
    # a Re-ID checkpoint whose weights were stripped
    from reidsort.reid.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(reid_ckpt[1])
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                if not k.startswith("backbone.conv1")}
    stripped = tmp_path / "checkpoints" / "stripped.ckpt"
    stripped.parent.mkdir()
    torch.save(checkpoint, stripped)
    (stripped.parent / "config.yaml").write_text((reid_ckpt[1].parent / "config.yaml").read_text())
    with pytest.raises(ReidsortError, match="weights do not fit"):
        ReidTeacher.from_file(stripped)


def test_teachers_get_no_gradients_and_stay_unchanged(reid_teacher, batch):
    _, images, targets = batch
    jde_net = tiny_net(seed=6, embedding_dim=16)
    distill = DistillationLoss({"reid": {"logits_weight": 1.0}, "jde": {}, "cache": False},
                               embedding_dim=16, num_ids=NUM_IDS, reid_teacher=reid_teacher,
                               jde_teacher=jde_net)
    distill.train()  # what Lightning does to the student's modules
    teachers = {"reid": reid_teacher.net, "jde": jde_net}
    before = {name: copy.deepcopy(net.state_dict()) for name, net in teachers.items()}
    head = JDELoss(16, NUM_IDS).identity_head
    student_net = tiny_net(seed=7, embedding_dim=16).train()
    parts = distill(student_net(images), targets, images, identity_head=head)
    assert all(getattr(parts, n) > 0 for n in ("embedding", "logits", "heatmap",
                                               "embedding_map"))
    parts.total.backward()
    assert any(p.grad is not None for p in student_net.parameters())
    for name, net in teachers.items():
        assert not net.training, name
        for param in net.parameters():
            assert not param.requires_grad and param.grad is None, name
        after = net.state_dict()
        assert all(torch.equal(before[name][k], after[k]) for k in after), name  # BN stats too
    # not part of the student's module tree: not saved, not optimised
    assert not any(k.startswith(("reid_teacher", "jde_teacher")) for k in distill.state_dict())
    teacher_ids = {id(p) for net in teachers.values() for p in net.parameters()}
    assert not any(id(p) in teacher_ids for p in distill.parameters())


# ---------------------------------------------------------------------------------- cache
def test_cache_hit_gives_identical_values_and_a_changed_sample_misses(batch):
    _, images, targets = batch
    teacher = _tiny_teacher(8)
    cache = teacher.enable_cache()
    first = teacher(images, targets)
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 2)
    # a hit must not run the network: break it, the cached values still come back
    with torch.no_grad():
        teacher.net.conv.weight.add_(1.0)
    second = teacher(images, targets)
    assert (cache.hits, cache.misses) == (2, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, second) if a is not None)
    # sample 1 augmented differently: it misses (recomputed), sample 0 still hits
    changed = _frames()
    changed[1] = np.ascontiguousarray(changed[1][:, ::-1])
    images2, targets2 = _batch(changed)
    with torch.no_grad():
        teacher.net.conv.weight.sub_(1.0)
    third = teacher(images2, targets2)
    assert (cache.hits, cache.misses) == (3, 3)
    n0 = int(targets.mask[0].sum())
    assert torch.equal(third.embedding[:n0], first.embedding[:n0])
    assert not torch.allclose(third.embedding[n0:], first.embedding[n0:])
    # keyed by dataset index: same key, other content = miss, never a stale value
    teacher.enable_cache()
    teacher(images, targets, keys=[10, 11])
    teacher(images2, targets2, keys=[10, 11])
    assert (teacher.cache.hits, teacher.cache.misses) == (1, 3)
    # bounded memory
    full = TeacherCache(max_mb=0)
    teacher.cache = full
    teacher(images, targets)
    assert len(full) == 0


def test_auto_cache_switches_off_after_an_epoch_without_hits(batch):
    _, images, targets = batch
    distill = DistillationLoss({"reid": {}, "cache": "auto"}, embedding_dim=8,
                               reid_teacher=_tiny_teacher(8))
    teacher = distill.reid_teacher
    changed = [np.ascontiguousarray(frame[:, ::-1]) for frame in _frames()]
    for epoch, (images_e, targets_e) in enumerate([(images, targets), _batch(changed)]):
        distill.on_epoch_start(epoch)
        distill(_student(8), targets_e, images_e)
        assert teacher.cache is not None  # the first epoch cannot hit
    distill.on_epoch_start(2)  # epoch 1 had lookups and no hit: augmented data
    assert teacher.cache is None
    kept = DistillationLoss({"reid": {}, "cache": "auto"}, embedding_dim=8,
                            reid_teacher=_tiny_teacher(8))
    for epoch in range(3):
        kept.on_epoch_start(epoch)
        kept(_student(8), targets, images)
    assert kept.reid_teacher.cache is not None and kept.reid_teacher.cache.hits == 2
    assert DistillationLoss({"reid": {}, "cache": False}, embedding_dim=8,
                            reid_teacher=_tiny_teacher(8)).reid_teacher.cache is None


# --------------------------------------------------------------------------------- config
def test_config_is_plain_and_checked():
    import yaml
    from omegaconf import OmegaConf

    config = plain_config(OmegaConf.create({"reid": {"path": "t.ckpt", "image_size": [64, 32]},
                                            "jde": None}))
    assert yaml.safe_load(yaml.safe_dump(config)) == config  # plain types only
    assert config["reid"]["temperature"] == 4.0 and config["cache"] == "auto"
    assert plain_config(None) is None
    for bad, match in (({"teacher": {}}, "unknown keys"),
                       ({"reid": {"embeding_weight": 1}}, "unknown keys"),
                       ({"reid": {"embedding_weight": -1}}, ">= 0"),
                       ({"reid": {"temperature": 0}}, "temperature must be > 0"),
                       ({"jde": {"heatmap_loss": "l2"}}, "heatmap_loss must be one of"),
                       ({"cache": "yes"}, "distill.cache")):
        with pytest.raises(ReidsortError, match=match):
            plain_config(bad)
