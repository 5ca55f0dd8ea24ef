"""The FairMOT LightningModule: :class:`~reidsort.jde.model.JDENet` trained with
:class:`~reidsort.jde.losses.JDELoss` (focal heatmap, L1 size (weight 0.1) and offset,
identity cross-entropy, learned uncertainty weights ``s_det`` -1.85 / ``s_id`` -1.05), and
validated by decoding its maps (:mod:`reidsort.jde.decode`) into detections scored by AP at
IoU 0.5 (:mod:`reidsort.jde.metrics`) on the held-out sequences.

Checkpoint contract (read by ``reidsort.jde.checkpoint.load_jde_model``, task=track and
task=export): the network is ``self.net``, so its state-dict keys start with ``net.`` (the loss's
identity classifier and uncertainty weights are ``loss.*``, training only). The hyper-parameters
hold plain types only, so checkpoints load with ``torch.load(weights_only=True)``: ``net`` (the
complete :class:`JDENet` keyword arguments: backbone, num_classes, embedding_dim, head_channels,
size_mode; never a weights file or ``pretrained``, which only say where the *initial* weights
came from and are passed as ``backbone_weights`` / ``backbone_pretrained``, not saved),
``input_hw`` ``[H, W]``, ``num_ids``, ``mean`` / ``std`` (ImageNet, for input in [0, 1]),
``stride`` (4), ``amodal``, and the loss, optimiser, scheduler and evaluation settings.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from torch import Tensor

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from reidsort.jde.decode import TOP_K, decode_batch
from reidsort.jde.distill import DistillationLoss, distill_enabled, plain_config
from reidsort.jde.losses import (
    HEATMAP_WEIGHT,
    OFFSET_WEIGHT,
    S_DET,
    S_ID,
    SIZE_WEIGHT,
    JDELoss,
    JDELossParts,
)
from reidsort.jde.metrics import IOU_THRESHOLD, detection_scores
from reidsort.jde.model import EMBEDDING_DIM, HEAD_CHANNELS, JDENet, JDEOutput
from reidsort.jde.targets import OUTPUT_STRIDE
from reidsort.reid.callbacks import EpochSummary
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: the JDENet keyword arguments a checkpoint records (``hparams.net``), with their defaults
NET_DEFAULTS: dict[str, Any] = {"backbone": "resnet18", "num_classes": 1,
                                "embedding_dim": EMBEDDING_DIM, "head_channels": HEAD_CHANNELS,
                                "size_mode": "wh"}
#: JDENet options that only say where the initial backbone weights come from (never saved)
INITIAL_WEIGHT_KEYS = ("weights", "pretrained")
#: FairMOT opts: hm_weight, wh_weight, off_weight and MotLoss's initial s_det / s_id
LOSS_DEFAULTS: dict[str, float] = {"heatmap_weight": HEATMAP_WEIGHT, "size_weight": SIZE_WEIGHT,
                                   "offset_weight": OFFSET_WEIGHT, "s_det": S_DET, "s_id": S_ID}
#: FairMOT: Adam, lr 1e-4 (no weight decay), x0.1 at epoch 20 of 30
OPTIMIZER_DEFAULTS: dict[str, Any] = {"_target_": "torch.optim.Adam", "_partial_": True,
                                      "lr": 1e-4}
SCHEDULER_DEFAULTS: dict[str, Any] = {"_target_": "torch.optim.lr_scheduler.MultiStepLR",
                                      "_partial_": True, "milestones": [20], "gamma": 0.1}
#: validation decoding: a low score threshold so the AP sees the whole precision / recall
#: curve; ``conf_threshold`` (FairMOT's tracker ``conf_thres`` 0.4) for val/precision, val/recall
EVALUATION_DEFAULTS: dict[str, Any] = {"iou_threshold": IOU_THRESHOLD, "top_k": TOP_K,
                                       "score_threshold": 0.01, "conf_threshold": 0.4}
#: checkpoint key of the training-data summary (sources, sequences, identities)
DATA_SUMMARY_KEY = "jde_data"


def _plain(value: Any) -> Any:
    """OmegaConf containers and tuples as plain dicts / lists (checkpoint hyper-parameters)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any] | None, what: str,
            open_keys: bool = False) -> dict[str, Any]:
    given = _plain(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown and not open_keys:
        raise ReidsortError(f"jde {what}: unknown keys {unknown}; valid: {sorted(defaults)}")
    return {**defaults, **given}


class JDELitModule(L.LightningModule):
    """FairMOT training (see the module docstring for what a checkpoint holds)."""

    def __init__(
        self,
        net: Mapping[str, Any],
        num_ids: int,
        input_hw: Sequence[int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        stride: int = OUTPUT_STRIDE,
        amodal: bool = False,
        loss: Mapping[str, float] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = SCHEDULER_DEFAULTS,  # None: constant lr
        evaluation: Mapping[str, Any] | None = None,
        freeze: Sequence[str] | None = None,
        backbone_weights: str | None = None,
        backbone_pretrained: str | None = None,
        distill: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        given = _plain(net)
        initial = sorted(set(given) & set(INITIAL_WEIGHT_KEYS))
        if initial:
            raise ReidsortError(f"JDELitModule: net.{initial[0]} is not a network setting (a "
                                "checkpoint would re-read it): pass backbone_weights / "
                                "backbone_pretrained")
        # plain, complete values before save_hyperparameters (it reads these locals)
        net = _merged(NET_DEFAULTS, given, "net")
        num_ids = int(num_ids)
        input_hw = [int(v) for v in input_hw]
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        stride, amodal = int(stride), bool(amodal)
        loss = _merged(LOSS_DEFAULTS, loss, "loss")
        optimizer = _merged(OPTIMIZER_DEFAULTS, optimizer, "optimizer", open_keys=True)
        scheduler = _plain(scheduler) if scheduler else None
        evaluation = _merged(EVALUATION_DEFAULTS, evaluation, "evaluation")
        freeze = [str(p) for p in (freeze or [])]
        # a plain, validated dict (paths and numbers) before save_hyperparameters reads it
        distill = plain_config(distill)
        if len(input_hw) != 2 or min(input_hw) <= 0 or any(v % 32 for v in input_hw):
            raise ReidsortError(f"JDELitModule: input_hw={input_hw} must be [H, W], positive "
                                "multiples of 32")
        if stride != OUTPUT_STRIDE:
            raise ReidsortError(f"JDELitModule: stride={stride}, JDENet's maps are at stride "
                                f"{OUTPUT_STRIDE}")
        self.save_hyperparameters(ignore=["backbone_weights", "backbone_pretrained"])
        self.net = JDENet(**net, weights=backbone_weights, pretrained=backbone_pretrained)
        self.loss = JDELoss(int(net["embedding_dim"]), num_ids, **loss)
        # Distillation ADDS to the tracking loss (reidsort.jde.distill); its learned projections
        # are submodules (distill.* keys), the frozen teachers are not.
        self.distill = (
            DistillationLoss(distill, embedding_dim=int(net["embedding_dim"]), num_ids=num_ids,
                             num_classes=int(net["num_classes"]), mean=mean, std=std)
            if distill_enabled(distill) else None
        )
        self._apply_freeze(freeze)
        self._val_frames: list[tuple[np.ndarray, np.ndarray]] = []
        #: validation metrics of every epoch (not sanity checks): {"epoch": e, "val/AP50": ...}
        self.val_history: list[dict[str, float]] = []
        #: what the run trains on (JDEDataModule.summary()), saved beside the hyper-parameters
        self.data_summary: dict[str, Any] | None = None

    # ------------------------------------------------------------------ model
    def forward(self, images: Tensor) -> JDEOutput:
        return self.net(images)

    def _apply_freeze(self, patterns: list[str]) -> None:
        names = [name for name, _ in self.net.named_parameters(prefix="net")]
        for pattern in patterns:
            if not any(fnmatch.fnmatch(n, pattern) for n in names):
                raise ReidsortError(f"jde freeze pattern {pattern!r} matches no parameter "
                                    "(names start with 'net.', e.g. 'net.backbone.*')")
        frozen = 0
        for name, param in self.net.named_parameters(prefix="net"):
            if any(fnmatch.fnmatch(name, p) for p in patterns):
                param.requires_grad_(False)
                frozen += 1
        if frozen:
            log.info("froze %d parameter tensors", frozen)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.data_summary is not None:
            checkpoint[DATA_SUMMARY_KEY] = _plain(self.data_summary)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_summary = checkpoint.get(DATA_SUMMARY_KEY, self.data_summary)

    # --------------------------------------------------------------- training
    def _log_parts(self, stage: str, parts: JDELossParts, batch_size: int) -> None:
        on_step = stage == "train"
        for name in JDELossParts._fields:
            key = "loss" if name == "total" else name
            self.log(f"{stage}/{key}", getattr(parts, name).detach(), on_step=on_step,
                     on_epoch=True, prog_bar=on_step and key == "loss", batch_size=batch_size,
                     sync_dist=True)  # under DDP: the mean over every rank's frames

    def training_step(self, batch: tuple[Tensor, Any], batch_idx: int) -> Tensor:
        images, targets = batch
        output = self.net(images)
        parts = self.loss(output, targets)
        self._log_parts("train", parts, len(images))
        total = parts.total
        if self.distill is not None:
            extra = self.distill(output, targets, images, identity_head=self.loss.identity_head)
            total = total + extra.total  # the tracking loss keeps weight 1
            for name, value in extra._asdict().items():
                self.log(f"train/distill_{name}", value.detach(), on_step=False, on_epoch=True,
                         batch_size=len(images), sync_dist=True)
        uncertainty = self.loss.uncertainty
        self.log("train/s_det", uncertainty.s_det.detach(), on_step=False, on_epoch=True,
                 batch_size=len(images), sync_dist=True)
        self.log("train/s_id", uncertainty.s_id.detach(), on_step=False, on_epoch=True,
                 batch_size=len(images), sync_dist=True)
        return total

    def on_train_epoch_start(self) -> None:
        if self.distill is not None:
            self.distill.on_epoch_start(self.current_epoch)

    # ------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_frames = []

    def validation_step(self, batch: tuple[Tensor, Any], batch_idx: int) -> None:
        images, targets = batch
        output = self.net(images)
        self._log_parts("val", self.loss(output, targets), len(images))
        self._val_frames.extend(self.decode_frames(output, targets))

    def decode_frames(self, output: JDEOutput, targets: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(dets (K, 6), ground-truth boxes (G, 4))`` per image of a batch: the maps decoded
        on the sigmoid heatmap (boxes in network-input pixels, as the targets' boxes)."""
        hp = self.hparams
        evaluation = hp.evaluation
        frames = decode_batch(
            torch.sigmoid(output.heatmap.float()).cpu().numpy(),
            output.size.float().cpu().numpy(), output.offset.float().cpu().numpy(), None,
            stride=int(hp.stride), top_k=int(evaluation["top_k"]),
            score_threshold=float(evaluation["score_threshold"]),
            size_mode=str(hp.net["size_mode"]))
        boxes, mask = targets.boxes.cpu().numpy(), targets.mask.cpu().numpy().astype(bool)
        return [(frame.dets, boxes[b][mask[b]]) for b, frame in enumerate(frames)]

    def _all_val_frames(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """This epoch's frames; from every rank when Lightning sharded the validation set (with
        ``trainer.use_distributed_sampler=false``, the default, every rank sees all of it)."""
        frames = self._val_frames
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1 or not _sharded(trainer.val_dataloaders):
            return frames
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return frames
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, frames)
        return [frame for part in parts for frame in part]

    def on_validation_epoch_end(self) -> None:
        evaluation = self.hparams.evaluation
        scores = detection_scores(self._all_val_frames(), float(evaluation["iou_threshold"]),
                                  float(evaluation["conf_threshold"]))
        self._val_frames = []
        values = {"val/AP50": scores.ap, "val/precision": scores.precision,
                  "val/recall": scores.recall}
        if math.isnan(scores.ap):
            log.warning("val: no ground-truth box in the validation frames; val/AP50 = 0")
            values["val/AP50"] = 0.0
        values = {k: v for k, v in values.items() if not math.isnan(v)}
        for key, value in values.items():
            # the same value on every rank (all frames, or gathered): sync_dist only averages
            self.log(key, float(value), sync_dist=True)
        self.log("val/gt_boxes", float(scores.num_gt), sync_dist=True)

    def on_validation_end(self) -> None:
        # after Lightning reduced the epoch's val/* (the losses are step-logged)
        if self._trainer is None or self.trainer.sanity_checking:
            return
        row = {"epoch": self.current_epoch}
        for key, value in self.trainer.callback_metrics.items():
            if key.startswith("val/") and value.numel() == 1:
                row[key] = float(value)
        self.val_history.append(row)

    # ------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        # FairMOT: the loss's identity classifier and s_det / s_id train with the network
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params)
        scheduler_cfg = self.hparams.scheduler
        if not scheduler_cfg or "_target_" not in scheduler_cfg:
            return optimizer
        # stepped at epoch ends, as FairMOT's lr_step (lr x0.1 from epoch 20 on)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": instantiate(scheduler_cfg)(optimizer),
                                 "interval": "epoch"}}


def _sharded(loaders: Any) -> bool:
    from torch.utils.data import DistributedSampler

    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    return any(isinstance(getattr(loader, "sampler", None), DistributedSampler)
               for loader in loaders if loader is not None)


#: what the JDE epoch line shows, in order: metric key -> label
JDE_EPOCH_LINE_METRICS: dict[str, str] = {
    "train/loss_epoch": "loss",
    "train/heatmap_epoch": "hm",
    "train/size_epoch": "wh",
    "train/offset_epoch": "off",
    "train/identity_epoch": "id",
    "val/AP50": "val AP50",
    "val/recall": "val R@0.4",
    "val/loss": "val loss",
}


class JDEEpochSummary(EpochSummary):
    """The Re-ID epoch line (``reidsort.train`` logger) with FairMOT's loss parts and AP50."""

    def __init__(self, metrics: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.metrics = dict(metrics or JDE_EPOCH_LINE_METRICS)
        self._lr: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        # the rate this epoch trains at (an epoch scheduler has stepped by the epoch's end)
        self._lr = (trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers
                    else None)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for key, label in self.metrics.items():
            value = trainer.callback_metrics.get(key)
            if value is not None and value.numel() == 1:
                parts.append(f"{label} {float(value):.4f}")
        if self._lr is not None:
            parts.append(f"lr {self._lr:.2e}")
        parts.append(f"{time.perf_counter() - self._started:.0f} s")
        logging.getLogger("reidsort.train").info("  ".join(parts))


__all__ = ["DATA_SUMMARY_KEY", "NET_DEFAULTS", "JDEEpochSummary", "JDELitModule"]
