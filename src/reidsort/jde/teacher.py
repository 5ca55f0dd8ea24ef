"""Frozen teachers for FairMOT knowledge distillation (:mod:`reidsort.jde.distill`).

Two kinds, each called as ``teacher(images, targets, keys=None) -> TeacherOutput``:

* :class:`ReidTeacher`: a trained Re-ID model, a ``task=train`` ``.ckpt`` (the network the
  project's torch embedder runs, plus the identity classifier for KL) or a ``task=export``
  ``.onnx`` / TorchScript ``.pt`` (through the project's ONNX / torch embedders; embeddings
  only). It embeds the crop of every ground-truth person: the box (``targets.boxes``, xyxy in
  network-input pixels) is cut from the *un-normalised* student input (the student's
  mean / std undone, back to the uint8 levels the data pipeline produced) and goes through the
  project's crop preprocessing (:func:`reidsort.data.preprocess.preprocess_crops`) at the
  teacher's own input (height, width) and normalisation, exactly as ``embedder=torch`` /
  ``embedder=onnx`` embed a tracked box (crop rows are y, columns x: never transposed).
* :class:`JDETeacher`: a larger trained FairMOT (:class:`~reidsort.jde.model.JDENet` from a
  ``task=jde`` ``.ckpt`` through :func:`reidsort.jde.checkpoint.load_jde_model`, or a trained
  JDENet in memory). It sees the student's frame (same (H, W), re-normalised to the teacher's
  mean / std) so its maps line up cell for cell with the student's; it returns its heatmap
  logits and its embedding map read at the ground-truth centres.

Both refuse to exist without trained weights (no path: one-line :class:`ReidsortError`; a file
whose weights do not fit: the loaders' one-line errors), run in eval mode under
``torch.no_grad()`` with ``requires_grad=False`` on every parameter, and are *not*
``nn.Module`` s: a LightningModule holding one neither trains, saves, nor ``.train()`` s its
network (it follows the student's device lazily).

Caching (:class:`TeacherCache`): a teacher's per-sample outputs are stored on the CPU under a
key (the dataset index when the caller has it, else the sample's content) together with a
fingerprint of the sample (BLAKE2 of the input tensor's bytes, the boxes and centre indices); an
entry is used only when the fingerprint matches, so an augmented (changed) sample misses and
the cache is never stale whatever the epoch. Memory is bounded by ``max_mb``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PIXEL_SCALE, PreprocessSpec
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: crops per teacher forward pass
TEACHER_MAX_BATCH = 256
#: default bound of a teacher cache
CACHE_MAX_MB = 2048
#: EmbeddingNet's epsilon (reidsort.export.model.L2_EPS), so embeddings match the embedders'
L2_EPS = 1e-12


class TeacherOutput(NamedTuple):
    """A teacher's view of a batch. Rows of ``embedding`` / ``logits`` are the ground-truth
    persons of the batch (``targets.mask``) in row-major (sample, slot) order, the order of
    ``gather_at(map, targets.index)[targets.mask]``."""

    embedding: Tensor  # (N, D_teacher): Re-ID crop embeddings (L2-normalised) or JDE map rows
    logits: Tensor | None  # (N, num_ids_teacher) identity logits (Re-ID .ckpt teachers only)
    heatmap: Tensor | None  # (B, C, h, w) heatmap LOGITS (JDE teachers only)


@dataclass(frozen=True)
class SampleOutput:
    """One sample's teacher outputs (the cache's unit)."""

    embedding: Tensor  # (n, D)
    logits: Tensor | None = None  # (n, C)
    heatmap: Tensor | None = None  # (C, h, w)

    def to(self, device: torch.device | str) -> SampleOutput:
        return SampleOutput(*(None if t is None else t.to(device) for t in
                              (self.embedding, self.logits, self.heatmap)))

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.embedding, self.logits,
                                                          self.heatmap) if t is not None)


def sample_fingerprint(image: Tensor, boxes: Tensor, index: Tensor | None = None) -> str:
    """BLAKE2 of one sample's input tensor (3, H, W), its persons' boxes (n, 4) and centre
    indices (n,): equal exactly when the teacher would see the same thing."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (image, boxes, index):
        if tensor is None:
            continue
        array = tensor.detach().to("cpu").contiguous().numpy()
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class TeacherCache:
    """Per-sample teacher outputs on the CPU, ``key -> (fingerprint, SampleOutput)``.

    ``get`` returns an entry only when its fingerprint matches (a changed sample misses and its
    new outputs replace the old ones on ``put``). New entries stop being stored once
    ``max_mb`` is used. ``hits`` / ``misses`` count lookups since the last ``reset_counts``.
    """

    def __init__(self, max_mb: float = CACHE_MAX_MB) -> None:
        if float(max_mb) < 0:
            raise ReidsortError(f"distill cache_max_mb must be >= 0, got {max_mb}")
        self.max_bytes = int(float(max_mb) * 2 ** 20)
        self._entries: dict[Any, tuple[str, SampleOutput]] = {}
        self.bytes = 0
        self.hits = self.misses = 0
        self._full_logged = False

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any, fingerprint: str) -> SampleOutput | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == fingerprint:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, key: Any, fingerprint: str, value: SampleOutput) -> None:
        stored = SampleOutput(*(None if t is None else t.detach().to("cpu", copy=True)
                                for t in (value.embedding, value.logits, value.heatmap)))
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1].nbytes()
        if self.bytes + stored.nbytes() > self.max_bytes:
            if not self._full_logged:
                log.info("distill: teacher cache full (%d entries, %.0f MB); later samples "
                         "are not cached", len(self._entries), self.bytes / 2 ** 20)
                self._full_logged = True
            return
        self._entries[key] = (fingerprint, stored)
        self.bytes += stored.nbytes()

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
        self._full_logged = False

    def reset_counts(self) -> None:
        self.hits = self.misses = 0


def _field(targets: Any, name: str) -> Tensor:
    value = targets.get(name) if isinstance(targets, Mapping) else getattr(targets, name, None)
    if not isinstance(value, Tensor):
        raise ReidsortError(f"distillation: targets.{name} must be a tensor, got "
                            f"{type(value).__name__}")
    return value


def freeze(net: nn.Module) -> nn.Module:
    """``net`` in eval mode with no parameter requiring a gradient."""
    for param in net.parameters():
        param.requires_grad_(False)
    return net.eval()


def _check_norm(values: Sequence[float], what: str) -> tuple[float, float, float]:
    out = tuple(float(v) for v in values)
    if len(out) != 3:
        raise ReidsortError(f"distillation: {what} needs 3 values, got {list(values)}")
    return out  # type: ignore[return-value]


class Teacher:
    """The cache and batching shared by the teachers; subclasses compute per-sample outputs."""

    kind = "teacher"

    def __init__(self, input_mean: Sequence[float] = IMAGENET_MEAN,
                 input_std: Sequence[float] = IMAGENET_STD) -> None:
        #: the student input's normalisation: input = (rgb / 255 - mean) / std
        self.input_mean = _check_norm(input_mean, "the student's mean")
        self.input_std = _check_norm(input_std, "the student's std")
        self.cache: TeacherCache | None = None

    def enable_cache(self, max_mb: float = CACHE_MAX_MB) -> TeacherCache:
        self.cache = TeacherCache(max_mb)
        return self.cache

    def disable_cache(self) -> None:
        self.cache = None

    @torch.no_grad()
    def __call__(self, images: Tensor, targets: Any,
                 keys: Sequence[Any] | None = None) -> TeacherOutput:
        mask = _field(targets, "mask").bool()
        boxes, index = _field(targets, "boxes"), _field(targets, "index")
        batch = images.shape[0]
        if keys is not None and len(keys) != batch:
            raise ReidsortError(f"distillation: {len(keys)} cache keys for {batch} samples")
        per_sample: list[SampleOutput | None] = [None] * batch
        prints: list[str] = []
        if self.cache is not None:
            prints = [sample_fingerprint(images[b], boxes[b][mask[b]], index[b][mask[b]])
                      for b in range(batch)]
            for b in range(batch):
                key = prints[b] if keys is None else keys[b]
                per_sample[b] = self.cache.get(key, prints[b])
        missing = [b for b in range(batch) if per_sample[b] is None]
        if missing:
            computed = self._compute(images[missing], [boxes[b][mask[b]] for b in missing],
                                     [index[b][mask[b]] for b in missing])
            for b, value in zip(missing, computed):
                per_sample[b] = value
                if self.cache is not None:
                    self.cache.put(prints[b] if keys is None else keys[b], prints[b], value)
        outputs = [value.to(images.device) for value in per_sample]  # type: ignore[union-attr]
        embedding = torch.cat([o.embedding for o in outputs])
        logits = (torch.cat([o.logits for o in outputs])
                  if outputs and outputs[0].logits is not None else None)
        heatmap = (torch.stack([o.heatmap for o in outputs])
                   if outputs and outputs[0].heatmap is not None else None)
        return TeacherOutput(embedding, logits, heatmap)

    def _compute(self, images: Tensor, boxes: list[Tensor], index: list[Tensor]
                 ) -> list[SampleOutput]:
        raise NotImplementedError

    def uint8_images(self, images: Tensor) -> np.ndarray:
        """(B, H, W, 3) uint8 RGB: the student's normalisation undone (the data pipeline's
        images are uint8 levels, so this recovers them exactly)."""
        mean = torch.tensor(self.input_mean, dtype=torch.float32, device=images.device)
        std = torch.tensor(self.input_std, dtype=torch.float32, device=images.device)
        rgb = images.float() * (std * PIXEL_SCALE).view(1, 3, 1, 1) \
            + (mean * PIXEL_SCALE).view(1, 3, 1, 1)
        return rgb.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# ============================================================================== Re-ID teacher
class _ReidNet(nn.Module):
    """A Re-ID ``.ckpt``'s inference network (the embedders' EmbeddingNet: backbone [+ BNNeck],
    L2-normalised) and, when wanted, its identity classifier on the BNNeck feature."""

    def __init__(self, backbone: nn.Module, neck: nn.Module, classifier_bn: nn.Module | None,
                 classifier: nn.Linear | None) -> None:
        super().__init__()
        self.backbone, self.neck = backbone, neck
        self.classifier_bn, self.classifier = classifier_bn, classifier

    def forward(self, crops: Tensor) -> tuple[Tensor, Tensor | None]:
        pooled = self.backbone(crops)
        features = self.neck(pooled)  # EmbeddingNet.forward, operation for operation
        embedding = features / features.norm(p=2, dim=1, keepdim=True).clamp_min(L2_EPS)
        logits = None
        if self.classifier is not None:
            logits = self.classifier(self.classifier_bn(pooled))
        return embedding, logits


class ReidTeacher(Teacher):
    """Embeddings (and identity logits) of the ground-truth persons' crops (module docstring).

    Build it with :meth:`from_file`; the constructor takes either ``net`` (an ``nn.Module``
    ``crops (N, 3, h, w) -> (embedding (N, D) L2-normalised, logits (N, C) | None)``) or
    ``embedder`` (an object with ``embed_crops(crops_bgr) -> (N, D)`` and ``feature_dim``, e.g.
    :class:`reidsort.embedders.onnx.OnnxEmbedder`), and the teacher's ``spec`` (input size,
    mean / std, channel order).
    """

    kind = "reid"

    def __init__(self, spec: PreprocessSpec, *, net: nn.Module | None = None,
                 embedder: Any = None, feature_dim: int | None = None,
                 num_classes: int | None = None, input_mean: Sequence[float] = IMAGENET_MEAN,
                 input_std: Sequence[float] = IMAGENET_STD, source: str = "",
                 max_batch: int = TEACHER_MAX_BATCH) -> None:
        super().__init__(input_mean, input_std)
        if (net is None) == (embedder is None):
            raise ReidsortError("ReidTeacher: give exactly one of net or embedder")
        self.spec = spec
        self.net = freeze(net) if net is not None else None
        self.embedder = embedder
        self.feature_dim = int(feature_dim if feature_dim is not None
                               else embedder.feature_dim)
        #: identities of the classifier (None: no classifier, KL impossible)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.source = source
        self.max_batch = int(max_batch)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None, *, image_size: Sequence[int] | None = None,
                  with_classifier: bool = False, input_mean: Sequence[float] = IMAGENET_MEAN,
                  input_std: Sequence[float] = IMAGENET_STD, device: str = "auto",
                  num_threads: int | None = None) -> ReidTeacher:
        """A teacher from a ``task=train`` ``.ckpt`` (``image_size`` overrides the training
        config's input size) or a ``task=export`` ``.onnx`` / TorchScript ``.pt``.
        ``with_classifier``: load the identity classifier (``.ckpt`` only) for KL."""
        from reidsort.export.file_kind import ONNX_MODEL, TORCHSCRIPT, sniff_model_file

        path = _teacher_path(path, "distill.reid.path", "a Re-ID model: the .ckpt of task=train "
                             "or the .onnx of task=export")
        kind = sniff_model_file(path)
        if kind in (ONNX_MODEL, TORCHSCRIPT):
            if with_classifier:
                raise ReidsortError(
                    f"{path}: an exported Re-ID model ({kind}) has no identity classifier, so "
                    "there are no teacher logits for KL distillation; pass the task=train .ckpt "
                    "it was exported from as distill.reid.path, or set distill.reid.logits_weight=0")
            return cls._from_export(path, kind == ONNX_MODEL, image_size, input_mean, input_std,
                                    device, num_threads)
        return cls._from_checkpoint(path, image_size, with_classifier, input_mean, input_std)

    @classmethod
    def _from_export(cls, path: Path, onnx: bool, image_size, input_mean, input_std, device,
                     num_threads) -> ReidTeacher:
        if onnx:
            from reidsort.embedders.onnx import OnnxEmbedder

            embedder = OnnxEmbedder(path, max_batch=TEACHER_MAX_BATCH, num_threads=num_threads,
                                    input_size=image_size)
        else:
            from reidsort.embedders.torch import TorchEmbedder

            embedder = TorchEmbedder(path, max_batch=TEACHER_MAX_BATCH, device=device,
                                     num_threads=num_threads, image_size=image_size)
            freeze(embedder.net)
        return cls(embedder.spec, embedder=embedder, input_mean=input_mean, input_std=input_std,
                   source=str(path))

    @classmethod
    def _from_checkpoint(cls, path: Path, image_size, with_classifier, input_mean,
                         input_std) -> ReidTeacher:
        from reidsort.export.model import load_checkpoint_net
        from reidsort.jde.checkpoint import is_jde_checkpoint
        from reidsort.reid.checkpoints import load_checkpoint

        checkpoint = load_checkpoint(path)
        if is_jde_checkpoint(checkpoint):
            raise ReidsortError(f"{path}: is a FairMOT checkpoint (task=jde), not a Re-ID model; "
                                "pass it as distill.jde.path for heatmap / embedding-map "
                                "distillation")
        loaded = load_checkpoint_net(path, image_size)  # what embedder=torch runs
        net = loaded.net
        classifier_bn = classifier = None
        num_classes = None
        if with_classifier:
            classifier_bn, classifier = _classifier_from_state(checkpoint, path,
                                                               int(net.feature_dim))
            num_classes = int(classifier.out_features)
        teacher_net = _ReidNet(net.backbone, net.neck, classifier_bn, classifier)
        return cls(loaded.metadata.preprocess_spec(), net=teacher_net,
                   feature_dim=int(net.feature_dim), num_classes=num_classes,
                   input_mean=input_mean, input_std=input_std, source=str(path))

    def crops(self, images: Tensor, boxes: list[Tensor]) -> tuple[list[np.ndarray], list[int]]:
        """RGB uint8 crops (rows y1:y2, columns x1:x2 of the un-normalised image, boxes clipped
        as the embedders clip them) and the number per sample."""
        from reidsort.embedders.base import clip_boxes_xyxy

        frames = self.uint8_images(images)
        crops: list[np.ndarray] = []
        counts: list[int] = []
        for frame, sample_boxes in zip(frames, boxes):
            height, width = frame.shape[:2]
            bounds = clip_boxes_xyxy(sample_boxes.detach().cpu().double().numpy(), height, width)
            crops.extend(frame[y1:y2, x1:x2] for x1, y1, x2, y2 in bounds)
            counts.append(len(bounds))
        return crops, counts

    def _compute(self, images: Tensor, boxes: list[Tensor], index: list[Tensor]
                 ) -> list[SampleOutput]:
        crops, counts = self.crops(images, boxes)
        embedding, logits = self.embed_crops(crops, images.device)
        out, start = [], 0
        for count in counts:
            rows = slice(start, start + count)
            out.append(SampleOutput(embedding[rows], None if logits is None else logits[rows]))
            start += count
        return out

    @torch.no_grad()
    def embed_crops(self, crops_rgb: Sequence[np.ndarray], device: torch.device | str = "cpu"
                    ) -> tuple[Tensor, Tensor | None]:
        """(N, D) L2-normalised embeddings and (N, C) logits (or None) of RGB uint8 crops."""
        from reidsort.data.preprocess import preprocess_crops

        if self.embedder is not None:
            features = self.embedder.embed_crops([crop[:, :, ::-1] for crop in crops_rgb]) \
                if crops_rgb else np.zeros((0, self.feature_dim), np.float32)
            return torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(device), None
        net = self._net_on(device)
        height, width = self.spec.size_hw
        if not crops_rgb:
            empty = torch.zeros(0, self.feature_dim, device=device)
            return empty, (None if self.num_classes is None
                           else torch.zeros(0, self.num_classes, device=device))
        embeddings, logits = [], []
        for start in range(0, len(crops_rgb), self.max_batch):
            batch = preprocess_crops(crops_rgb[start:start + self.max_batch], self.spec,
                                     input_order="RGB")
            assert batch.shape[2:] == (height, width)  # (N, 3, H, W): never transposed
            embedding, logit = net(torch.from_numpy(batch).to(device))
            embeddings.append(embedding.float())
            if logit is not None:
                logits.append(logit.float())
        return torch.cat(embeddings), (torch.cat(logits) if logits else None)

    def _net_on(self, device: torch.device | str) -> nn.Module:
        assert self.net is not None
        first = next(self.net.parameters(), None)
        if first is not None and first.device != torch.device(device):
            self.net.to(device)
        if self.net.training:  # someone called .train() on it: teachers stay in eval mode
            self.net.eval()
        return self.net

    def parameters(self) -> list[nn.Parameter]:
        """The teacher's torch parameters (none for an ONNX teacher)."""
        net = self.net if self.net is not None else getattr(self.embedder, "net", None)
        return list(net.parameters()) if isinstance(net, nn.Module) else []


def _classifier_from_state(checkpoint: Mapping[str, Any], path: Path, feature_dim: int
                           ) -> tuple[nn.Module, nn.Linear]:
    """The BNNeck BatchNorm and the bias-free identity classifier of a ReIDModule state dict."""
    state = checkpoint["state_dict"]
    weight = state.get("head.classifier.weight")
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        raise ReidsortError(f"{path}: no identity classifier (head.classifier.weight) in its "
                            "state dict, so no teacher logits for KL distillation; set "
                            "distill.reid.logits_weight=0")
    if weight.shape[1] != feature_dim:
        raise ReidsortError(f"{path}: classifier takes {weight.shape[1]} features, the backbone "
                            f"gives {feature_dim}")
    bn = nn.BatchNorm1d(feature_dim)
    bn_state = {key[len("head.bn."):]: value for key, value in state.items()
                if key.startswith("head.bn.")}
    try:
        bn.load_state_dict(bn_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ReidsortError(f"{path}: the BNNeck in front of the classifier does not load "
                            f"({first})") from None
    classifier = nn.Linear(feature_dim, int(weight.shape[0]), bias=False)
    with torch.no_grad():
        classifier.weight.copy_(weight)
    return bn, classifier


# ============================================================================ FairMOT teacher
class JDETeacher(Teacher):
    """A trained FairMOT's heatmap logits and embeddings at the ground-truth centres, on the
    student's frame (see the module docstring). ``mean`` / ``std``: the teacher's input
    normalisation (its checkpoint's); ``input_mean`` / ``input_std``: the student's."""

    kind = "jde"

    def __init__(self, net: nn.Module, *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, input_mean: Sequence[float] = IMAGENET_MEAN,
                 input_std: Sequence[float] = IMAGENET_STD, source: str = "") -> None:
        super().__init__(input_mean, input_std)
        if not isinstance(net, nn.Module):
            raise ReidsortError(f"JDETeacher: net must be a trained JDENet, got "
                                f"{type(net).__name__}")
        self.net = freeze(net)
        self.mean, self.std = _check_norm(mean, "the teacher's mean"), \
            _check_norm(std, "the teacher's std")
        self.embedding_dim = int(net.embedding_dim)
        self.num_classes = int(getattr(net, "num_classes", 1))
        self.source = source

    @classmethod
    def from_file(cls, path: str | os.PathLike | None, *,
                  input_mean: Sequence[float] = IMAGENET_MEAN,
                  input_std: Sequence[float] = IMAGENET_STD) -> JDETeacher:
        """A teacher from a ``task=jde`` ``.ckpt`` (weights and normalisation from the file)."""
        from reidsort.export.file_kind import ONNX_MODEL, sniff_model_file
        from reidsort.jde.checkpoint import load_jde_model

        path = _teacher_path(path, "distill.jde.path", "a trained FairMOT: the .ckpt of task=jde")
        if sniff_model_file(path) == ONNX_MODEL:
            raise ReidsortError(f"{path}: is an ONNX model; a FairMOT teacher needs the task=jde "
                                ".ckpt it was exported from (distill.jde.path)")
        net, info = load_jde_model(path)
        return cls(net, mean=info.mean, std=info.std, input_mean=input_mean,
                   input_std=input_std, source=str(path))

    def teacher_input(self, images: Tensor) -> Tensor:
        """The student's input re-normalised to the teacher's mean / std (same H, W)."""
        if self.mean == self.input_mean and self.std == self.input_std:
            return images
        dev = images.device

        def column(values: Sequence[float]) -> Tensor:
            return torch.tensor(values, dtype=torch.float32, device=dev).view(1, 3, 1, 1)

        unit = images.float() * column(self.input_std) + column(self.input_mean)
        return (unit - column(self.mean)) / column(self.std)

    def _compute(self, images: Tensor, boxes: list[Tensor], index: list[Tensor]
                 ) -> list[SampleOutput]:
        from reidsort.jde.losses import gather_at

        net = self.net
        first = next(net.parameters(), None)
        if first is not None and first.device != images.device:
            net.to(images.device)
        if net.training:
            net.eval()
        output = net(self.teacher_input(images))
        heatmap, embedding_map = output.heatmap.float(), output.embedding.float()
        out = []
        for b, centres in enumerate(index):
            rows = gather_at(embedding_map[b:b + 1], centres.view(1, -1))[0]
            out.append(SampleOutput(rows, None, heatmap[b]))
        return out

    def parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())


def _teacher_path(path: str | os.PathLike | None, key: str, what: str) -> Path:
    """The teacher's weights file; refuse a teacher without one (random weights teach
    nothing: the published study's bug)."""
    if path is None or str(path).strip() in ("", "None", "null", "???"):
        raise ReidsortError(f"{key} is not set: a distillation teacher must be {what} (a "
                            "teacher with random weights teaches nothing)")
    path = Path(path)
    if not path.is_file():
        raise ReidsortError(f"{key}: teacher weights not found: {path}")
    return path


#: what a Teacher is to the loss: images, targets[, keys] -> TeacherOutput
TeacherLike = Callable[..., TeacherOutput]

__all__ = ["CACHE_MAX_MB", "JDETeacher", "ReidTeacher", "SampleOutput", "Teacher",
           "TeacherCache", "TeacherOutput", "freeze", "sample_fingerprint"]
