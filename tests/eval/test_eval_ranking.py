"""The counted (sort-free) ranking: both backends, top-k lists and first-match ranks agree with
a plain stable argsort of every row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidsort.reid.metrics import evaluate_retrieval, evaluate_retrieval_from_distmat
from reidsort.reid.ranking import SameIdentityIndex, score_block, top_k_block


def _kept_order(distmat, q, q_pids, g_pids, q_camids, g_camids):
    """Gallery indices of query q in stable order, junk and same-id-same-camera removed."""
    order = np.argsort(distmat[q], kind="stable")
    return [
        g for g in order
        if g_pids[g] != -1
        and not (q_camids is not None and g_pids[g] == q_pids[q] and g_camids[g] == q_camids[q])
    ]


def _problem(seed, num_queries=40, num_gallery=70, levels=9):
    rng = np.random.default_rng(seed)
    distmat = rng.integers(0, levels, size=(num_queries, num_gallery)).astype(np.float32)  # ties
    q_pids = rng.integers(0, 10, num_queries)
    g_pids = rng.integers(-1, 10, num_gallery)
    q_camids = rng.integers(0, 3, num_queries)
    g_camids = rng.integers(0, 3, num_gallery)
    return distmat, q_pids, g_pids, q_camids, g_camids


def _block_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    keep = g_pids != -1
    same = SameIdentityIndex.build(g_pids[keep]).lookup(q_pids)
    present = same >= 0
    removed = present & (g_camids[keep][np.where(present, same, 0)] == q_camids[:, None])
    return np.ascontiguousarray(distmat[:, keep]), same, removed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_and_torch_backends_give_identical_scores(seed):
    block, same, removed = _block_inputs(*_problem(seed))
    from_numpy, rows_np, ranks_np = score_block(block, same, removed)
    from_torch, rows_t, ranks_t = score_block(torch.from_numpy(block), same, removed)
    for field in ("valid", "average_precision", "inverse_negative_penalty", "first_rank"):
        np.testing.assert_array_equal(getattr(from_numpy, field), getattr(from_torch, field))
    np.testing.assert_array_equal(rows_np, rows_t)
    np.testing.assert_array_equal(ranks_np, ranks_t)


@pytest.mark.parametrize("seed", [0, 4])
def test_match_ranks_equal_positions_in_the_stable_kept_order(seed):
    distmat, q_pids, g_pids, q_camids, g_camids = _problem(seed)
    block, same, removed = _block_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    _, rows, ranks = score_block(block, same, removed)
    expected_rows, expected_ranks = [], []
    for q in range(len(q_pids)):
        kept = _kept_order(distmat, q, q_pids, g_pids, q_camids, g_camids)
        for rank, g in enumerate(kept, start=1):
            if g_pids[g] == q_pids[q]:
                expected_rows.append(q)
                expected_ranks.append(rank)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(ranks, expected_ranks)


@pytest.mark.parametrize("use_torch", [False, True])
def test_top_k_lists_are_the_first_k_of_the_kept_stable_order(use_torch):
    distmat, q_pids, g_pids, q_camids, g_camids = _problem(seed=5, levels=4)  # many ties at k
    matrix = torch.from_numpy(distmat) if use_torch else distmat
    result = evaluate_retrieval_from_distmat(matrix, q_pids, g_pids, q_camids, g_camids,
                                             top_k=6, chunk_size=9)
    for q in range(len(q_pids)):
        kept = _kept_order(distmat, q, q_pids, g_pids, q_camids, g_camids)[:6]
        np.testing.assert_array_equal(result.top_k_indices[q], kept)
        np.testing.assert_array_equal(result.top_k_distances[q], distmat[q, kept])


def test_top_k_backends_agree_including_ties_at_the_boundary():
    block, same, removed = _block_inputs(*_problem(seed=6, levels=3))
    from_numpy = top_k_block(block, 5, same, removed)
    from_torch = top_k_block(torch.from_numpy(block), 5, same, removed)
    for numpy_part, torch_part in zip(from_numpy, from_torch):
        np.testing.assert_array_equal(numpy_part, torch_part)


def test_top_k_pads_when_the_gallery_is_smaller_than_k():
    result = evaluate_retrieval_from_distmat(np.array([[0.3, 0.1, 0.2]]), [1], [1, -1, 2],
                                             top_k=4)
    np.testing.assert_array_equal(result.top_k_indices, [[2, 0, -1, -1]])
    np.testing.assert_array_equal(result.top_k_distances, [[0.2, 0.3, np.inf, np.inf]])


def test_first_match_rank_and_scores_match_a_full_argsort_on_float32_features():
    rng = np.random.default_rng(9)
    query = rng.normal(size=(150, 32)).astype(np.float32)
    gallery = rng.normal(size=(900, 32)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, 60, 150), rng.integers(0, 60, 900)
    q_cams, g_cams = rng.integers(0, 4, 150), rng.integers(0, 4, 900)
    result = evaluate_retrieval(query, gallery, q_pids, g_pids, q_cams, g_cams, chunk_size=64)
    q64 = query / np.linalg.norm(query, axis=1, keepdims=True)
    g64 = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    distmat = 1.0 - q64.astype(np.float64) @ g64.astype(np.float64).T
    first_ranks, aps = [], []
    for q in range(150):
        kept = _kept_order(distmat, q, q_pids, g_pids, q_cams, g_cams)
        hits = np.flatnonzero(g_pids[kept] == q_pids[q]) + 1
        if hits.size:
            first_ranks.append(hits[0])
            aps.append(np.mean(np.arange(1, hits.size + 1) / hits))
    np.testing.assert_array_equal(result.first_match_rank, first_ranks)
    np.testing.assert_allclose(result.average_precision, aps, rtol=1e-9)
