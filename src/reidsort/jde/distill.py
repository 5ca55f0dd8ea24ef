"""Knowledge distillation for FairMOT: losses ADDED to the tracking loss, never replacing it.

The published FairMOT distillation study's code (a) switches the tracking loss off at its
default weight, (b) builds its teacher with random weights and (c) feeds the teacher the frame
with height and width swapped. Here: the tracking loss always keeps weight 1 and distillation
adds ``DistillParts.total`` (every weight 0, or no ``distill`` config: exactly the plain loss,
and the teacher is not even loaded); a teacher only exists with trained weights from its file
(:mod:`reidsort.jde.teacher`: one-line error otherwise); crops and frames keep their (H, W).

Losses (weights, kinds and temperature from a plain config dict, see :data:`DEFAULTS`):

* Re-ID teacher (``distill.reid``: a ``task=train`` ``.ckpt`` or ``task=export`` ``.onnx``):

  - ``embedding``: the student's embedding at each ground-truth centre (``targets.index``,
    rows with ``targets.mask``) against the teacher's embedding of that person's crop:
    ``cosine`` (1 - cos) or ``mse`` (mean squared difference to the teacher's embedding, which
    is L2-normalised as the embedders return it), after a learned bias-free linear projection (student dim -> teacher dim) only
    when the dimensions differ;
  - ``logits``: Hinton's KL(softmax(t / T) || softmax(s / T)) * T^2 between the teacher's
    identity logits on the crop and the student's identity head on the centre embedding, over
    the persons with an identity (``ids >= 0``). Needs a ``.ckpt`` teacher whose classifier
    has exactly ``num_ids`` rows: trained on the same training identities, in the same order
    (the JDE data maps each source's ids densely in increasing order, MIX offsets after
    another; the count is checked, the order is the user's to keep).

* FairMOT teacher (``distill.jde``: a larger ``task=jde`` ``.ckpt``), run on the student's
  frame so the maps line up:

  - ``heatmap``: on the sigmoid maps, ``mse`` (sum of squared differences) or ``focal``
    (quality-focal: |p_s - p_t|^2 * BCE(p_s, p_t), zero where they agree), both divided by the
    number of ground-truth centres as the focal detection loss is;
  - ``embedding_map``: the two embedding maps at the ground-truth centres, ``cosine`` or
    ``mse``, projection when the dimensions differ.

The teachers' per-sample outputs are cached (``cache``: true / false / auto; auto caches and
switches itself off after an epoch without a single hit, i.e. when augmentation changes every
sample; judged on the second epoch, the first that can hit). A cached entry is used only for the same sample (fingerprint of its tensor, boxes and
centres), so the cache is correct with or without augmentation, for one epoch or all.

Integration into ``reidsort.jde.module.JDELitModule`` (a few lines):

1. ``__init__(..., distill: Mapping | None = None)``: ``distill = plain_config(distill)``
   *before* ``self.save_hyperparameters(...)`` (a plain dict of str / float / bool / list /
   None: paths and numbers only, weights_only-loadable), then::

       self.distill = (DistillationLoss(distill, embedding_dim=net["embedding_dim"],
                                        num_ids=num_ids, num_classes=net["num_classes"],
                                        mean=mean, std=std)
                       if distill_enabled(distill) else None)

   The teachers are not submodules (not in ``state_dict`` / ``parameters()``; they follow the
   student's device). The learned projections are, as ``distill.*`` keys: the same
   ``distill`` config rebuilds them on resume; ``load_jde_model`` reads only ``net.*``.
2. ``training_step``::

       output = self.net(images)
       parts = self.loss(output, targets)
       loss = parts.total
       if self.distill is not None:
           extra = self.distill(output, targets, images,
                                identity_head=self.loss.identity_head)
           loss = loss + extra.total        # ADDED; the tracking loss keeps weight 1
           for name, value in extra._asdict().items():
               self.log(f"train/distill_{name}", value.detach(), on_step=False,
                        on_epoch=True, batch_size=len(images))
       return loss

   (log ``train/loss`` as today from ``parts``, plus the sum if wanted.) Validation does not
   distil.
3. ``on_train_epoch_start``: ``if self.distill is not None:
   self.distill.on_epoch_start(self.current_epoch)`` (cache statistics / auto switch-off).
4. ``configure_optimizers`` unchanged: ``self.parameters()`` includes the projections.
5. Config: a ``distill`` node (default ``null``) under the jde task/model config passed to the
   module; the task may set ``distill.cache=false`` when the data augments.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from reidsort.jde.losses import gather_at
from reidsort.jde.teacher import CACHE_MAX_MB, JDETeacher, ReidTeacher, TeacherOutput
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

EMBEDDING_KINDS = ("cosine", "mse")
HEATMAP_KINDS = ("mse", "focal")
CACHE_MODES = (True, False, "auto")
#: quality-focal exponent on |p_student - p_teacher| (Li et al. 2020, GFL)
FOCAL_GAMMA = 2.0

#: the ``distill`` config: ``reid`` / ``jde`` null = that teacher is not used
DEFAULTS: dict[str, Any] = {
    "reid": None,
    "jde": None,
    "cache": "auto",
    "cache_max_mb": CACHE_MAX_MB,
}
REID_DEFAULTS: dict[str, Any] = {
    "path": None,  # task=train .ckpt, or task=export .onnx / TorchScript .pt
    "image_size": None,  # [h, w]: a .ckpt without its config.yaml (else the training size)
    "embedding_weight": 1.0,
    "embedding_loss": "cosine",
    "logits_weight": 0.0,  # KL on identity logits (needs a .ckpt over the same ids)
    "temperature": 4.0,
    "device": "auto",  # TorchScript teachers only (a .ckpt follows the student's device)
    "num_threads": None,  # ONNX / TorchScript teachers
}
JDE_DEFAULTS: dict[str, Any] = {
    "path": None,  # task=jde .ckpt of the (larger) teacher
    "heatmap_weight": 1.0,
    "heatmap_loss": "mse",
    "embedding_weight": 1.0,
    "embedding_loss": "cosine",
}


class DistillParts(NamedTuple):
    """The weighted sum to ADD to the tracking loss, and each unweighted part for logging
    (zero for the parts that are switched off)."""

    total: Tensor
    embedding: Tensor
    logits: Tensor
    heatmap: Tensor
    embedding_map: Tensor


# ================================================================================ losses
def embedding_distillation(student: Tensor, teacher: Tensor, kind: str = "cosine") -> Tensor:
    """Mean over the N rows of ``1 - cos(student, teacher)`` (``cosine``), or the squared
    difference averaged over rows and dimensions (``mse``, FitNets-style: a Re-ID teacher's rows
    are L2-normalised as the embedders return them, a FairMOT teacher's are its raw map).
    ``student`` (N, D) already projected to the teacher's D; 0 (in the graph) when N = 0."""
    if student.shape != teacher.shape:
        raise ReidsortError(f"embedding distillation: student {tuple(student.shape)} and "
                            f"teacher {tuple(teacher.shape)} rows differ")
    student, teacher = student.float(), teacher.float().detach()
    if student.shape[0] == 0:
        return student.sum() * 0.0
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student, teacher, dim=1, eps=1e-8)).mean()
    if kind == "mse":
        return F.mse_loss(student, teacher)
    raise ReidsortError(f"embedding distillation kind must be one of {EMBEDDING_KINDS}, got "
                        f"{kind!r}")


def kl_distillation(student_logits: Tensor, teacher_logits: Tensor,
                    temperature: float) -> Tensor:
    """Hinton et al. (2015): T^2 KL(softmax(t / T) || softmax(s / T)), averaged over rows."""
    if student_logits.shape != teacher_logits.shape:
        raise ReidsortError(f"KL distillation: student logits {tuple(student_logits.shape)} and "
                            f"teacher logits {tuple(teacher_logits.shape)} differ")
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    t = float(temperature)
    log_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float().detach() / t, dim=1)
    kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
    return kl * (t * t)


def heatmap_distillation(student_logits: Tensor, teacher_logits: Tensor, kind: str = "mse",
                         normaliser: Tensor | float = 1.0) -> Tensor:
    """Heatmap distillation on the sigmoid maps (logits in, (B, C, h, w)): ``mse`` sums the
    squared differences, ``focal`` sums |p_s - p_t|^2 * BCE(p_s, p_t); both divided by
    ``normaliser`` (the number of ground-truth centres)."""
    if student_logits.shape != teacher_logits.shape:
        raise ReidsortError(f"heatmap distillation: student heatmap {tuple(student_logits.shape)}"
                            f" and teacher heatmap {tuple(teacher_logits.shape)} differ (the "
                            "teacher runs on the student's frame: same classes needed)")
    student_logits = student_logits.float()
    p_student = torch.sigmoid(student_logits)
    p_teacher = torch.sigmoid(teacher_logits.float().detach())
    if kind == "mse":
        total = (p_student - p_teacher).pow(2).sum()
    elif kind == "focal":
        bce = F.binary_cross_entropy_with_logits(student_logits, p_teacher, reduction="none")
        total = ((p_student - p_teacher).abs().pow(FOCAL_GAMMA) * bce).sum()
    else:
        raise ReidsortError(f"heatmap distillation kind must be one of {HEATMAP_KINDS}, got "
                            f"{kind!r}")
    return total / normaliser


# ================================================================================ config
def plain_config(config: Any) -> dict[str, Any] | None:
    """``config`` (OmegaConf or mapping, or None) as a plain, complete, validated dict."""
    if config is None:
        return None
    from omegaconf import OmegaConf

    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping):
        raise ReidsortError(f"distill must be a mapping or null, got {type(config).__name__}")
    out = _merged(DEFAULTS, config, "distill")
    for name, defaults in (("reid", REID_DEFAULTS), ("jde", JDE_DEFAULTS)):
        if out[name] is not None:
            if not isinstance(out[name], Mapping):
                raise ReidsortError(f"distill.{name} must be a mapping or null, got "
                                    f"{out[name]!r}")
            out[name] = _merged(defaults, out[name], f"distill.{name}")
    _validate(out)
    return copy.deepcopy(out)


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any], what: str) -> dict[str, Any]:
    unknown = sorted(set(map(str, given)) - set(defaults))
    if unknown:
        raise ReidsortError(f"{what}: unknown keys {unknown}; valid: {sorted(defaults)}")
    merged = {**defaults, **{str(k): v for k, v in given.items()}}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in merged.items()}


def _weight(config: Mapping[str, Any], key: str, what: str) -> float:
    try:
        value = float(config[key])
    except (TypeError, ValueError):
        raise ReidsortError(f"{what}.{key} must be a number, got {config[key]!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ReidsortError(f"{what}.{key} must be a finite number >= 0, got {config[key]!r}")
    return value


def _validate(config: Mapping[str, Any]) -> None:
    reid, jde = config["reid"], config["jde"]
    if reid is not None:
        _weight(reid, "embedding_weight", "distill.reid")
        _weight(reid, "logits_weight", "distill.reid")
        _choice(reid["embedding_loss"], EMBEDDING_KINDS, "distill.reid.embedding_loss")
        if not float(reid["temperature"]) > 0:
            raise ReidsortError(f"distill.reid.temperature must be > 0, got "
                                f"{reid['temperature']!r}")
    if jde is not None:
        _weight(jde, "heatmap_weight", "distill.jde")
        _weight(jde, "embedding_weight", "distill.jde")
        _choice(jde["heatmap_loss"], HEATMAP_KINDS, "distill.jde.heatmap_loss")
        _choice(jde["embedding_loss"], EMBEDDING_KINDS, "distill.jde.embedding_loss")
    if config["cache"] not in CACHE_MODES:
        raise ReidsortError(f"distill.cache must be true, false or auto, got "
                            f"{config['cache']!r}")
    if not float(config["cache_max_mb"]) >= 0:
        raise ReidsortError(f"distill.cache_max_mb must be >= 0, got {config['cache_max_mb']!r}")


def _choice(value: Any, options: Sequence[str], what: str) -> None:
    if value not in options:
        raise ReidsortError(f"{what} must be one of {', '.join(options)}, got {value!r}")


def _reid_active(config: Mapping[str, Any]) -> bool:
    reid = config.get("reid")
    return reid is not None and (float(reid["embedding_weight"]) > 0
                                 or float(reid["logits_weight"]) > 0)


def _jde_active(config: Mapping[str, Any]) -> bool:
    jde = config.get("jde")
    return jde is not None and (float(jde["heatmap_weight"]) > 0
                                or float(jde["embedding_weight"]) > 0)


def distill_enabled(config: Any) -> bool:
    """Whether a ``distill`` config adds anything (a teacher with a weight > 0)."""
    config = plain_config(config)
    return config is not None and (_reid_active(config) or _jde_active(config))


# ================================================================================ module
class DistillationLoss(nn.Module):
    """The distillation terms of one training step (module docstring).

    ``config``: the ``distill`` dict (see :data:`DEFAULTS`); ``embedding_dim``, ``num_ids``,
    ``num_classes``: the student's; ``mean`` / ``std``: the student input's normalisation.
    Teachers are built from the config's paths, or given (``reid_teacher``: a
    :class:`~reidsort.jde.teacher.ReidTeacher`; ``jde_teacher``: a
    :class:`~reidsort.jde.teacher.JDETeacher` or a trained JDENet, whose input normalisation
    is then taken to be the student's). A teacher whose weights are all 0 is not loaded.
    """

    def __init__(self, config: Any, *, embedding_dim: int, num_ids: int | None = None,
                 num_classes: int = 1, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, reid_teacher: ReidTeacher | None = None,
                 jde_teacher: JDETeacher | nn.Module | None = None) -> None:
        super().__init__()
        config = plain_config(config) or plain_config({})
        assert config is not None
        self.config = config
        self.embedding_dim = int(embedding_dim)
        self.num_ids = None if num_ids is None else int(num_ids)
        self.num_classes = int(num_classes)
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        reid, jde = config["reid"], config["jde"]
        # plain attributes, not submodules: never trained, saved or .train()-ed with the student
        self.reid_teacher: ReidTeacher | None = None
        self.jde_teacher: JDETeacher | None = None
        self.reid_projection: nn.Linear | None = None
        self.jde_projection: nn.Linear | None = None
        if _reid_active(config):
            assert reid is not None
            wants_logits = float(reid["logits_weight"]) > 0
            teacher = reid_teacher if reid_teacher is not None else ReidTeacher.from_file(
                reid["path"], image_size=reid["image_size"], with_classifier=wants_logits,
                input_mean=mean, input_std=std, device=str(reid["device"]),
                num_threads=reid["num_threads"])
            if wants_logits:
                self._check_logits(teacher)
            self.reid_teacher = teacher
            if float(reid["embedding_weight"]) > 0 and teacher.feature_dim != self.embedding_dim:
                self.reid_projection = nn.Linear(self.embedding_dim, teacher.feature_dim,
                                                 bias=False)
        elif reid is not None:
            log.info("distill.reid: every weight is 0, the Re-ID teacher is not used")
        if _jde_active(config):
            assert jde is not None
            if jde_teacher is None:
                teacher = JDETeacher.from_file(jde["path"], input_mean=mean, input_std=std)
            elif isinstance(jde_teacher, JDETeacher):
                teacher = jde_teacher
            else:
                teacher = JDETeacher(jde_teacher, mean=mean, std=std, input_mean=mean,
                                     input_std=std)
            if float(jde["heatmap_weight"]) > 0 and teacher.num_classes != self.num_classes:
                raise ReidsortError(f"distill.jde: the teacher detects {teacher.num_classes} "
                                    f"classes, the student {self.num_classes}: heatmap "
                                    "distillation needs the same classes")
            self.jde_teacher = teacher
            if float(jde["embedding_weight"]) > 0 \
                    and teacher.embedding_dim != self.embedding_dim:
                self.jde_projection = nn.Linear(self.embedding_dim, teacher.embedding_dim,
                                                bias=False)
        elif jde is not None:
            log.info("distill.jde: every weight is 0, the FairMOT teacher is not used")
        self._cache_mode = config["cache"]
        for teacher in self.teachers:
            if self._cache_mode in (True, "auto"):
                teacher.enable_cache(float(config["cache_max_mb"]))

    def _check_logits(self, teacher: ReidTeacher) -> None:
        source = getattr(teacher, "source", "") or "the Re-ID teacher"
        if getattr(teacher, "num_classes", None) is None:
            raise ReidsortError(f"distill.reid.logits_weight > 0 but {source} has no identity "
                                "classifier (an exported model, or a checkpoint without one): "
                                "KL distillation needs the task=train .ckpt")
        if self.num_ids is None or teacher.num_classes != self.num_ids:
            raise ReidsortError(
                f"distill.reid.logits_weight > 0 but {source} classifies {teacher.num_classes} "
                f"identities and the student {self.num_ids}: KL on identity logits needs a "
                "Re-ID teacher trained on the same training identities (else set "
                "distill.reid.logits_weight=0 and distil embeddings only)")

    @property
    def teachers(self) -> list[Any]:
        return [t for t in (self.reid_teacher, self.jde_teacher) if t is not None]

    def train(self, mode: bool = True) -> DistillationLoss:
        super().train(mode)
        for teacher in self.teachers:  # teachers stay in eval mode whatever the student does
            net = getattr(teacher, "net", None)
            if isinstance(net, nn.Module):
                net.eval()
        return self

    def on_epoch_start(self, epoch: int) -> None:
        """Log the cache's hit rate of the last epoch; ``cache: auto`` switches the cache off
        after an epoch with lookups and no hit, from the second epoch on (the first cannot
        hit): every sample changed, augmentation is on."""
        for teacher in self.teachers:
            cache = teacher.cache
            if cache is None:
                continue
            lookups = cache.hits + cache.misses
            if lookups:
                log.info("distill.%s teacher cache: %d / %d hits, %d entries, %.0f MB",
                         teacher.kind, cache.hits, lookups, len(cache), cache.bytes / 2 ** 20)
            if self._cache_mode == "auto" and int(epoch) >= 2 and lookups and not cache.hits:
                log.info("distill.%s: no teacher cache hit in a whole epoch (augmented "
                         "samples): caching off", teacher.kind)
                teacher.disable_cache()
                continue
            cache.reset_counts()

    def forward(self, student: Any, targets: Any, images: Tensor,
                identity_head: Callable[[Tensor], Tensor] | None = None,
                keys: Sequence[Any] | None = None) -> DistillParts:
        """``student``: the JDEOutput of ``images`` (the normalised network input the batch
        holds); ``targets``: its batched JDETargets; ``identity_head``: the student's identity
        classifier (``JDELoss.identity_head``), needed for KL; ``keys``: optional per-sample
        cache keys (dataset indices)."""
        embedding_map = student.embedding
        zero = embedding_map.new_zeros(())
        parts = dict.fromkeys(("embedding", "logits", "heatmap", "embedding_map"), zero)
        total = zero
        mask = _field(targets, "mask").bool()
        index = _field(targets, "index")
        if self.reid_teacher is not None or self.jde_teacher is not None:
            rows = gather_at(embedding_map, index)[mask]  # (N, D) at the ground-truth centres
        if self.reid_teacher is not None:
            reid = self.config["reid"]
            taught = self.reid_teacher(images, targets, keys)
            if float(reid["embedding_weight"]) > 0:
                parts["embedding"] = embedding_distillation(
                    self._project(rows, self.reid_projection), taught.embedding,
                    reid["embedding_loss"])
                total = total + float(reid["embedding_weight"]) * parts["embedding"]
            if float(reid["logits_weight"]) > 0:
                parts["logits"] = self._kl(rows, taught, _field(targets, "ids")[mask],
                                           identity_head, float(reid["temperature"]))
                total = total + float(reid["logits_weight"]) * parts["logits"]
        if self.jde_teacher is not None:
            jde = self.config["jde"]
            taught = self.jde_teacher(images, targets, keys)
            if float(jde["heatmap_weight"]) > 0:
                centres = _field(targets, "heatmap").eq(1).sum().clamp(min=1)
                parts["heatmap"] = heatmap_distillation(student.heatmap, taught.heatmap,
                                                        jde["heatmap_loss"], centres)
                total = total + float(jde["heatmap_weight"]) * parts["heatmap"]
            if float(jde["embedding_weight"]) > 0:
                parts["embedding_map"] = embedding_distillation(
                    self._project(rows, self.jde_projection), taught.embedding,
                    jde["embedding_loss"])
                total = total + float(jde["embedding_weight"]) * parts["embedding_map"]
        return DistillParts(total, **parts)

    @staticmethod
    def _project(rows: Tensor, projection: nn.Linear | None) -> Tensor:
        return rows.float() if projection is None else projection(rows.float())

    def _kl(self, rows: Tensor, taught: TeacherOutput, ids: Tensor,
            identity_head: Callable[[Tensor], Tensor] | None, temperature: float) -> Tensor:
        if identity_head is None:
            raise ReidsortError("distill.reid.logits_weight > 0: pass the student's identity "
                                "head (identity_head=JDELoss.identity_head) to the "
                                "distillation loss")
        if taught.logits is None:
            raise ReidsortError("distill.reid.logits_weight > 0 but the teacher gave no logits")
        has_id = ids >= 0
        return kl_distillation(identity_head(rows[has_id]), taught.logits[has_id], temperature)


def _field(targets: Any, name: str) -> Tensor:
    value = targets.get(name) if isinstance(targets, Mapping) else getattr(targets, name, None)
    if not isinstance(value, Tensor):
        raise ReidsortError(f"distillation: targets.{name} must be a tensor, got "
                            f"{type(value).__name__}")
    return value


__all__ = ["DEFAULTS", "EMBEDDING_KINDS", "HEATMAP_KINDS", "JDE_DEFAULTS", "REID_DEFAULTS",
           "DistillParts", "DistillationLoss", "distill_enabled", "embedding_distillation",
           "heatmap_distillation", "kl_distillation", "plain_config"]
