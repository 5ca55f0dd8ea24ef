"""LightningDataModule for Re-ID on any dataset reader (Market-1501, DukeMTMC-reID, MSMT17, MARS,
folder-per-identity) and the built-in synthetic data.

Setup scans the dataset with :mod:`reidsort.data.scan` (cached) and leaves invalid files out,
exactly as ``task=scan`` reports (:meth:`ReIDDataModule.load`).

``generated_root`` adds a folder of generated person images to the *training* batches only
(LSRO, :mod:`reidsort.data.generated`): validation, test, the identity count and everything
:meth:`ReIDDataModule.load` reads (``task=scan``, ``task=eval``) never see them."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from reidsort.data.generated import (
    GENERATED_LABEL,
    GeneratedImageDataset,
    WithGenerated,
    generated_per_batch,
    read_generated_folder,
)
from reidsort.data.image_dataset import ReIDImageDataset
from reidsort.data.loading import (
    FinalSplit,
    LoadedDataset,
    ScanSettings,
    describe,
    finalize_split,
    load_dataset,
)
from reidsort.data.readers import READERS
from reidsort.data.records import ReIDSplit, relabel
from reidsort.data.sampler import Balance, PKBatchSampler
from reidsort.data.transforms import AugmentConfig, eval_transform, train_transform

log = logging.getLogger(__name__)

FORMATS = tuple(READERS)


def synthetic_root(base: str | Path, params: dict[str, Any]) -> Path:
    """Cache folder for synthetic data: one sub-folder per parameter set."""
    from reidsort.data.synthetic.market import GENERATOR_VERSION

    key = json.dumps({"params": params, "version": GENERATOR_VERSION}, sort_keys=True)
    return Path(base) / f"v{GENERATOR_VERSION}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def ensure_synthetic(base: str | Path, params: dict[str, Any]) -> Path:
    """Generate the synthetic dataset for ``params`` unless a matching one is cached already."""
    from reidsort.data.synthetic.market import ensure_synthetic_market1501

    root = synthetic_root(base, params)
    ensure_synthetic_market1501(root, **params)
    return root


def _bad_balance(value: object) -> Balance:
    raise ValueError(f"data.pk_balance={value!r}: expected one of "
                     f"{', '.join(b.value for b in Balance)}")


def world_and_rank(trainer: Any) -> tuple[int, int]:
    """``(world_size, global_rank)`` of the Trainer a datamodule is attached to; ``(1, 0)``
    before it is attached (or when used without Lightning)."""
    return (1, 0) if trainer is None else (trainer.world_size, trainer.global_rank)


class ReIDDataModule(L.LightningDataModule):
    """Identity-labelled images, PK-sampled for training, query/gallery for validation."""

    def __init__(
        self,
        format: str = "market1501",
        root: str | None = None,
        test_root: str | None = None,
        val_identities: float | None = None,
        image_size: tuple[int, int] | list[int] = (256, 128),
        p: int = 16,
        k: int = 4,
        batches_per_epoch: int | None = None,
        pk_balance: str = "images",
        eval_batch_size: int = 128,
        num_workers: int = 4,
        pin_memory: bool = False,
        augment: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        verify_images: bool = True,
        scan: dict[str, Any] | None = None,
        min_samples: int | None = None,
        seed: int | None = 0,
        generated_root: str | None = None,
        generated_ratio: float = 0.25,
    ) -> None:
        super().__init__()
        if format not in FORMATS:
            raise ValueError(f"data.format={format!r}: expected one of {', '.join(FORMATS)}")
        if root is None or str(root) in ("", "???"):
            raise ValueError("data.root is not set: pass data.root=<dataset folder>")
        self.format = format
        self.root = str(root)
        self.test_root = test_root
        self.val_identities = val_identities
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.p, self.k = int(p), int(k)
        self.batches_per_epoch = batches_per_epoch
        self.pk_balance = Balance(pk_balance) if pk_balance in tuple(b.value for b in Balance) \
            else _bad_balance(pk_balance)
        self.eval_batch_size = int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.augment = AugmentConfig(**(augment or {}))
        self.synthetic = dict(synthetic or {})
        self.verify_images = verify_images
        self.scan_settings = ScanSettings.from_config(verify_images, scan)
        self.min_samples = None if min_samples is None else int(min_samples)
        self.seed = int(seed or 0)
        # the folder is read at setup (training only): task=eval rebuilds this module from a
        # checkpoint's record and must not need the generated images
        self.generated_root = None if generated_root in (None, "") else str(generated_root)
        self.generated_ratio = float(generated_ratio)
        self.generated_per_batch = 0
        if self.generated_root is not None:
            self.generated_per_batch = generated_per_batch(self.generated_ratio, self.p, self.k)
            if self.generated_per_batch < 1:
                raise ValueError(
                    f"data.generated_ratio={generated_ratio} gives no generated image in a "
                    f"P{self.p} x K{self.k} batch (round(ratio x P x K) must be >= 1)")
        self.loaded: LoadedDataset | None = None
        self.final: FinalSplit | None = None
        self.split: ReIDSplit | None = None
        self.train_set: ReIDImageDataset | None = None
        self.query_set: ReIDImageDataset | None = None
        self.gallery_set: ReIDImageDataset | None = None
        self.test_query_set: ReIDImageDataset | None = None
        self.test_gallery_set: ReIDImageDataset | None = None
        self.generated_set: GeneratedImageDataset | None = None
        self.unreadable_generated: list[str] = []
        self.label_of_pid: dict[int, int] = {}
        self.unreadable: list[str] = []

    # ------------------------------------------------------------------ setup
    @property
    def dataset_root(self) -> Path:
        if self.format == "synthetic":
            return synthetic_root(self.root, self.synthetic)
        return Path(self.root)

    def prepare_data(self) -> None:
        if self.format == "synthetic":
            ensure_synthetic(self.root, self.synthetic)

    def load(self) -> tuple[LoadedDataset, FinalSplit]:
        """Scan + read + drop invalid files, then carve validation and apply ``min_samples``:
        exactly what ``task=scan`` reports and what :meth:`setup` trains on."""
        if self.loaded is None or self.final is None:
            self.loaded = load_dataset(self.format, self.dataset_root, test_root=self.test_root,
                                       settings=self.scan_settings)
            self.final = finalize_split(self.loaded, val_identities=self.val_identities,
                                        seed=self.seed,
                                        min_samples=self.min_samples, root=self.dataset_root)
            self.unreadable = [p for items in self.loaded.invalid.values() for p, _ in items]
        return self.loaded, self.final

    def report(self) -> dict[str, Any]:
        """JSON-ready account of the data: scan results, reader notes, splits used."""
        loaded, final = self.load()
        return {"format": self.format, "root": str(self.dataset_root),
                "test_root": self.test_root, "min_samples": self.min_samples,
                **describe(loaded, final)}

    def setup(self, stage: str | None = None) -> None:
        self._setup_real()
        if stage in (None, "fit"):  # generated images are for training only
            self._setup_generated()

    def _setup_generated(self) -> None:
        """Read ``generated_root`` (once) into :attr:`generated_set`, with the training
        augmentations: LSRO treats a generated image as one more training image."""
        if self.generated_root is None or self.generated_set is not None:
            return
        folder = read_generated_folder(self.generated_root, self.scan_settings.options,
                                       threads=self.scan_settings.threads)
        self.unreadable_generated = folder.skipped
        assert self.train_set is not None
        self.generated_set = GeneratedImageDataset(folder.paths, self.train_set.transform)
        log.info("data.generated_root=%s: %d generated images, %d per P%d x K%d batch "
                 "(LSRO, label %d)", self.generated_root, len(folder.paths),
                 self.generated_per_batch, self.p, self.k, GENERATED_LABEL)

    def _setup_real(self) -> None:
        if self.split is not None:
            return
        _, final = self.load()
        split = final.split
        self.split = split
        labels, self.label_of_pid = relabel(split.train)
        num_ids = len(self.label_of_pid)
        singles = sum(1 for count in np.bincount(labels) if count < 2)
        if singles:
            log.warning("%s: %d of %d training identities have a single image: batch-hard "
                        "triplet finds no positive for them (data.min_samples=2 drops them)",
                        self.dataset_root, singles, num_ids)
        if num_ids < self.p:
            raise ValueError(
                f"{self.dataset_root}: {num_ids} training identities but the PK sampler needs "
                f"P={self.p} per batch (lower data.p)"
            )
        self.train_set = ReIDImageDataset(
            split.train, labels, train_transform(self.image_size, self.augment)
        )
        evaluation = eval_transform(self.image_size)

        def retrieval_set(records: list) -> ReIDImageDataset:
            return ReIDImageDataset(records, [r.pid for r in records], evaluation)

        self.query_set, self.gallery_set = retrieval_set(split.query), retrieval_set(split.gallery)
        self.test_query_set = retrieval_set(final.test_query)
        self.test_gallery_set = retrieval_set(final.test_gallery)

    @property
    def has_validation(self) -> bool:
        """A validation query/gallery of held-out training identities exists."""
        return self.load()[1].has_validation

    @property
    def has_test(self) -> bool:
        """The dataset's own query/gallery (or ``test_root``'s) exists."""
        return self.load()[1].has_test

    @property
    def num_classes(self) -> int:
        if self.split is None:
            self.setup()
        return len(self.label_of_pid)

    def summary(self) -> dict[str, int]:
        """Split sizes; the generated images are counted apart, never as identities."""
        assert self.split is not None and self.final is not None
        generated = {} if self.generated_root is None else {
            "generated_images": len(self.generated_set) if self.generated_set else 0,
            "unreadable_generated_images": len(self.unreadable_generated)}
        return {
            "train_images": len(self.split.train),
            "train_identities": len(self.label_of_pid),
            "val_identities": len({r.pid for r in self.split.query}),
            "val_query_images": len(self.split.query),
            "val_gallery_images": len(self.split.gallery),
            "test_query_images": len(self.final.test_query),
            "test_gallery_images": len(self.final.test_gallery),
            "unreadable_images": len(self.unreadable),
            "dropped_identities": len(self.final.dropped_identities) if self.final else 0,
            **generated,
        }

    # ------------------------------------------------------------ dataloaders
    def _distributed(self) -> tuple[int, int]:
        return world_and_rank(self.trainer)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        self._setup_generated()
        world, rank = self._distributed()
        dataset: ReIDImageDataset | WithGenerated = self.train_set
        if self.generated_set is not None:
            dataset = WithGenerated(self.train_set, self.generated_set)
        sampler = PKBatchSampler(
            self.train_set.labels.tolist(), p=self.p, k=self.k, seed=self.seed,
            num_replicas=world, rank=rank, batches_per_epoch=self.batches_per_epoch,
            balance=self.pk_balance,
            num_generated=len(self.generated_set) if self.generated_set is not None else 0,
            generated_per_batch=self.generated_per_batch if self.generated_set is not None else 0,
        )
        return DataLoader(
            dataset, batch_sampler=sampler, num_workers=self.num_workers,
            pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0,
        )

    def _eval_loader(self, dataset: ReIDImageDataset) -> DataLoader:
        # Each rank embeds a strided shard; the LightningModule gathers them (indices dedupe).
        world, rank = self._distributed()
        indices = np.arange(len(dataset))[rank::world].tolist()
        from torch.utils.data import Subset

        return DataLoader(
            Subset(dataset, indices), batch_size=self.eval_batch_size, shuffle=False,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> list[DataLoader]:
        """Query + gallery of the held-out training identities (empty without them)."""
        assert self.query_set is not None and self.gallery_set is not None
        if not self.has_validation:
            return []
        return [self._eval_loader(self.query_set), self._eval_loader(self.gallery_set)]

    def test_dataloader(self) -> list[DataLoader]:
        """The dataset's own query + gallery (empty without them)."""
        assert self.test_query_set is not None and self.test_gallery_set is not None
        if not self.has_test:
            return []
        return [self._eval_loader(self.test_query_set), self._eval_loader(self.test_gallery_set)]

    def describe(self) -> dict[str, Any]:
        described = {"format": self.format, "root": str(self.dataset_root),
                     "image_size": list(self.image_size), "p": self.p, "k": self.k,
                     "augment": asdict(self.augment)}
        if self.generated_root is not None:
            described.update(generated_root=self.generated_root,
                             generated_per_batch=self.generated_per_batch)
        return described
