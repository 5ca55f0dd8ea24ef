"""GAN training data: the *training* identities of any Re-ID dataset, as images in [-1, 1].

:class:`GANDataModule` wraps the :class:`~reidsort.data.datamodule.ReIDDataModule` that the
``data`` config group builds (any reader, the synthetic data, scanning and the unreadable-file
handling of Re-ID training) and takes ``split.train`` only, with its relabelled identities
0..C-1: the images Re-ID training learns from. The validation query/gallery (identities held out
of training) and the dataset's own query/gallery (the test split) never reach a GAN, so generated
images cannot leak test identities back into Re-ID training.

Batches are ``(images, labels, camids, indices)``: ``images`` float32 ``(B, 3, H, W)`` in
[-1, 1] at the GAN's size (antialiased bilinear resize, optional horizontal flip), ``labels``
long. Shuffling is a seeded :class:`~torch.utils.data.DistributedSampler` (one shard per rank,
reshuffled per epoch through Lightning's ``set_epoch``), so the shared trainer configs'
``use_distributed_sampler: false`` holds here too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision.transforms import v2

from reidsort.data.datamodule import ReIDDataModule, world_and_rank
from reidsort.data.image_dataset import ReIDImageDataset
from reidsort.data.records import ImageRecord, relabel
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: uint8 pixel range mapped onto [-1, 1]
PIXEL_MAX = 255.0
#: probability of a horizontal flip when ``flip`` is on (people are left-right symmetric)
FLIP_PROBABILITY = 0.5
#: the Re-ID data options that only matter to Re-ID training batches, replaced for a GAN: no
#: generated images (a GAN must learn from real people only) and a PK sampler that never blocks
#: a dataset with few identities (the GAN loader does not use it)
GAN_DATA_OVERRIDES: dict[str, Any] = {"generated_root": None, "p": 1, "k": 1}


def check_image_size(image_size: Sequence[int], name: str = "gan.image_size") -> tuple[int, int]:
    """``(height, width)`` as two positive ints; a person crop is taller than wide."""
    if len(image_size) != 2 or any(int(v) < 1 for v in image_size):
        raise ValueError(f"{name}={list(image_size)}: expected [height, width], both positive")
    height, width = int(image_size[0]), int(image_size[1])
    if height <= width:
        raise ValueError(f"{name}={list(image_size)}: expected [height, width] of an upright "
                         f"person (height > width, e.g. [128, 64])")
    return height, width


class ToGANImage:
    """uint8 RGB ``(3, h, w)`` -> float32 ``(3, H, W)`` in [-1, 1] (antialiased bilinear
    resize, then an optional random horizontal flip)."""

    def __init__(self, image_size: Sequence[int], flip: bool) -> None:
        self.size_hw = (int(image_size[0]), int(image_size[1]))
        self.flip = bool(flip)
        self.resize = v2.Resize(self.size_hw, interpolation=v2.InterpolationMode.BILINEAR,
                                antialias=True)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a uint8 (3, H, W) image tensor, got {image.dtype} "
                             f"{tuple(image.shape)}")
        resized = self.resize(image).float()
        if self.flip and float(torch.rand(())) < FLIP_PROBABILITY:
            resized = resized.flip(-1)
        return resized / (PIXEL_MAX / 2) - 1.0

    def __repr__(self) -> str:
        return f"ToGANImage(size_hw={self.size_hw}, flip={self.flip})"


class GANDataModule(L.LightningDataModule):
    """The training images of ``reid`` (a Re-ID data module) for GAN training."""

    def __init__(self, reid: ReIDDataModule, image_size: Sequence[int], batch_size: int = 64,
                 flip: bool = True, num_workers: int = 0, pin_memory: bool = False,
                 seed: int = 0) -> None:
        super().__init__()
        self.reid = reid
        self.image_size = check_image_size(image_size)
        if int(batch_size) < 1:
            raise ValueError(f"gan.data.batch_size={batch_size}: must be >= 1")
        self.batch_size = int(batch_size)
        self.flip = bool(flip)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.seed = int(seed)
        self.records: list[ImageRecord] = []
        self.labels: list[int] = []
        self.label_of_pid: dict[int, int] = {}
        self.train_set: ReIDImageDataset | None = None

    @classmethod
    def from_config(cls, data: DictConfig, **options: Any) -> GANDataModule:
        """Build the Re-ID data module of the ``data`` group (``cfg.data``) and wrap it."""
        reid = instantiate(data, **GAN_DATA_OVERRIDES)
        if not isinstance(reid, ReIDDataModule):
            raise ReidsortError(f"data: expected a Re-ID data option (ReIDDataModule), got "
                                f"{type(reid).__name__}")
        return cls(reid, **options)

    # ------------------------------------------------------------------ setup
    def prepare_data(self) -> None:
        self.reid.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        _, final = self.reid.load()
        records = list(final.split.train)
        root = self.reid.dataset_root
        if not records:
            raise ReidsortError(f"{root}: no training identities to train a GAN on")
        if len(records) < self.batch_size:
            raise ReidsortError(f"{root}: {len(records)} training images, fewer than "
                                f"gan.data.batch_size={self.batch_size} (lower it)")
        self.records = records
        self.labels, self.label_of_pid = relabel(records)
        self.train_set = ReIDImageDataset(records, self.labels,
                                          ToGANImage(self.image_size, self.flip))
        log.info("GAN data: %d training images of %d identities from %s at %dx%d "
                 "(validation and test identities left out)", len(records),
                 len(self.label_of_pid), root, *self.image_size)

    @property
    def num_classes(self) -> int:
        """Training identities (what an identity-conditioned GAN conditions on)."""
        if self.train_set is None:
            self.setup()
        return len(self.label_of_pid)

    @property
    def unreadable(self) -> list[str]:
        """Files the scan left out plus files that failed to decode while training."""
        bad = set(self.reid.unreadable)
        if self.train_set is not None:
            bad |= self.train_set.bad_files
        return sorted(bad)

    def summary(self) -> dict[str, int]:
        if self.train_set is None:
            self.setup()
        return {"train_images": len(self.records), "train_identities": len(self.label_of_pid),
                "unreadable_images": len(self.reid.unreadable)}

    def record(self) -> dict[str, Any]:
        """Plain description of the data (saved in checkpoints): what a GAN was trained on and
        which dataset identity each conditioning label stands for."""
        if self.train_set is None:
            self.setup()
        return {"format": self.reid.format, "root": str(self.reid.dataset_root),
                "image_size": list(self.image_size), **self.summary(),
                "pid_of_label": [pid for pid, _ in sorted(self.label_of_pid.items(),
                                                          key=lambda item: item[1])]}

    # ------------------------------------------------------------ dataloaders
    def _distributed(self) -> tuple[int, int]:
        return world_and_rank(self.trainer)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup()
        assert self.train_set is not None
        world, rank = self._distributed()
        sampler = DistributedSampler(self.train_set, num_replicas=world, rank=rank,
                                     shuffle=True, seed=self.seed, drop_last=True)
        if len(sampler) < self.batch_size:
            raise ReidsortError(f"{self.reid.dataset_root}: {len(sampler)} training images per "
                                f"rank ({world} ranks), fewer than gan.data.batch_size="
                                f"{self.batch_size}")
        # equal batches: batch statistics and the GAN losses see the same batch size every step
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler,
                          drop_last=True, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def reference_loader(self, max_images: int | None = None,
                         batch_size: int | None = None) -> DataLoader:
        """The real images sample quality is measured against: every training image (or a
        seeded subset of ``max_images``), never flipped, in a fixed order."""
        if self.train_set is None:
            self.setup()
        assert self.train_set is not None
        dataset = ReIDImageDataset(self.records, self.labels, ToGANImage(self.image_size, False))
        indices = np.arange(len(dataset))
        if max_images is not None and 0 < int(max_images) < len(indices):
            rng = np.random.default_rng(self.seed)
            indices = np.sort(rng.choice(indices, size=int(max_images), replace=False))
        return DataLoader(Subset(dataset, indices.tolist()),
                          batch_size=int(batch_size or self.batch_size), shuffle=False,
                          num_workers=self.num_workers)


__all__ = ["GANDataModule", "ToGANImage", "check_image_size"]
