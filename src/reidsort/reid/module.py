"""The Re-ID LightningModule: backbone + BNNeck head + losses, retrieval validation.

Everything is built from plain-dict configs inside ``__init__`` so that ``save_hyperparameters``
stores only plain Python types: checkpoints reload with ``torch.load``'s default
``weights_only=True`` and with ``ReIDModule.load_from_checkpoint`` alone.
"""

from __future__ import annotations

import copy
import fnmatch
import logging
from typing import Any, NamedTuple

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from reidsort.reid.head import BNNeckHead, HeadOutput, l2_normalize
from reidsort.reid.metrics import RetrievalResult, evaluate_retrieval
from reidsort.reid.objective import ReIDObjective, accuracy
from reidsort.reid.optim import WithCenterSGD
from reidsort.reid.training_data import TRAINING_DATA_KEY

log = logging.getLogger(__name__)

EVAL_FEATURES = ("after_bn", "before_bn")
#: fewer scored queries than this make a retrieval score too coarse to compare runs by
MIN_MEANINGFUL_QUERIES = 20
#: backbone options that only say where the *initial* weights come from
INITIAL_WEIGHT_KEYS = ("weights", "pretrained")
QUERY, GALLERY = 0, 1


class ReIDOutput(NamedTuple):
    feature: Tensor  # pre-BN pooled feature
    bn_feature: Tensor  # post-BN feature
    logits: Tensor | None  # training only
    embedding: Tensor  # L2-normalised retrieval feature (the one configured by eval_feature)


def _is_norm_or_bias(module: nn.Module, param_name: str) -> bool:
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm,
                  nn.modules.instancenorm._InstanceNorm)
    return isinstance(module, norm_types) or param_name.endswith("bias")


class ReIDModule(L.LightningModule):
    def __init__(
        self,
        num_classes: int,
        model: dict[str, Any],
        loss: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        eval_feature: str = "after_bn",
        distance: str = "cosine",
        no_decay_norm_and_bias: bool = True,
        lr_multipliers: dict[str, float] | None = None,
        freeze: list[str] | None = None,
        gather_for_mining: bool = True,
    ) -> None:
        super().__init__()
        if eval_feature not in EVAL_FEATURES:
            raise ValueError(f"module.eval_feature={eval_feature!r}: expected {EVAL_FEATURES}")
        if distance not in ("cosine", "euclidean"):
            raise ValueError(f"module.distance={distance!r}: expected cosine or euclidean")
        self.save_hyperparameters()
        self.backbone: nn.Module = instantiate(model["backbone"])
        feat_dim = int(self.backbone.feature_dim)
        head_cfg = dict(model.get("head") or {"_target_": "reidsort.reid.head.BNNeckHead"})
        self.head: BNNeckHead = instantiate(head_cfg, in_features=feat_dim,
                                            num_classes=num_classes)
        self.objective: ReIDObjective = instantiate(loss, num_classes=num_classes,
                                                    feat_dim=feat_dim)
        self._apply_freeze(freeze or [])
        self._val_outputs: list[list[tuple[Tensor, ...]]] = [[], []]
        self.last_retrieval: RetrievalResult | None = None
        #: validation metrics of every epoch (not sanity checks): {"epoch": e, "val/mAP": ...}
        self.val_history: list[dict[str, float]] = []
        self._warned_small: set[str] = set()
        #: what task=train trains on (reidsort.reid.training_data), saved into every checkpoint
        #: beside the hyper-parameters (not one of them: they rebuild the model)
        self.training_data: dict[str, Any] | None = None

    # ------------------------------------------------------------------ model
    @property
    def feature_dim(self) -> int:
        return int(self.backbone.feature_dim)

    def forward(self, images: Tensor) -> ReIDOutput:
        head: HeadOutput = self.head(self.backbone(images))
        chosen = head.bn_feature if self.hparams.eval_feature == "after_bn" else head.feature
        return ReIDOutput(head.feature, head.bn_feature, head.logits, l2_normalize(chosen))

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """L2-normalised retrieval embeddings (call in eval mode)."""
        return self(images).embedding

    def _apply_freeze(self, patterns: list[str]) -> None:
        frozen = 0
        for name, param in self.named_parameters():
            if any(fnmatch.fnmatch(name, p) for p in patterns):
                param.requires_grad_(False)
                frozen += 1
        for pattern in patterns:
            if not any(fnmatch.fnmatch(n, pattern) for n, _ in self.named_parameters()):
                raise ValueError(f"module.freeze pattern {pattern!r} matches no parameter")
        if frozen:
            log.info("froze %d parameter tensors", frozen)

    def _global_mining_batch(self, feature: Tensor,
                             labels: Tensor) -> tuple[Tensor, Tensor] | None:
        """Under DDP, every rank's pre-BN features (with gradients) and labels, so batch-hard
        mining sees the global P x K batch instead of this rank's P / n identities.

        Every rank then computes the same triplet loss; the gather's backward sums the ranks'
        gradients onto each rank's own features (n x the true one) and DDP averages over the
        n ranks, so the update equals one process's on the whole batch.
        """
        if not self.hparams.gather_for_mining or self._trainer is None \
                or self.trainer.world_size < 2 or self.objective.triplet_weight <= 0:
            return None
        features = self.all_gather(feature, sync_grads=True)
        gathered_labels = self.all_gather(labels)
        return features.flatten(0, 1), gathered_labels.flatten(0, 1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the state dict holds the trained weights: rebuilding the model from the checkpoint
        # must not download ImageNet weights again or look for the initial weights file
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict) and isinstance(hparams.get("model"), dict):
            model = copy.deepcopy(hparams["model"])
            backbone = model.get("backbone")
            if isinstance(backbone, dict):
                backbone.update({key: None for key in INITIAL_WEIGHT_KEYS if key in backbone})
            checkpoint["hyper_parameters"] = {**hparams, "model": model}
        if self.training_data is not None:
            checkpoint[TRAINING_DATA_KEY] = copy.deepcopy(self.training_data)

    # --------------------------------------------------------------- training
    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        images, labels = batch[0], batch[1]
        out = self(images)
        terms = self.objective(HeadOutput(out.feature, out.bn_feature, out.logits), labels,
                               mining=self._global_mining_batch(out.feature, labels))
        batch_size = images.shape[0]
        self.log("train/loss", terms.total, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=batch_size)
        self.log("train/ce", terms.ce, on_epoch=True, on_step=False, batch_size=batch_size)
        self.log("train/triplet", terms.triplet, on_epoch=True, on_step=False,
                 batch_size=batch_size)
        if self.objective.center is not None:
            self.log("train/center", terms.center, on_epoch=True, on_step=False,
                     batch_size=batch_size)
        if terms.num_generated:  # data.generated_root: LSRO on the generated images
            self.log("train/lsro", terms.lsro, on_epoch=True, on_step=False,
                     batch_size=terms.num_generated)
        if out.logits is not None:
            self.log("train/acc", accuracy(out.logits, labels), prog_bar=True, on_epoch=True,
                     on_step=False, batch_size=batch_size)
        return terms.total

    # ------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_outputs = [[], []]

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        images, pids, camids, indices = batch
        embedding = self(images).embedding
        self._val_outputs[dataloader_idx].append(
            (embedding.float(), pids.long(), camids.long(), indices.long())
        )

    def _gather(self, role: int) -> tuple[Tensor, Tensor, Tensor]:
        parts = self._val_outputs[role]
        if parts:
            feats, pids, camids, idx = (torch.cat(t) for t in zip(*parts))
        else:
            feats = torch.zeros(0, self.feature_dim, device=self.device)
            pids = camids = idx = torch.zeros(0, dtype=torch.long, device=self.device)
        if self.trainer.world_size > 1:
            feats, pids, camids, idx = self._all_gather_padded(feats, pids, camids, idx)
        order = torch.argsort(idx)
        idx = idx[order]
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[1:] = idx[1:] != idx[:-1]  # drop duplicates of the last shard
        order = order[keep]
        return feats[order], pids[order], camids[order]

    def _all_gather_padded(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """all_gather tensors whose first dimension differs across ranks."""
        count = torch.tensor([tensors[0].shape[0]], device=self.device)
        counts = self.all_gather(count).view(-1)
        longest = int(counts.max())
        gathered = []
        for t in tensors:
            pad = torch.zeros((longest - t.shape[0], *t.shape[1:]), dtype=t.dtype,
                              device=t.device)
            g = self.all_gather(torch.cat([t, pad]))  # (world, longest, ...)
            gathered.append(torch.cat([g[r, : int(counts[r])] for r in range(g.shape[0])]))
        return tuple(gathered)

    def on_validation_epoch_end(self) -> None:
        q_feat, q_pid, q_cam = self._gather(QUERY)
        g_feat, g_pid, g_cam = self._gather(GALLERY)
        self._val_outputs = [[], []]
        self._log_retrieval("val", q_feat, q_pid, q_cam, g_feat, g_pid, g_cam)

    def _log_retrieval(self, stage: str, q_feat: Tensor, q_pid: Tensor, q_cam: Tensor,
                       g_feat: Tensor, g_pid: Tensor, g_cam: Tensor) -> None:
        try:
            result = evaluate_retrieval(
                q_feat, g_feat, q_pid.cpu().numpy(), g_pid.cpu().numpy(),
                q_cam.cpu().numpy(), g_cam.cpu().numpy(), metric=self.hparams.distance,
            )
        except ValueError as exc:  # e.g. limited val batches leave no query with a true match
            log.warning("%s retrieval metrics not computed: %s", stage, exc)
            self.log(f"{stage}/mAP", 0.0, sync_dist=False)
            return
        self.last_retrieval = result
        if result.num_valid_queries < MIN_MEANINGFUL_QUERIES and stage not in self._warned_small:
            self._warned_small.add(stage)
            log.warning("%s: only %d queries scored (%d identities): its mAP / Rank-1 move in "
                        "steps of 1/%d; hold out more identities (data.val_identities)", stage,
                        result.num_valid_queries, len(set(q_pid.tolist())),
                        max(1, result.num_valid_queries))
        if stage == "val" and self._trainer is not None and not self.trainer.sanity_checking:
            self.val_history.append({
                "epoch": float(self.current_epoch), "val/mAP": result.mAP,
                "val/rank1": result.rank(1), "val/rank5": result.rank(5),
                "val/rank10": result.rank(10), "val/mINP": result.mINP})
        # every rank computed the same numbers from the same gathered features
        self.log(f"{stage}/mAP", result.mAP, prog_bar=True, sync_dist=False)
        self.log(f"{stage}/rank1", result.rank(1), prog_bar=True, sync_dist=False)
        self.log(f"{stage}/rank5", result.rank(5), sync_dist=False)
        self.log(f"{stage}/rank10", result.rank(10), sync_dist=False)
        self.log(f"{stage}/mINP", result.mINP, sync_dist=False)

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0):
        return self.validation_step(batch, batch_idx, dataloader_idx)

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def on_test_epoch_end(self) -> None:
        q_feat, q_pid, q_cam = self._gather(QUERY)
        g_feat, g_pid, g_cam = self._gather(GALLERY)
        self._val_outputs = [[], []]
        self._log_retrieval("test", q_feat, q_pid, q_cam, g_feat, g_pid, g_cam)

    # ------------------------------------------------------------ optimisation
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameter groups: no decay on norm layers and biases, LR multipliers by glob."""
        hp = self.hparams
        base_lr = float(hp.optimizer.get("lr", 1e-3))
        weight_decay = float(hp.optimizer.get("weight_decay", 0.0))
        multipliers = dict(hp.lr_multipliers or {})
        center_params = {id(p) for p in self.objective.parameters()}
        owner = {}
        for module in self.modules():
            for pname, param in module.named_parameters(recurse=False):
                owner[id(param)] = (module, pname)
        groups: dict[tuple[float, float], list[Tensor]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad or id(param) in center_params:
                continue
            module, pname = owner[id(param)]
            decay = 0.0 if hp.no_decay_norm_and_bias and _is_norm_or_bias(module, pname) \
                else weight_decay
            mult = 1.0
            for pattern, value in multipliers.items():
                if fnmatch.fnmatch(name, pattern):
                    mult = float(value)
            groups.setdefault((mult, decay), []).append(param)
        for pattern in multipliers:
            if not any(fnmatch.fnmatch(n, pattern) for n, _ in self.named_parameters()):
                raise ValueError(f"module.lr_multipliers pattern {pattern!r} matches no parameter")
        return [{"params": params, "lr": base_lr * mult, "weight_decay": decay}
                for (mult, decay), params in groups.items()]

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(self.parameter_groups())
        center = self.objective.center
        if center is not None:
            # centres: plain SGD inside the same optimizer object, so precision plugins
            # unscale / skip / accumulate them with the network (reid.optim)
            optimizer = WithCenterSGD(optimizer, center.parameters(),
                                      lr=self.objective.center_lr,
                                      grad_divisor=self.objective.center_weight)
        if not self.hparams.scheduler or "_target_" not in self.hparams.scheduler:
            # no scheduler (a recipe's leftover values without a scheduler group are no target)
            return optimizer
        if str(self.hparams.scheduler.get("granularity", "step")) == "epoch":
            # stepped by Lightning at epoch ends: the schedule counts epochs, whatever an
            # epoch's length (reid-strong-baseline steps its scheduler once per epoch)
            scheduler = instantiate(self.hparams.scheduler)(optimizer, steps_per_epoch=1)
            interval = "epoch"
        else:
            scheduler = instantiate(self.hparams.scheduler)(
                optimizer, steps_per_epoch=self._steps_per_epoch())
            interval = "step"
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def _steps_per_epoch(self) -> int:
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        epochs = max(1, trainer.max_epochs or 1)
        if total == float("inf") or total <= 0:
            return 1
        return max(1, int(total // epochs))
