"""GAN training callbacks: a sample grid per epoch, FID / KID per n epochs, an epoch line,
and the training-data record in every checkpoint.

* :class:`SampleGrid`: a fixed-seed grid of (EMA) samples after every epoch, saved as
  ``<dirpath>/epoch_XXX.png`` and sent to TensorBoard (``add_image``) and W&B (``log_image``)
  when those loggers are attached: the same latents every epoch, so the grids show training.
* :class:`SampleQuality`: FID and KID of ``num_samples`` (EMA) samples against the real training
  images' features (computed once per fit) with an offline feature network
  (:mod:`reidsort.generative.quality`); logs ``gan/FID``, ``gan/KID``, ``gan/KID_std`` (what the
  checkpoint callback keeps the best epoch by), rewrites ``quality.csv`` and ``quality.png``.
  Under DDP each rank samples a share and the features are gathered, so every rank logs the
  same value.
* :class:`GANEpochSummary`: the Re-ID epoch line with the GAN losses and FID / KID.
* :class:`GANDataRecord`: what the GAN trained on (dataset, sizes, the dataset identity of
  each conditioning label) saved in every checkpoint, for ``task=generate``'s manifest.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from reidsort.generative.images import ImageFormat, grid_image, sample_in_batches, write_image
from reidsort.generative.quality import (
    FeatureNetwork,
    QualityScores,
    RealReference,
    build_feature_network,
    extract_features,
    quality_scores,
)
from reidsort.reid.callbacks import EpochSummary
from reidsort.utils.io import atomic_output, atomic_write_text

log = logging.getLogger(__name__)

#: TensorBoard / W&B key of the sample grid
GRID_TAG = "gan/samples"
#: logged metric names
FID_KEY, KID_KEY, KID_STD_KEY = "gan/FID", "gan/KID", "gan/KID_std"
#: columns of quality.csv
QUALITY_COLUMNS = ("epoch", "step", "fid", "kid", "kid_std", "num_real", "num_fake",
                   "network", "seconds")
#: checkpoint key of :class:`GANDataRecord`
GAN_DATA_KEY = "gan_training_data"
#: what the epoch line shows, in order: metric key -> label
GAN_EPOCH_LINE_METRICS: dict[str, str] = {
    "train/loss_d_epoch": "loss D",
    "train/loss_g_epoch": "loss G",
    "train/d_real_epoch": "D(real)",
    "train/d_fake_epoch": "D(fake)",
    FID_KEY: "FID",
    KID_KEY: "KID",
}


def _is_last_epoch(trainer: L.Trainer) -> bool:
    return trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs


class SampleGrid(L.Callback):
    """``rows x columns`` samples with a fixed seed after every ``every_n_epochs`` epochs."""

    def __init__(self, dirpath: str, rows: int = 4, columns: int = 8, seed: int = 0,
                 use_ema: bool = True, every_n_epochs: int = 1) -> None:
        if int(rows) < 1 or int(columns) < 1:
            raise ValueError(f"gan.grid: rows={rows}, columns={columns} must be >= 1")
        self.dirpath = Path(dirpath)
        self.rows, self.columns = int(rows), int(columns)
        self.seed = int(seed)
        self.use_ema = bool(use_ema)
        self.every_n_epochs = int(every_n_epochs)
        self.paths: list[Path] = []

    def _due(self, trainer: L.Trainer) -> bool:
        if self.every_n_epochs <= 0:
            return False
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0 or _is_last_epoch(trainer)

    def grid(self, pl_module: L.LightningModule) -> np.ndarray:
        """The grid as an ``(H', W', 3)`` uint8 array (the same latents every call)."""
        count = self.rows * self.columns
        images = torch.cat([batch.images.cpu() for batch in sample_in_batches(
            pl_module, count, count, self.seed, use_ema=self.use_ema)])
        return grid_image(images, self.columns)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # sampling needs no other rank, so only rank 0 draws (and writes) the grid
        if not trainer.is_global_zero or not self._due(trainer):
            return
        array = self.grid(pl_module)
        epoch = trainer.current_epoch
        path = write_image(self.dirpath / f"epoch_{epoch:03d}.png", array, ImageFormat.PNG)
        self.paths.append(path)
        for logger in trainer.loggers:
            log_grid(logger, array, trainer.global_step, epoch)


def log_grid(logger: Any, array: np.ndarray, step: int, epoch: int) -> None:
    """Send a grid to a TensorBoard (``add_image``) or W&B-like (``log_image``) logger; other
    loggers (CSV) keep no images."""
    if hasattr(logger, "log_image"):  # W&B (Lightning's WandbLogger), Neptune, ...
        logger.log_image(key=GRID_TAG, images=[array], step=step,
                         caption=[f"epoch {epoch + 1}"])
        return
    experiment = getattr(logger, "experiment", None)
    if hasattr(experiment, "add_image"):  # TensorBoard's SummaryWriter
        experiment.add_image(GRID_TAG, array, global_step=step, dataformats="HWC")


class SampleQuality(L.Callback):
    """FID and KID of generated samples against the real training images."""

    def __init__(self, dirpath: str, network: str = "mobilenet_v2", weights: str | None = None,
                 input_size: list[int] | None = None, num_samples: int = 1000,
                 every_n_epochs: int = 1, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 max_real_images: int | None = None, batch_size: int = 100, seed: int = 0,
                 use_ema: bool = True) -> None:
        if int(num_samples) < 2:
            raise ValueError(f"gan.quality.num_samples={num_samples}: must be >= 2")
        self.dirpath = Path(dirpath)
        self.network_kind = str(network)
        self.weights = None if weights in (None, "") else str(weights)
        self.input_size = None if input_size is None else [int(v) for v in input_size]
        self.num_samples = int(num_samples)
        self.every_n_epochs = int(every_n_epochs)
        self.kid_subsets = int(kid_subsets)
        self.kid_subset_size = int(kid_subset_size)
        self.max_real_images = None if max_real_images is None else int(max_real_images)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.use_ema = bool(use_ema)
        # built now, so a missing weights file fails before any training step
        self.network: FeatureNetwork = build_feature_network(self.network_kind, self.weights,
                                                             self.input_size)
        self.reference: RealReference | None = None
        self.history: list[dict[str, Any]] = []

    @property
    def csv_path(self) -> Path:
        return self.dirpath / "quality.csv"

    @property
    def plot_path(self) -> Path:
        return self.dirpath / "quality.png"

    def _due(self, trainer: L.Trainer) -> bool:
        if self.every_n_epochs <= 0:
            return False
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0 or _is_last_epoch(trainer)

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.network.to(pl_module.device)
        if self.reference is not None:
            return
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "reference_loader"):
            raise TypeError("SampleQuality needs a datamodule with reference_loader() "
                            "(reidsort.generative.data.GANDataModule)")
        started = time.perf_counter()
        loader = datamodule.reference_loader(self.max_real_images, self.batch_size)
        self.reference = RealReference.from_features(
            extract_features(self.network, loader, pl_module.device))
        log.info("sample quality: %d real training images embedded by %s at %dx%d (%.0f s)",
                 len(self.reference.features), self.network.name, *self.network.input_size,
                 time.perf_counter() - started)

    def fake_features(self, trainer: L.Trainer, pl_module: L.LightningModule) -> np.ndarray:
        """Features of ``num_samples`` samples; each rank draws a share (seeded by rank)."""
        world, rank = trainer.world_size, trainer.global_rank
        share = math.ceil(self.num_samples / world)
        batches = sample_in_batches(pl_module, share, self.batch_size,
                                    seed=self.seed + rank, use_ema=self.use_ema,
                                    offset=rank * share)
        features = torch.from_numpy(extract_features(
            self.network, (batch.images for batch in batches), pl_module.device))
        if world > 1:
            gathered = pl_module.all_gather(features.to(pl_module.device))
            features = gathered.reshape(-1, features.shape[1]).cpu()
        return features[: self.num_samples].double().numpy()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._due(trainer) or self.reference is None:
            return
        started = time.perf_counter()
        fake = self.fake_features(trainer, pl_module)
        scores: QualityScores = quality_scores(self.reference, fake, self.kid_subsets,
                                               self.kid_subset_size, seed=self.seed)
        # every rank holds the same numbers (gathered features): no reduction needed
        for key, value in ((FID_KEY, scores.fid), (KID_KEY, scores.kid),
                           (KID_STD_KEY, scores.kid_std)):
            pl_module.log(key, float(value), on_step=False, on_epoch=True, sync_dist=False)
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, "fid": scores.fid,
               "kid": scores.kid, "kid_std": scores.kid_std, "num_real": scores.num_real,
               "num_fake": scores.num_fake, "network": self.network.name,
               "seconds": round(time.perf_counter() - started, 3)}
        # a resumed run re-measures the epoch it resumed at: keep one row per epoch
        self.history = [r for r in self.history if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            self._write_csv()
            self._plot()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.history:
            self._plot()

    # ------------------------------------------------------------------ files
    def _write_csv(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=QUALITY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow({key: row[key] for key in QUALITY_COLUMNS})
        atomic_write_text(self.csv_path, buffer.getvalue())

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [row["epoch"] + 1 for row in self.history]
        fig, (ax_fid, ax_kid) = plt.subplots(1, 2, figsize=(9, 3.4))
        ax_fid.plot(epochs, [row["fid"] for row in self.history], marker="o", ms=3)
        ax_fid.set_title(f"FID ({self.network.name})")
        kid = np.array([row["kid"] for row in self.history])
        kid_std = np.array([row["kid_std"] for row in self.history])
        ax_kid.plot(epochs, kid, marker="o", ms=3)
        ax_kid.fill_between(epochs, kid - kid_std, kid + kid_std, alpha=0.25)
        ax_kid.set_title("KID (mean +- std over subsets)")
        for ax in (ax_fid, ax_kid):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_output(self.plot_path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(row) for row in self.history]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(row) for row in state_dict.get("history", [])]


class GANEpochSummary(EpochSummary):
    """One log line per epoch (``reidsort.train`` logger) with the GAN's losses and FID / KID
    (when measured that epoch)."""

    def __init__(self, metrics: dict[str, str] | None = None) -> None:
        super().__init__()
        self.metrics = dict(metrics or GAN_EPOCH_LINE_METRICS)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        quality = next((c for c in trainer.callbacks if isinstance(c, SampleQuality)), None)
        measured_now = (quality is not None and bool(quality.history)
                        and quality.history[-1]["epoch"] == trainer.current_epoch)
        for key, label in self.metrics.items():
            if key in (FID_KEY, KID_KEY, KID_STD_KEY) and not measured_now:
                continue  # callback_metrics still hold an earlier epoch's value
            value = trainer.callback_metrics.get(key)
            if value is not None and value.numel() == 1:
                parts.append(f"{label} {float(value):.4f}")
        parts.append(f"{time.perf_counter() - self._started:.0f} s")
        logging.getLogger("reidsort.train").info("  ".join(parts))


class GANDataRecord(L.Callback):
    """Puts ``record`` (plain types) into every checkpoint under :data:`GAN_DATA_KEY`."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = dict(record)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[GAN_DATA_KEY] = dict(self.record)


__all__ = [
    "GAN_DATA_KEY",
    "GANDataRecord",
    "GANEpochSummary",
    "SampleGrid",
    "SampleQuality",
    "log_grid",
]
