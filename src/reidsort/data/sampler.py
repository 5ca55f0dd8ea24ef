"""P x K identity sampling for metric learning (Hermans et al., 2017).

A batch-hard triplet loss needs every anchor to have positives and negatives in its batch, so
each batch holds P distinct identities with K images each. This module provides that as a
*batch* sampler (it yields lists of dataset indices) that also shards itself across DDP ranks.

Two ways to pick the identities of an epoch (``balance``):

* ``images`` (default, as reid-strong-baseline's ``RandomIdentitySampler``, torchreid and
  fast-reid's ``NaiveIdentitySampler``): every identity's images are shuffled and cut into
  chunks of K, and each batch takes one chunk from each of P identities drawn uniformly among
  those with chunks left, so every image is used about once per epoch and an identity appears
  in proportion to its image count.
* ``identities``: the identities are shuffled and cut into batches of P, so every identity
  appears equally often (K images drawn afresh each time), whatever its image count.

One epoch is ``len(images) // (P x K)`` batches unless ``batches_per_epoch`` says otherwise;
when an epoch needs more than one round of chunks (or of identities), another independently
shuffled round follows, and a batch never spans two rounds, so its P identities are distinct.

Generated images (LSRO, :mod:`reidsort.data.generated`) are an optional tail of every batch:
``generated_per_batch`` indices past the real ones, drawn from their own per-epoch stream so
that the real P x K part of every batch is the same with and without them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import Enum

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

#: third entropy word of the generated images' per-epoch seed (seed, epoch, stream): keeps
#: their draws independent of the real images' generator, which is seeded by seed + epoch
GENERATED_STREAM = 0x4C53524F  # "LSRO"
#: SeedSequence takes non-negative words: a negative config seed is taken modulo 2**64
_SEED_WORD_MASK = (1 << 64) - 1


class Balance(str, Enum):
    """What an epoch of P x K batches is balanced over."""

    IMAGES = "images"
    IDENTITIES = "identities"


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


class EpochRelay(Sampler[int]):
    """The ``sampler`` attribute of a :class:`PKBatchSampler`, so that Lightning reaches it.

    Lightning calls ``set_epoch`` on ``dataloader.sampler`` and ``dataloader.batch_sampler.sampler``
    only (``lightning.fabric.utilities.data._set_sampler_epoch``), never on a batch sampler itself;
    this object forwards that call. Iterating it gives the batch sampler's indices in order.
    """

    def __init__(self, batch_sampler: PKBatchSampler) -> None:
        self.batch_sampler = batch_sampler

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for batch in self.batch_sampler:
            yield from batch

    def __len__(self) -> int:
        return len(self.batch_sampler) * self.batch_sampler.samples_per_rank


class PKBatchSampler(Sampler[list[int]]):
    """Yield batches of P identities x K images, identity-major (id1 x K, id2 x K, ...).

    Every epoch is drawn with a ``torch.Generator`` seeded by ``seed + epoch`` (see the module
    docstring for ``balance`` and the epoch length). For each identity K of its images are
    drawn, without replacement when it has at least K images and with replacement otherwise.

    Under DDP every rank builds the *same* global batches and rank ``r`` keeps identities
    ``[r * P / n, (r + 1) * P / n)`` of each, with all their K images. The ranks' batches are
    therefore disjoint, each has ``(P / n) * K`` samples, and together they are the global
    batch, so the global P x K structure (and the triplet mining it enables) survives
    gathering. With Lightning, pass ``use_distributed_sampler=False`` to the Trainer: this
    sampler shards itself. Lightning's per-epoch ``set_epoch`` reaches it through
    :attr:`sampler` (an :class:`EpochRelay`), also on resume, where the loop passes the
    number of finished epochs; a checkpoint taken mid-epoch restarts that epoch's sequence.

    With ``generated_per_batch = n > 0`` every global batch also holds ``n`` indices of
    generated images, ``num_images + j`` for ``j`` in ``[0, num_generated)`` (the combined
    numbering of :class:`reidsort.data.generated.WithGenerated`), after its P x K real ones.
    They are drawn per epoch from a generator seeded by ``(seed, epoch)`` (not the real images'
    one) from shuffled rounds of all generated images, so every image is used once before any
    is used twice and a batch holds distinct ones (unless it asks for more than there are);
    rank ``r`` keeps the ``r``-th of ``num_replicas`` equal slices of them.
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
        balance: Balance | str = Balance.IMAGES,
        num_generated: int = 0,
        generated_per_batch: int = 0,
    ) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"P and K must be >= 1, got P={p}, K={k}")
        pid_tensor = pids if isinstance(pids, torch.Tensor) else torch.as_tensor(np.asarray(pids))
        if pid_tensor.dim() != 1 or pid_tensor.dtype.is_floating_point:
            raise ValueError(
                f"pids must be a 1-D sequence of integer person ids, got shape "
                f"{tuple(pid_tensor.shape)} and dtype {pid_tensor.dtype}"
            )
        try:
            self.balance = Balance(balance)
        except ValueError:
            raise ValueError(
                f"PK balance {balance!r}: expected one of {', '.join(b.value for b in Balance)}"
            ) from None
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
        if num_generated < 0 or generated_per_batch < 0:
            raise ValueError(f"num_generated and generated_per_batch must be >= 0, got "
                             f"{num_generated} and {generated_per_batch}")
        if generated_per_batch > 0 and num_generated == 0:
            raise ValueError(f"generated_per_batch={generated_per_batch} but there are no "
                             "generated images to draw from")
        if generated_per_batch % num_replicas != 0:
            raise ValueError(
                f"{generated_per_batch} generated images per batch cannot be split evenly over "
                f"{num_replicas} ranks; choose data.generated_ratio so that "
                "round(ratio x P x K) is divisible by the world size"
            )

        self.p = p
        self.k = k
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.num_images = int(identity_of_index.numel())
        self.num_identities = num_identities
        self.num_batches = (
            int(batches_per_epoch) if batches_per_epoch is not None
            else max(1, self.num_images // (p * k))
        )
        self._identity_of_index = identity_of_index
        self._images_per_identity = torch.bincount(identity_of_index, minlength=num_identities)
        self._first_slot_of_identity = (
            torch.cumsum(self._images_per_identity, 0) - self._images_per_identity
        )
        self.num_generated = int(num_generated)
        self.generated_per_batch = int(generated_per_batch)
        # what Lightning calls set_epoch on (see EpochRelay)
        self.sampler = EpochRelay(self)

    @property
    def real_per_rank(self) -> int:
        return (self.p // self.num_replicas) * self.k

    @property
    def generated_per_rank(self) -> int:
        return self.generated_per_batch // self.num_replicas

    @property
    def samples_per_rank(self) -> int:
        return self.real_per_rank + self.generated_per_rank

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose shuffle to produce (same on all ranks), like DistributedSampler."""
        self.epoch = int(epoch)

    def _images_grouped_by_identity(self, generator: torch.Generator) -> torch.Tensor:
        """All dataset indices, grouped by identity, in a random order inside each identity.

        Shuffling all indices by random keys and then stably grouping them by identity gives a
        random order inside each identity's slot range ``[first_slot, first_slot + count)``.
        """
        random_keys = torch.rand(self._identity_of_index.shape[0], generator=generator)
        shuffled = torch.argsort(random_keys, stable=True)
        return shuffled[torch.argsort(self._identity_of_index[shuffled], stable=True)]

    def _draw_k_images_per_identity(self, generator: torch.Generator) -> torch.Tensor:
        """(num_identities, K) dataset indices: K images of every identity, drawn at once.

        The first K slots of a shuffled identity are a draw without replacement; identities
        with fewer than K images take K uniform random slots instead.
        """
        grouped = self._images_grouped_by_identity(generator)
        counts = self._images_per_identity.unsqueeze(1)
        without_replacement = torch.arange(self.k).unsqueeze(0).expand(self.num_identities, -1)
        uniform = torch.rand(self.num_identities, self.k, generator=generator)
        with_replacement = torch.minimum((uniform * counts).long(), counts - 1)
        slot_in_identity = torch.where(counts >= self.k, without_replacement, with_replacement)
        return grouped[self._first_slot_of_identity.unsqueeze(1) + slot_in_identity]

    def _identity_round(self, generator: torch.Generator) -> torch.Tensor:
        """One round of ``balance=identities``: every identity once, in batches of P."""
        identity_order = torch.randperm(self.num_identities, generator=generator)
        images = self._draw_k_images_per_identity(generator)
        usable = (self.num_identities // self.p) * self.p
        return images[identity_order[:usable]].reshape(-1, self.p * self.k)

    def _image_round(self, generator: torch.Generator) -> torch.Tensor:
        """One round of ``balance=images``: every image in about one chunk of K.

        An identity with ``n >= K`` images gives ``n // K`` chunks (the remainder waits for
        another round's shuffle); one with fewer gives one chunk drawn with replacement.
        Batches take one chunk from each of P identities drawn uniformly among those with
        chunks left, until fewer than P such identities remain (reid-strong-baseline).
        """
        grouped = self._images_grouped_by_identity(generator)
        counts = self._images_per_identity
        chunks_left = torch.clamp(counts // self.k, min=1)
        small = counts < self.k
        padded_small = self._draw_k_images_per_identity(generator)
        next_chunk = torch.zeros(self.num_identities, dtype=torch.long)
        offsets = torch.arange(self.k)
        batches = []
        while True:
            available = torch.nonzero(chunks_left > 0).squeeze(1)
            if available.numel() < self.p:
                break
            chosen = available[torch.randperm(available.numel(), generator=generator)[: self.p]]
            starts = self._first_slot_of_identity[chosen] + next_chunk[chosen] * self.k
            # small identities' slots would run into the next identity: replaced just below
            slots = (starts.unsqueeze(1) + offsets).clamp(max=grouped.numel() - 1)
            chunk = grouped[slots]
            chunk = torch.where(small[chosen].unsqueeze(1), padded_small[chosen], chunk)
            batches.append(chunk.reshape(-1))
            next_chunk[chosen] += 1
            chunks_left[chosen] -= 1
        return torch.stack(batches)

    def global_batches(self) -> torch.Tensor:
        """(num_batches, P * K) dataset indices of the epoch's global batches, same on all ranks."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draw_round = self._image_round if self.balance is Balance.IMAGES else self._identity_round
        rounds, total = [], 0
        while total < self.num_batches:
            batches = draw_round(generator)
            rounds.append(batches)
            total += batches.shape[0]
        return torch.cat(rounds)[: self.num_batches]

    def generated_batches(self) -> torch.Tensor:
        """(num_batches, generated_per_batch) indices of the epoch's generated images (offset
        by ``num_images``), same on all ranks; (num_batches, 0) without generated images."""
        if self.generated_per_batch == 0:
            return torch.zeros(self.num_batches, 0, dtype=torch.long)
        words = [self.seed & _SEED_WORD_MASK, self.epoch & _SEED_WORD_MASK, GENERATED_STREAM]
        seed = int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0])
        generator = torch.Generator().manual_seed(seed & ((1 << 63) - 1))
        per_batch, pool = self.generated_per_batch, self.num_generated
        if per_batch > pool:  # more per batch than there are: whole shuffles, then a part
            copies = -(-per_batch // pool)
            picks = torch.stack([
                torch.cat([torch.randperm(pool, generator=generator)
                           for _ in range(copies)])[:per_batch]
                for _ in range(self.num_batches)])
        else:
            # like the real rounds: a shuffle of all generated images gives pool // per_batch
            # batches and a batch never spans two shuffles, so its images are distinct
            batches_per_round = pool // per_batch
            rounds = -(-self.num_batches // batches_per_round)
            picks = torch.cat([
                torch.randperm(pool, generator=generator)[: batches_per_round * per_batch]
                .reshape(batches_per_round, per_batch)
                for _ in range(rounds)])[: self.num_batches]
        return picks + self.num_images

    def __iter__(self) -> Iterator[list[int]]:
        start = self.rank * self.real_per_rank
        local = self.global_batches()[:, start : start + self.real_per_rank]
        if self.generated_per_batch:
            first = self.rank * self.generated_per_rank
            generated = self.generated_batches()[:, first : first + self.generated_per_rank]
            local = torch.cat([local, generated], dim=1)
        yield from local.tolist()

    def __len__(self) -> int:
        """Batches per rank per epoch (every rank gets one slice of every global batch)."""
        return self.num_batches
