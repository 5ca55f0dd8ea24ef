"""P x K batch sampler: batch structure, DDP sharding, epoch determinism, small identities."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from reidsort.data.sampler import PKBatchSampler

# 20 identities (ids 100..119, deliberately not 0-based) with 2..9 images each, interleaved.
_IMAGES_PER_ID = [2 + (identity * 5) % 8 for identity in range(20)]
PIDS = np.concatenate(
    [np.full(count, 100 + identity) for identity, count in enumerate(_IMAGES_PER_ID)]
)
PIDS = PIDS[np.random.default_rng(0).permutation(len(PIDS))]


def _assert_pk_structure(batch: list[int], p: int, k: int) -> None:
    batch_pids = PIDS[batch]
    assert len(batch) == p * k
    counts = Counter(batch_pids.tolist())
    assert len(counts) == p and set(counts.values()) == {k}
    # Identity-major: each identity's K images are contiguous.
    assert all(len(set(batch_pids[i * k : (i + 1) * k])) == 1 for i in range(p))


def test_one_rank_batches_have_p_distinct_identities_with_k_images_each():
    sampler = PKBatchSampler(PIDS, p=4, k=3, seed=1, num_replicas=1, rank=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 20 // 4
    for batch in batches:
        _assert_pk_structure(batch, p=4, k=3)
    # Every identity used exactly once per epoch (20 identities, 5 batches of 4).
    identities = [PIDS[batch[0 :: 3]].tolist() for batch in batches]
    assert sorted(sum(identities, [])) == list(range(100, 120))


def test_images_are_drawn_without_replacement_when_an_identity_has_enough():
    sampler = PKBatchSampler(PIDS, p=5, k=2, seed=3, num_replicas=1, rank=0)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            for i in range(0, len(batch), 2):
                assert batch[i] != batch[i + 1]  # every identity has >= 2 images


def test_identities_with_fewer_than_k_images_are_sampled_with_replacement():
    pids = [7, 7, 8, 8, 8, 8, 8, 8]  # identity 7 has only 2 images, K is 4
    sampler = PKBatchSampler(pids, p=2, k=4, seed=0, num_replicas=1, rank=0)
    (batch,) = list(sampler)
    small = [index for index in batch if pids[index] == 7]
    large = [index for index in batch if pids[index] == 8]
    assert len(small) == 4 and set(small) <= {0, 1}  # repeats are unavoidable
    assert len(large) == 4 and len(set(large)) == 4  # 6 images: no repeats


@pytest.mark.parametrize("world_size", [2, 4])
def test_rank_slices_are_disjoint_structured_and_union_to_the_global_batch(world_size):
    p, k = 8, 2
    single = PKBatchSampler(PIDS, p=p, k=k, seed=11, num_replicas=1, rank=0)
    single.set_epoch(3)
    per_rank = []
    for rank in range(world_size):
        sampler = PKBatchSampler(PIDS, p=p, k=k, seed=11, num_replicas=world_size, rank=rank)
        sampler.set_epoch(3)
        assert len(sampler) == len(single)
        per_rank.append(list(sampler))
    for batch_index, global_batch in enumerate(single):
        slices = [batches[batch_index] for batches in per_rank]
        for local in slices:
            _assert_pk_structure(local, p=p // world_size, k=k)
        identities = [set(PIDS[local].tolist()) for local in slices]
        assert sum(len(ids) for ids in identities) == len(set().union(*identities))  # disjoint
        assert sum(slices, []) == global_batch  # rank r holds the r-th contiguous slice


def test_set_epoch_changes_the_order_deterministically():
    sampler = PKBatchSampler(PIDS, p=4, k=2, seed=5, num_replicas=1, rank=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 != epoch1
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    twin = PKBatchSampler(PIDS, p=4, k=2, seed=5, num_replicas=1, rank=0)
    twin.set_epoch(1)
    assert list(twin) == epoch1
    other_seed = PKBatchSampler(PIDS, p=4, k=2, seed=6, num_replicas=1, rank=0)
    assert list(other_seed) != epoch0


def test_batches_per_epoch_beyond_one_pass_keeps_identities_distinct():
    sampler = PKBatchSampler(PIDS, p=6, k=2, seed=0, num_replicas=1, rank=0, batches_per_epoch=7)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7  # one pass gives only 20 // 6 = 3
    for batch in batches:
        _assert_pk_structure(batch, p=6, k=2)


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(
        ValueError, match="dataset has 7 identities but the PK sampler needs P=16 per batch"
    ):
        PKBatchSampler(list(range(7)) * 3, p=16, k=4)


def test_p_not_divisible_by_world_size_is_a_clear_error():
    with pytest.raises(ValueError, match="P=6 .* cannot be split evenly over 4 ranks"):
        PKBatchSampler(PIDS, p=6, k=2, num_replicas=4, rank=0)
    with pytest.raises(ValueError, match=r"rank must lie in \[0, 2\)"):
        PKBatchSampler(PIDS, p=4, k=2, num_replicas=2, rank=2)


def test_defaults_to_a_single_process_without_torch_distributed():
    sampler = PKBatchSampler(PIDS, p=4, k=2)
    assert (sampler.num_replicas, sampler.rank) == (1, 0)
