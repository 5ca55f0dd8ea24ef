"""The PK sampler inside a real Lightning ``Trainer``: a new epoch gives new batches, and a
resumed run continues the batch sequence of an uninterrupted one.

Nothing here calls ``set_epoch``: Lightning must reach the sampler itself (it only calls
``set_epoch`` on ``dataloader.sampler`` and ``dataloader.batch_sampler.sampler``).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from conftest import TINY_TRAIN


class IndexRecorder(L.LightningModule):
    """A one-layer model that records the dataset indices of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.batches: dict[int, list[list[int]]] = {}

    def training_step(self, batch, batch_idx):
        images, _, _, indices = batch
        self.batches.setdefault(self.current_epoch, []).append(indices.tolist())
        return self.layer(images.mean(dim=(2, 3))).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _datamodule(make_config, workers: int = 0):
    cfg = make_config([*TINY_TRAIN, "data.batches_per_epoch=3", f"data.num_workers={workers}"])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    return datamodule


def _trainer(max_epochs: int, root: Path, **kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     use_distributed_sampler=False, default_root_dir=root, **kwargs)


@pytest.mark.parametrize("workers", [0, 1])
def test_every_epoch_draws_new_batches(make_config, tmp_path, workers):
    model = IndexRecorder()
    trainer = _trainer(3, tmp_path, enable_checkpointing=False)
    trainer.fit(model, datamodule=_datamodule(make_config, workers))
    epochs = [model.batches[e] for e in range(3)]
    assert all(len(batches) == 3 for batches in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and epochs[0] != epochs[2]


def test_a_resumed_run_continues_the_uninterrupted_sequence(make_config, tmp_path):
    uninterrupted = IndexRecorder()
    _trainer(3, tmp_path / "a", enable_checkpointing=False).fit(
        uninterrupted, datamodule=_datamodule(make_config))

    first = IndexRecorder()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(2, tmp_path / "b", callbacks=[checkpoint]).fit(
        first, datamodule=_datamodule(make_config))
    resumed = IndexRecorder()
    _trainer(3, tmp_path / "c", enable_checkpointing=False).fit(
        resumed, datamodule=_datamodule(make_config), ckpt_path=tmp_path / "ckpt" / "last.ckpt")

    assert first.batches == {0: uninterrupted.batches[0], 1: uninterrupted.batches[1]}
    assert list(resumed.batches) == [2]
    assert resumed.batches[2] == uninterrupted.batches[2]
