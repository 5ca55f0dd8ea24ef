"""The AFLink LightningModule: cross-entropy on same/different pairs (reference
``AFLink/train.py``: Adam, lr 1e-3, weight decay 1e-5, cosine annealing to 1e-5 over the
epochs), validation accuracy, ROC AUC and the precision / recall of "same" at the inference
threshold."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import nn
from torchmetrics.functional.classification import binary_auroc

from reidsort.linking.model import (
    DEFAULT_CHANNELS,
    DEFAULT_TEMPORAL_KERNEL,
    SAME,
    AFLinkNet,
)
from reidsort.tracking.aflink import DEFAULT_INPUT_LENGTH, DEFAULT_MAX_COST


class AFLinkModule(L.LightningModule):
    def __init__(
        self,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        temporal_kernel: int = DEFAULT_TEMPORAL_KERNEL,
        input_length: int = DEFAULT_INPUT_LENGTH,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        min_lr: float = 1e-5,
        link_max_cost: float = DEFAULT_MAX_COST,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = AFLinkNet(list(channels), temporal_kernel, input_length)
        self.loss = nn.CrossEntropyLoss()
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    def forward(self, former: torch.Tensor, latter: torch.Tensor) -> torch.Tensor:
        return self.net(former, latter)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        former, latter, labels = batch
        logits = self.net(former, latter)
        loss = self.loss(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.log("train/acc", accuracy, batch_size=len(labels))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        former, latter, labels = batch
        logits = self.net(former, latter)
        self.log("val/loss", self.loss(logits, labels), batch_size=len(labels))
        self._val_probs.append(torch.softmax(logits, dim=1)[:, SAME].detach())
        self._val_labels.append(labels.detach())

    def on_validation_epoch_end(self) -> None:
        if not self._val_probs:
            return
        probs, labels = torch.cat(self._val_probs), torch.cat(self._val_labels)
        self._val_probs.clear()
        self._val_labels.clear()
        same = labels == SAME
        linked = probs > 1.0 - self.hparams.link_max_cost  # what postprocess=aflink accepts
        self.log("val/acc", ((probs > 0.5) == same).float().mean())
        if same.any() and (~same).any():
            self.log("val/auc", binary_auroc(probs, labels))
        self.log("val/recall_at_link", (linked & same).sum() / same.sum().clamp(min=1))
        self.log("val/precision_at_link", (linked & same).sum() / linked.sum().clamp(min=1))
        self.log("val/pairs", float(len(labels)))

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        epochs = self.trainer.max_epochs if self.trainer and self.trainer.max_epochs else 1
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, int(epochs)), eta_min=self.hparams.min_lr
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
