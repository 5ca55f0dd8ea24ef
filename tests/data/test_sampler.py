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


def test_identity_balance_uses_every_identity_once_per_round():
    sampler = PKBatchSampler(PIDS, p=4, k=3, seed=1, num_replicas=1, rank=0,
                             balance="identities", batches_per_epoch=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 20 // 4
    for batch in batches:
        _assert_pk_structure(batch, p=4, k=3)
    # Every identity used exactly once per epoch (20 identities, 5 batches of 4).
    identities = [PIDS[batch[0 :: 3]].tolist() for batch in batches]
    assert sorted(sum(identities, [])) == list(range(100, 120))


def test_default_epoch_is_one_pass_over_the_images():
    # 110 images / (4 x 3) = 9 batches, against 20 // 4 = 5 for one pass over the identities
    for balance in ("images", "identities"):
        sampler = PKBatchSampler(PIDS, p=4, k=3, seed=1, balance=balance)
        assert len(sampler) == len(list(sampler)) == len(PIDS) // 12 == 9
        for batch in sampler:
            _assert_pk_structure(batch, p=4, k=3)


def test_image_balance_uses_each_image_at_most_once_per_round():
    # one round of chunks: identity i gives max(1, n_i // K) chunks; a batch takes P of them
    sampler = PKBatchSampler(PIDS, p=4, k=2, seed=2, balance="images", batches_per_epoch=1)
    round_batches = sampler._image_round(__import__("torch").Generator().manual_seed(0))
    used = Counter(round_batches.reshape(-1).tolist())
    assert max(used.values()) == 1  # every identity here has >= K = 2 images
    chunks = Counter(PIDS[round_batches.reshape(-1).numpy()].tolist())
    for pid, count in chunks.items():
        n = _IMAGES_PER_ID[pid - 100]
        assert count <= (n // 2) * 2
    # identities with more images appear more often: the round ends when < P have chunks left
    assert sum(chunks.values()) >= len(PIDS) - 2 * 20 - 4 * 2 * 3
    for batch in round_batches.tolist():
        _assert_pk_structure(batch, p=4, k=2)


def test_image_balance_pads_small_identities_with_replacement():
    pids = [7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9]  # identity 7 has 2 images, K is 4
    sampler = PKBatchSampler(pids, p=2, k=4, seed=0, balance="images", batches_per_epoch=6)
    for batch in sampler:
        _assert_pk_structure_of(batch, pids, p=2, k=4)
        assert all(pids[i] == pids[batch[j - j % 4]] for j, i in enumerate(batch))
        small = [index for index in batch if pids[index] == 7]
        assert set(small) <= {0, 1}


def _assert_pk_structure_of(batch: list[int], pids: list[int], p: int, k: int) -> None:
    labels = [pids[i] for i in batch]
    assert len(batch) == p * k and len(set(labels)) == p
    assert all(len(set(labels[i * k:(i + 1) * k])) == 1 for i in range(p))


def test_unknown_balance_is_a_clear_error():
    with pytest.raises(ValueError, match="PK balance 'people'"):
        PKBatchSampler(PIDS, p=4, k=2, balance="people")


def test_images_are_drawn_without_replacement_when_an_identity_has_enough():
    sampler = PKBatchSampler(PIDS, p=5, k=2, seed=3, num_replicas=1, rank=0,
                             balance="identities")
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            for i in range(0, len(batch), 2):
                assert batch[i] != batch[i + 1]  # every identity has >= 2 images


def test_identities_with_fewer_than_k_images_are_sampled_with_replacement():
    pids = [7, 7, 8, 8, 8, 8, 8, 8]  # identity 7 has only 2 images, K is 4
    sampler = PKBatchSampler(pids, p=2, k=4, seed=0, num_replicas=1, rank=0,
                             balance="identities")
    (batch,) = list(sampler)
    small = [index for index in batch if pids[index] == 7]
    large = [index for index in batch if pids[index] == 8]
    assert len(small) == 4 and set(small) <= {0, 1}  # repeats are unavoidable
    assert len(large) == 4 and len(set(large)) == 4  # 6 images: no repeats


@pytest.mark.parametrize("balance", ["images", "identities"])
@pytest.mark.parametrize("world_size", [2, 4])
def test_rank_slices_are_disjoint_structured_and_union_to_the_global_batch(world_size, balance):
    p, k = 8, 2
    single = PKBatchSampler(PIDS, p=p, k=k, seed=11, num_replicas=1, rank=0, balance=balance)
    single.set_epoch(3)
    per_rank = []
    for rank in range(world_size):
        sampler = PKBatchSampler(PIDS, p=p, k=k, seed=11, num_replicas=world_size, rank=rank,
                                 balance=balance)
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


@pytest.mark.parametrize("balance", ["images", "identities"])
def test_set_epoch_changes_the_order_deterministically(balance):
    sampler = PKBatchSampler(PIDS, p=4, k=2, seed=5, num_replicas=1, rank=0, balance=balance)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 != epoch1
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    twin = PKBatchSampler(PIDS, p=4, k=2, seed=5, num_replicas=1, rank=0, balance=balance)
    twin.set_epoch(1)
    assert list(twin) == epoch1
    other_seed = PKBatchSampler(PIDS, p=4, k=2, seed=6, num_replicas=1, rank=0,
                                balance=balance)
    assert list(other_seed) != epoch0


@pytest.mark.parametrize("balance", ["images", "identities"])
def test_batches_per_epoch_beyond_one_pass_keeps_identities_distinct(balance):
    sampler = PKBatchSampler(PIDS, p=6, k=2, seed=0, num_replicas=1, rank=0,
                             batches_per_epoch=40, balance=balance)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 40  # one round gives far fewer
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
