"""k-reciprocal re-ranking against a direct, dense transcription of the published algorithm."""

from __future__ import annotations

import numpy as np
import pytest

from reidsort.reid.reranking import k_reciprocal_rerank, smallest_k_stable
from reidsort.utils.errors import ReidsortError


def _reference_rerank(query, gallery, k1, k2, lambda_value, metric):
    """Zhong et al. (CVPR 2017) step by step on dense float64 matrices, one item at a time."""
    features = np.concatenate([query, gallery]).astype(np.float64)
    num_queries, num_items = len(query), len(features)
    if metric == "cosine":
        features = features / np.linalg.norm(features, axis=1, keepdims=True)
        distance = 1.0 - features @ features.T
    else:
        distance = np.linalg.norm(features[:, None, :] - features[None, :, :], axis=2)
    original = distance**2
    original = (original / original.max(axis=0)).T  # as published: column max, transposed
    initial_rank = np.argsort(original, axis=1, kind="stable")

    def reciprocal_neighbours(item, k):
        forward = initial_rank[item, : k + 1]
        return [other for other in forward if item in initial_rank[other, : k + 1]]

    half = int(np.around(k1 / 2))
    weights = np.zeros((num_items, num_items))
    for item in range(num_items):
        reciprocal = reciprocal_neighbours(item, k1)
        expansion = list(reciprocal)
        for candidate in reciprocal:
            candidate_set = reciprocal_neighbours(candidate, half)
            if len(set(candidate_set) & set(reciprocal)) > 2.0 / 3.0 * len(candidate_set):
                expansion.extend(candidate_set)
        expansion = np.unique(expansion)
        w = np.exp(-original[item, expansion])
        weights[item, expansion] = w / w.sum()
    if k2 != 1:
        weights = np.stack([weights[initial_rank[i, :k2]].mean(axis=0) for i in range(num_items)])
    jaccard = np.zeros((num_queries, num_items))
    for q in range(num_queries):
        for other in range(num_items):
            shared = np.minimum(weights[q], weights[other]).sum()
            jaccard[q, other] = 1.0 - shared / (2.0 - shared)
    final = (1.0 - lambda_value) * jaccard + lambda_value * original[:num_queries]
    return final[:, num_queries:]


def _clustered_features(seed, num_queries=14, num_gallery=46, identities=9, dim=8):
    """People as noisy copies of identity centres: non-trivial k-reciprocal sets."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim))
    q_ids = rng.integers(0, identities, num_queries)
    g_ids = rng.integers(0, identities, num_gallery)
    query = centres[q_ids] + 0.6 * rng.normal(size=(num_queries, dim))
    gallery = centres[g_ids] + 0.6 * rng.normal(size=(num_gallery, dim))
    return query.astype(np.float32), gallery.astype(np.float32), q_ids, g_ids


@pytest.mark.parametrize(
    ("k1", "k2", "lambda_value", "metric"),
    [(20, 6, 0.3, "euclidean"), (20, 6, 0.3, "cosine"), (7, 1, 0.5, "euclidean"),
     (5, 3, 0.0, "cosine")],
)
def test_matches_the_published_algorithm_on_a_small_case(k1, k2, lambda_value, metric):
    query, gallery, _, _ = _clustered_features(seed=k1 + k2)
    expected = _reference_rerank(query, gallery, k1, k2, lambda_value, metric)
    got = k_reciprocal_rerank(query, gallery, k1=k1, k2=k2, lambda_value=lambda_value,
                              metric=metric, block_rows=5)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)
    # the Jaccard part really contributes: the result is not just the scaled original distance
    assert np.abs(got - expected).max() < 1e-3 < np.abs(got - got.mean()).max()


def test_block_size_does_not_change_the_result():
    query, gallery, _, _ = _clustered_features(seed=3)
    first = k_reciprocal_rerank(query, gallery, k1=10, k2=4, block_rows=3)
    second = k_reciprocal_rerank(query, gallery, k1=10, k2=4, block_rows=1000)
    np.testing.assert_allclose(first, second, rtol=1e-6, atol=1e-7)


def test_reranking_helps_on_clustered_identities():
    from reidsort.reid.metrics import evaluate_retrieval, evaluate_retrieval_from_distmat

    query, gallery, q_ids, g_ids = _clustered_features(seed=11, num_queries=30, num_gallery=120)
    plain = evaluate_retrieval(query, gallery, q_ids, g_ids, metric="euclidean")
    reranked = evaluate_retrieval_from_distmat(
        k_reciprocal_rerank(query, gallery, k1=8, k2=3), q_ids, g_ids
    )
    assert reranked.mAP > plain.mAP


def test_too_large_a_result_fails_clearly_before_any_work():
    query, gallery, _, _ = _clustered_features(seed=1)
    with pytest.raises(ReidsortError, match=r"dense .* GB distance matrix.*max_memory_gb"):
        k_reciprocal_rerank(query, gallery, max_result_bytes=1000)
    with pytest.raises(ValueError, match="k2=30 must not exceed"):
        k_reciprocal_rerank(query, gallery, k1=5, k2=30)


def test_smallest_k_stable_breaks_ties_by_index():
    block = np.array([[3.0, 1.0, 1.0, 0.5, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(smallest_k_stable(block, 3), [[3, 1, 2], [0, 1, 2]])
