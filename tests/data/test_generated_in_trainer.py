"""Generated images through a real Lightning ``Trainer``: every batch holds P x K real images and
then its generated ones (label -1), and Lightning's own ``set_epoch`` gives every epoch new
generated picks (nothing here calls ``set_epoch``)."""

from __future__ import annotations

import lightning as L
import torch
from conftest import TINY_TRAIN
from hydra.utils import instantiate
from test_generated import write_people
from torch import nn

from reidsort.data.generated import GENERATED_LABEL

P, K = 4, 2  # TINY_TRAIN's
GENERATED_PER_BATCH = 4  # ratio 0.5 of P x K


class BatchRecorder(L.LightningModule):
    """A one-layer model that records the labels and dataset indices of every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.batches: dict[int, list[tuple[list[int], list[int]]]] = {}

    def training_step(self, batch, batch_idx):
        images, labels, _, indices = batch
        self.batches.setdefault(self.current_epoch, []).append((labels.tolist(),
                                                                indices.tolist()))
        return self.layer(images.mean(dim=(2, 3))).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(make_config, tmp_path, seed: int) -> tuple[BatchRecorder, int]:
    root = tmp_path / "generated"
    if not root.exists():
        write_people(root, 24)
    cfg = make_config([*TINY_TRAIN, f"data.generated_root={root}", "data.generated_ratio=0.5",
                       "data.batches_per_epoch=3", f"seed={seed}"])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    model = BatchRecorder()
    L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False,
              enable_progress_bar=False, enable_model_summary=False,
              enable_checkpointing=False, use_distributed_sampler=False,
              default_root_dir=tmp_path).fit(model, datamodule=datamodule)
    return model, len(datamodule.train_set)


def test_each_epoch_mixes_new_generated_images_after_the_real_ones(make_config, tmp_path):
    model, num_real = _fit(make_config, tmp_path, seed=0)
    assert sorted(model.batches) == [0, 1]
    picks = {}
    for epoch, batches in model.batches.items():
        assert len(batches) == 3
        for labels, indices in batches:
            assert len(labels) == P * K + GENERATED_PER_BATCH
            assert all(label >= 0 for label in labels[: P * K])
            assert labels[P * K:] == [GENERATED_LABEL] * GENERATED_PER_BATCH
            assert all(i < num_real for i in indices[: P * K])
            assert all(num_real <= i < num_real + 24 for i in indices[P * K:])
        picks[epoch] = [indices[P * K:] for _, indices in batches]
    # 3 batches x 4 of 24 images: one shuffle per epoch, distinct inside it, new the next
    assert picks[0] != picks[1]
    assert len({i for batch in picks[0] for i in batch}) == 12

    same, _ = _fit(make_config, tmp_path, seed=0)
    assert same.batches == model.batches  # same seed: identical batches
