"""P x K identity sampling for metric learning (Hermans et al., 2017).

A batch-hard triplet loss needs every anchor to have positives and negatives in its batch, so
each batch holds P distinct identities with K images each. This module provides that as a
*batch* sampler (it yields lists of dataset indices) that also shards itself across DDP ranks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def _resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Fill missing DDP settings from an initialised process group, else assume one process."""
    distributed = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if distributed else 1
    if rank is None:
        rank = dist.get_rank() if distributed else 0
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must lie in [0, {num_replicas}), got {rank}")
    return num_replicas, rank


class PKBatchSampler(Sampler[list[int]]):
    """Yield batches of P identities x K images, identity-major (id1 x K, id2 x K, ...).

    Every epoch, with a ``torch.Generator`` seeded by ``seed + epoch``, the identities are
    shuffled and cut into global batches of P, so each identity appears about once per epoch
    (``len(identities) // P`` batches; leftover identities wait for another epoch's shuffle).
    For each identity K of its images are drawn, without replacement when it has at least K
    images and with replacement otherwise. If ``batches_per_epoch`` asks for more batches than
    one pass gives, further independently shuffled passes follow; a batch never spans two
    passes, so its P identities are always distinct.

    Under DDP every rank builds the *same* global batches and rank ``r`` keeps identities
    ``[r * P / n, (r + 1) * P / n)`` of each, with all their K images. The ranks' batches are
    therefore disjoint, each has ``(P / n) * K`` samples, and together they are the global
    batch, so the global P x K structure (and the triplet mining it enables) survives
    gathering. With Lightning, pass ``use_distributed_sampler=False`` to the Trainer: this
    sampler shards itself. Call :meth:`set_epoch` at each epoch (Lightning does).
    """

    def __init__(
        self,
        pids: Sequence[int] | np.ndarray | torch.Tensor,
        p: int,
        k: int,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        batches_per_epoch: int | None = None,
    ) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"P and K must be >= 1, got P={p}, K={k}")
        pid_tensor = pids if isinstance(pids, torch.Tensor) else torch.as_tensor(np.asarray(pids))
        if pid_tensor.dim() != 1 or pid_tensor.dtype.is_floating_point:
            raise ValueError(
                f"pids must be a 1-D sequence of integer person ids, got shape "
                f"{tuple(pid_tensor.shape)} and dtype {pid_tensor.dtype}"
            )
        _, identity_of_index = torch.unique(pid_tensor.long(), return_inverse=True)
        num_identities = int(identity_of_index.max()) + 1 if identity_of_index.numel() else 0
        if num_identities < p:
            raise ValueError(
                f"dataset has {num_identities} identities but the PK sampler needs P={p} per batch"
            )
        num_replicas, rank = _resolve_replicas(num_replicas, rank)
        if p % num_replicas != 0:
            raise ValueError(
                f"P={p} identities per batch cannot be split evenly over {num_replicas} ranks; "
                "choose P divisible by the world size"
            )
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1 or None, got {batches_per_epoch}")

        self.p = p
        self.k = k
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.num_identities = num_identities
        self.batches_per_pass = num_identities // p
        self.num_batches = (
            batches_per_epoch if batches_per_epoch is not None else self.batches_per_pass
        )
        self._identity_of_index = identity_of_index
        self._images_per_identity = torch.bincount(identity_of_index, minlength=num_identities)
        self._first_slot_of_identity = (
            torch.cumsum(self._images_per_identity, 0) - self._images_per_identity
        )

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose shuffle to produce (same on all ranks), like DistributedSampler."""
        self.epoch = epoch

    def _draw_k_images_per_identity(self, generator: torch.Generator) -> torch.Tensor:
        """(num_identities, K) dataset indices: K images of every identity, drawn at once.

        Shuffling all indices by random keys and then stably grouping them by identity gives a
        random order inside each identity's slot range; its first K slots are a draw without
        replacement. Identities with fewer than K images take K uniform random slots instead.
        """
        random_keys = torch.rand(self._identity_of_index.shape[0], generator=generator)
        shuffled = torch.argsort(random_keys, stable=True)
        grouped = shuffled[torch.argsort(self._identity_of_index[shuffled], stable=True)]

        counts = self._images_per_identity.unsqueeze(1)
        without_replacement = torch.arange(self.k).unsqueeze(0).expand(self.num_identities, -1)
        uniform = torch.rand(self.num_identities, self.k, generator=generator)
        with_replacement = (uniform * counts).long()
        with_replacement = torch.minimum(with_replacement, counts - 1)
        slot_in_identity = torch.where(counts >= self.k, without_replacement, with_replacement)
        return grouped[self._first_slot_of_identity.unsqueeze(1) + slot_in_identity]

    def global_batches(self) -> torch.Tensor:
        """(num_batches, P * K) dataset indices of the epoch's global batches, same on all ranks."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        identities_per_pass = self.batches_per_pass * self.p
        passes = []
        for _ in range(math.ceil(self.num_batches / self.batches_per_pass)):
            identity_order = torch.randperm(self.num_identities, generator=generator)
            images = self._draw_k_images_per_identity(generator)
            passes.append(images[identity_order[:identities_per_pass]].reshape(-1, self.p * self.k))
        return torch.cat(passes)[: self.num_batches]

    def __iter__(self) -> Iterator[list[int]]:
        samples_per_rank = (self.p // self.num_replicas) * self.k
        start = self.rank * samples_per_rank
        local = self.global_batches()[:, start : start + samples_per_rank]
        yield from local.tolist()

    def __len__(self) -> int:
        """Batches per rank per epoch (every rank gets one slice of every global batch)."""
        return self.num_batches
