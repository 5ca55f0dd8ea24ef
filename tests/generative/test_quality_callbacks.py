"""SampleGrid and SampleQuality in a real (tiny, CPU) Lightning fit, with a stand-in GAN module
that has GANModule's interface (sample(n, labels, seed, use_ema), manual optimisation)."""

from __future__ import annotations

import copy
import csv
import logging

import lightning as L
import numpy as np
import pytest
import torch
from feature_ckpt import write_feature_checkpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from PIL import Image
from torch import nn

from reidsort.generative.callbacks import (
    GAN_DATA_KEY,
    GANDataRecord,
    GANEpochSummary,
    SampleGrid,
    SampleQuality,
)
from reidsort.generative.data import GANDataModule
from reidsort.generative.images import sample_in_batches

IMAGE_HW = (32, 16)
LATENT = 8
TINY_DATA = [
    "data.synthetic.num_identities=16",
    "data.synthetic.num_cameras=2",
    "data.synthetic.images_per_identity_camera=2",
    "data.val_identities=2",
    "data.num_workers=0",
]


class StandInGAN(L.LightningModule):
    """A linear 'generator' trained to reproduce the batch: enough to move weights, sample
    deterministically and be checkpointed. ``replay`` makes sample() return those images."""

    def __init__(self, num_classes: int = 0, conditional: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Linear(LATENT, 3 * IMAGE_HW[0] * IMAGE_HW[1])
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.replay: torch.Tensor | None = None
        self.sampled_labels: list[torch.Tensor | None] = []

    def training_step(self, batch, batch_idx):
        images = batch[0]
        optimizer = self.optimizers()
        fake = torch.tanh(self.generator(torch.randn(len(images), LATENT)))
        loss = (fake - images.flatten(1)).pow(2).mean()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        with torch.no_grad():
            for ema, live in zip(self.generator_ema.parameters(), self.generator.parameters()):
                ema.lerp_(live, 0.5)
        self.log("train/loss_d", loss, on_step=True, on_epoch=True)
        self.log("train/loss_g", loss * 2, on_step=True, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.generator.parameters(), lr=0.1)

    @torch.no_grad()
    def sample(self, n, labels=None, seed=None, use_ema=True):
        self.sampled_labels.append(labels)
        if self.replay is not None:
            # conditional replay: label i is real image i (shows which images a rank drew)
            chosen = labels if labels is not None else torch.arange(n)
            return self.replay[chosen].to(self.device)
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        z = torch.randn(n, LATENT, generator=generator).to(self.device)
        net = self.generator_ema if use_ema else self.generator
        return torch.tanh(net(z)).view(n, 3, *IMAGE_HW)


class ImageRecorder(Logger):
    """A logger with W&B's log_image(key, images, step, caption) signature."""

    def __init__(self):
        super().__init__()
        self.images: list[tuple[str, np.ndarray, int, list[str]]] = []

    name = "recorder"
    version = "0"

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_image(self, key, images, step=None, caption=None):
        self.images.extend((key, image, step, caption) for image in images)


@pytest.fixture(scope="module")
def features_ckpt(tmp_path_factory) -> str:
    return str(write_feature_checkpoint(tmp_path_factory.mktemp("features")))


@pytest.fixture
def gan_data(make_config) -> GANDataModule:
    cfg = make_config(TINY_DATA)
    data = GANDataModule.from_config(cfg.data, image_size=list(IMAGE_HW), batch_size=4, seed=0,
                                     flip=False)
    data.prepare_data()
    data.setup("fit")
    return data


def _fit(module, data, callbacks, tmp_path, epochs=2, loggers=False, ckpt_path=None):
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, limit_train_batches=2,
                        callbacks=callbacks, logger=loggers, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path),
                        enable_checkpointing=False, use_distributed_sampler=False)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def test_sample_grid_writes_upright_pngs_and_logs_them(gan_data, tmp_path):
    grid = SampleGrid(str(tmp_path / "grids"), rows=2, columns=3, seed=5)
    recorder = ImageRecorder()
    tensorboard = TensorBoardLogger(str(tmp_path / "tb"), name=None, version="")
    module = StandInGAN()
    trainer = _fit(module, gan_data, [grid], tmp_path, loggers=[tensorboard, recorder])
    files = sorted(p.name for p in (tmp_path / "grids").iterdir())
    assert files == ["epoch_000.png", "epoch_001.png"]
    pad = 2
    with Image.open(tmp_path / "grids" / "epoch_001.png") as image:
        # 3 tiles W wide side by side, 2 tiles H tall stacked: a wide grid of upright people
        assert image.size == (3 * (IMAGE_HW[1] + pad) + pad, 2 * (IMAGE_HW[0] + pad) + pad)
        saved = np.asarray(image.convert("RGB"))
    # the same seed: the grid of the final weights is the one saved last
    assert np.array_equal(saved, grid.grid(module))
    # tile (0, 1) is sample 1 of the fixed latents, upright and uint8-scaled
    expected = module.sample(6, seed=None)  # not the grid's seed: must differ
    first = next(sample_in_batches(module, 6, 6, seed=5)).images
    tile = saved[pad:pad + IMAGE_HW[0], 2 * pad + IMAGE_HW[1]:2 * pad + 2 * IMAGE_HW[1]]
    want = ((first[1].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    assert np.abs(tile.astype(int) - want.astype(int)).max() <= 1
    assert not torch.allclose(expected, first)
    # W&B-style loggers get log_image, TensorBoard add_image
    assert [(key, step) for key, _, step, _ in recorder.images] == [
        ("gan/samples", 2), ("gan/samples", 4)]
    assert recorder.images[0][1].shape == saved.shape and recorder.images[1][3] == ["epoch 2"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert "gan/samples" in events.Tags()["images"]
    logged = events.Images("gan/samples")
    assert [e.step for e in logged] == [2, 4]
    assert (logged[-1].width, logged[-1].height) == (saved.shape[1], saved.shape[0])
    assert trainer.global_step == 4


def test_a_conditional_grid_cycles_the_identities(gan_data, tmp_path):
    module = StandInGAN(num_classes=3, conditional=True)
    SampleGrid(str(tmp_path), rows=2, columns=4).grid(module)
    assert module.sampled_labels[-1].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


def test_sample_quality_is_zero_for_the_real_images_and_large_for_noise(gan_data, tmp_path,
                                                                         caplog, features_ckpt):
    caplog.set_level(logging.INFO, logger="reidsort.train")
    real = torch.cat([b[0] for b in gan_data.reference_loader(batch_size=64)])
    quality = SampleQuality(str(tmp_path / "q"), network="reid", weights=features_ckpt, num_samples=len(real), batch_size=len(real),
                            kid_subsets=5, kid_subset_size=16, every_n_epochs=2)
    replay = StandInGAN()
    replay.replay = real
    trainer = _fit(replay, gan_data, [quality, GANEpochSummary()], tmp_path, epochs=3)
    # epochs 2 and 3 (every 2nd, and the last); scored against the same images: ~0
    assert [row["epoch"] for row in quality.history] == [1, 2]
    fid = float(trainer.callback_metrics["gan/FID"])
    trace = float(np.trace(quality.reference.covariance))
    assert abs(fid) < 1e-6 * trace
    # KID compares random subsets of the two sets: unbiased, so about 0 (either sign)
    kid = float(trainer.callback_metrics["gan/KID"])
    assert float(trainer.callback_metrics["gan/KID_std"]) >= 0
    with open(tmp_path / "q" / "quality.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and rows[0]["network"] == "reid:last.ckpt"
    assert int(rows[0]["num_real"]) == int(rows[0]["num_fake"]) == len(real)
    assert (tmp_path / "q" / "quality.png").stat().st_size > 1000
    lines = [r.getMessage() for r in caplog.records if r.name == "reidsort.train"]
    assert len(lines) == 3 and "loss D" in lines[0] and "FID" in lines[-1]

    noise = SampleQuality(str(tmp_path / "n"), network="reid", weights=features_ckpt, num_samples=len(real), batch_size=16,
                          kid_subsets=5, kid_subset_size=16)
    _fit(StandInGAN(), gan_data, [noise], tmp_path, epochs=1)
    assert noise.history[0]["fid"] > 100 * max(abs(fid), 1e-6)
    assert noise.history[0]["kid"] > 10 * noise.history[0]["kid_std"] / np.sqrt(5)
    assert noise.history[0]["kid"] > 5 * abs(kid)
    # the same seed samples the same images: the same score for the same weights
    assert noise.history[0]["num_fake"] == len(real)


def test_quality_history_survives_a_checkpoint(tmp_path, features_ckpt):
    quality = SampleQuality(str(tmp_path), "reid", features_ckpt, num_samples=4)
    quality.history = [{"epoch": 0, "step": 2, "fid": 3.0, "kid": 0.1, "kid_std": 0.01,
                        "num_real": 4, "num_fake": 4, "network": "mobilenet_v2",
                        "seconds": 0.1}]
    restored = SampleQuality(str(tmp_path), "reid", features_ckpt, num_samples=4)
    restored.load_state_dict(quality.state_dict())
    assert restored.history == quality.history


def test_the_data_record_is_saved_in_checkpoints(gan_data, tmp_path):
    record = gan_data.record()
    trainer = _fit(StandInGAN(), gan_data, [GANDataRecord(record)], tmp_path, epochs=1)
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint[GAN_DATA_KEY] == record


def test_bad_quality_settings_fail_before_training(tmp_path, features_ckpt):
    with pytest.raises(ValueError, match="num_samples"):
        SampleQuality(str(tmp_path), "reid", features_ckpt, num_samples=1)
    with pytest.raises(Exception, match="not found"):
        SampleQuality(str(tmp_path), weights=str(tmp_path / "missing.pt"), input_size=[64, 32])


def test_a_real_wandb_logger_stores_the_grid_offline(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    from reidsort.generative.callbacks import log_grid

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="reidsort-test")
    grid = np.zeros((2 * (IMAGE_HW[0] + 2) + 2, 3 * (IMAGE_HW[1] + 2) + 2, 3), np.uint8)
    grid[5:9, 5:9] = 255
    try:
        log_grid(logger, grid, step=4, epoch=1)
    finally:
        logger.experiment.finish()
    stored = list(tmp_path.glob("wandb/offline-run-*/files/media/images/gan/samples_*.png"))
    assert len(stored) == 1
    with Image.open(stored[0]) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), grid)


class RecordRankMetrics(L.Callback):
    """Writes each rank's gan/* metrics and the images its loader gave it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.indices: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.indices.extend(batch[3].tolist())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        import json
        from pathlib import Path

        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith("gan/")}
        Path(self.folder, f"rank{trainer.global_rank}.json").write_text(
            json.dumps({"metrics": metrics, "indices": self.indices}))


def test_two_process_ddp_shards_samples_and_logs_the_same_scores(gan_data, tmp_path,
                                                                  features_ckpt):
    import json

    real = torch.cat([b[0] for b in gan_data.reference_loader(batch_size=64)])
    count = len(real) - len(real) % 2
    replay = StandInGAN(num_classes=count, conditional=True)
    replay.replay = real[:count]
    quality = SampleQuality(str(tmp_path / "q"), network="reid", weights=features_ckpt,
                            num_samples=count, batch_size=5, kid_subsets=3,
                            kid_subset_size=8)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1,
                        limit_train_batches=2, use_distributed_sampler=False, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=[quality, RecordRankMetrics(str(tmp_path))])
    trainer.fit(replay, datamodule=gan_data)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    # rank r drew labels r * N/2 ..: gathered, they are every real image once, so FID ~ 0
    trace = float(np.trace(np.cov(extract_reference(quality, real[:count]), rowvar=False)))
    assert abs(ranks[0]["metrics"]["gan/FID"]) < 1e-6 * trace
    # the GAN loader gave the ranks disjoint images
    assert not set(ranks[0]["indices"]) & set(ranks[1]["indices"])
    with open(tmp_path / "q" / "quality.csv") as handle:
        assert int(next(csv.DictReader(handle))["num_fake"]) == count


def extract_reference(quality: SampleQuality, images: torch.Tensor) -> np.ndarray:
    from reidsort.generative.quality import extract_features

    return extract_features(quality.network.cpu(), [images])


def test_epoch_line_shows_fid_only_in_epochs_that_measured_it(gan_data, tmp_path, caplog,
                                                              features_ckpt):
    caplog.set_level(logging.INFO, logger="reidsort.train")
    quality = SampleQuality(str(tmp_path / "q"), network="reid", weights=features_ckpt,
                            num_samples=16, batch_size=16, kid_subsets=2, kid_subset_size=8,
                            every_n_epochs=2)
    _fit(StandInGAN(), gan_data, [quality, GANEpochSummary()], tmp_path, epochs=4)
    assert [row["epoch"] for row in quality.history] == [1, 3]
    lines = [r.getMessage() for r in caplog.records if r.name == "reidsort.train"]
    assert ["FID" in line for line in lines] == [False, True, False, True]
