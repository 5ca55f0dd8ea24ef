"""Retrieval metrics on hand-made distance matrices with known answers, plus a brute-force check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidsort.reid.metrics import (
    RetrievalResult,
    compute_distance_matrix,
    evaluate_retrieval,
    evaluate_retrieval_from_distmat,
)


def test_perfect_ranking_scores_one():
    # Two queries; each query's two true matches are its two nearest gallery items.
    distmat = np.array([[0.1, 0.2, 0.8, 0.9], [0.7, 0.9, 0.2, 0.1]])
    result = evaluate_retrieval_from_distmat(distmat, [1, 2], [1, 1, 2, 2], max_rank=4)
    assert result.mAP == 1.0 and result.mINP == 1.0
    np.testing.assert_array_equal(result.cmc, [1.0, 1.0, 1.0, 1.0])
    assert result.num_valid_queries == 2 and result.valid_query.tolist() == [True, True]


def test_known_average_precision_and_inp_for_matches_at_ranks_one_and_three():
    # Ranked gallery pids: 1, 2, 1, 3 -> true matches at ranks 1 and 3.
    result = evaluate_retrieval_from_distmat(
        np.array([[0.1, 0.2, 0.3, 0.4]]), [1], [1, 2, 1, 3], max_rank=4
    )
    assert result.mAP == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert result.mINP == pytest.approx(2 / 3)  # 2 matches, the hardest at rank 3
    np.testing.assert_array_equal(result.cmc, [1.0, 1.0, 1.0, 1.0])
    assert result.average_precision.tolist() == pytest.approx([5 / 6])


def test_mean_inp_over_queries_known_value():
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.1, 0.2, 0.3, 0.4]])
    # Query 0 (pid 1): ranked pids 1, 2, 3, 1, 4 -> 2 matches, last at rank 4 -> INP 1/2.
    # Query 1 (pid 2): ranked pids 2, 3, 1, 4, 1 -> 1 match at rank 1 -> INP 1.
    result = evaluate_retrieval_from_distmat(distmat, [1, 2], [1, 2, 3, 1, 4], max_rank=5)
    assert result.inverse_negative_penalty.tolist() == pytest.approx([0.5, 1.0])
    assert result.mINP == pytest.approx(0.75)
    assert result.mAP == pytest.approx(((1 + 2 / 4) / 2 + 1.0) / 2)
    np.testing.assert_allclose(result.cmc, [1.0, 1.0, 1.0, 1.0, 1.0])


def test_camera_exclusion_removes_only_same_pid_same_camera():
    # Query: pid 1, camera 1. Ranked gallery as (pid, camera):
    # (1, 1), (3, 1), (1, 2), (2, 2).
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]])
    g_pids, g_camids = [1, 3, 1, 2], [1, 1, 2, 2]
    with_cameras = evaluate_retrieval_from_distmat(distmat, [1], g_pids, [1], g_camids, max_rank=3)
    # The same-camera copy of pid 1 is gone; the same-camera *other* person stays, at rank 1.
    assert with_cameras.mAP == pytest.approx(1 / 2)
    np.testing.assert_array_equal(with_cameras.cmc, [0.0, 1.0, 1.0])
    assert with_cameras.rank(1) == 0.0 and with_cameras.rank(2) == 1.0

    without_cameras = evaluate_retrieval_from_distmat(distmat, [1], g_pids, max_rank=3)
    assert without_cameras.mAP == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert without_cameras.rank(1) == 1.0


def test_junk_gallery_items_are_removed_for_every_query():
    distmat = np.array([[0.1, 0.2, 0.3], [0.1, 0.3, 0.2]])
    g_pids = [-1, 1, 2]
    for camids in ((None, None), ([0, 0], [1, 1, 1])):
        result = evaluate_retrieval_from_distmat(distmat, [1, 2], g_pids, *camids, max_rank=2)
        assert result.mAP == 1.0 and result.rank(1) == 1.0
    # Without the junk label the same item would push both true matches down to rank 2.
    plain = evaluate_retrieval_from_distmat(distmat, [1, 2], [7, 1, 2], max_rank=2)
    assert plain.rank(1) == 0.0


def test_ties_are_broken_by_gallery_index():
    # Equal distances: the item with the lower gallery index is ranked first.
    wrong_first = evaluate_retrieval_from_distmat(np.array([[0.5, 0.5]]), [1], [2, 1], max_rank=2)
    assert wrong_first.rank(1) == 0.0 and wrong_first.mAP == pytest.approx(0.5)
    right_first = evaluate_retrieval_from_distmat(np.array([[0.5, 0.5]]), [1], [1, 2], max_rank=2)
    assert right_first.rank(1) == 1.0 and right_first.mAP == 1.0
    # Same rule on the features path: identical gallery vectors tie exactly.
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    query = torch.tensor([[1.0, 0.1]])
    result = evaluate_retrieval(query, gallery, [1], [2, 1, 1], max_rank=3)
    assert result.rank(1) == 0.0 and result.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    swapped = evaluate_retrieval(query, gallery, [1], [1, 2, 1], max_rank=3)
    assert swapped.rank(1) == 1.0 and swapped.mAP == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_query_without_true_match_is_skipped_and_counted():
    distmat = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.2, 0.1, 0.3]])
    # Query 1 (pid 9) is absent from the gallery; query 2's only match is in its own camera.
    result = evaluate_retrieval_from_distmat(
        distmat, [1, 9, 2], [1, 2, 3], [0, 0, 1], [1, 1, 1], max_rank=3
    )
    assert result.valid_query.tolist() == [True, False, False]
    assert result.num_valid_queries == 1
    assert result.average_precision.shape == (1,) and result.mAP == 1.0


def test_no_valid_query_is_a_clear_error():
    with pytest.raises(ValueError, match="none of the 1 queries has a true match"):
        evaluate_retrieval_from_distmat(np.array([[0.1, 0.2]]), [5], [1, 2])


def test_cmc_has_max_rank_entries_even_beyond_the_gallery_size():
    result = evaluate_retrieval_from_distmat(np.array([[0.2, 0.1]]), [1], [1, 2], max_rank=5)
    np.testing.assert_array_equal(result.cmc, [0.0, 1.0, 1.0, 1.0, 1.0])
    assert result.summary(ranks=(1, 5, 10)) == {"mAP": 0.5, "mINP": 0.5, "rank1": 0.0, "rank5": 1.0}
    with pytest.raises(ValueError, match="rank k must lie in"):
        result.rank(6)


def test_bad_inputs_are_rejected_with_clear_errors():
    distmat = np.zeros((2, 3))
    with pytest.raises(ValueError, match="g_pids must be 1-D with 3 entries"):
        evaluate_retrieval_from_distmat(distmat, [1, 2], [1, 2])
    with pytest.raises(ValueError, match="for both query and gallery"):
        evaluate_retrieval_from_distmat(distmat, [1, 2], [1, 2, 3], q_camids=[0, 0])
    with pytest.raises(ValueError, match="same feature dimension"):
        evaluate_retrieval(torch.zeros(2, 4), torch.zeros(3, 5), [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="'manhattan' is not a valid DistanceMetric"):
        evaluate_retrieval(
            torch.zeros(2, 4), torch.zeros(3, 4), [1, 2], [1, 2, 3], metric="manhattan"
        )
    with pytest.raises(ValueError, match="NaN"):
        evaluate_retrieval_from_distmat(np.full((1, 2), np.nan), [1], [1, 2])


def _brute_force(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Independent reference: one query at a time, explicit removal and plain Python scoring."""
    average_precisions, inps, first_ranks, valid = [], [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        kept = [
            g for g in order
            if g_pids[g] != -1
            and not (q_camids is not None and g_pids[g] == q_pids[q] and g_camids[g] == q_camids[q])
        ]
        match_ranks = [rank for rank, g in enumerate(kept, start=1) if g_pids[g] == q_pids[q]]
        valid.append(bool(match_ranks))
        if not match_ranks:
            continue
        precisions = [hits / rank for hits, rank in enumerate(match_ranks, start=1)]
        average_precisions.append(sum(precisions) / len(precisions))
        inps.append(len(match_ranks) / match_ranks[-1])
        first_ranks.append(match_ranks[0])
    cmc = [np.mean([first <= k for first in first_ranks]) for k in range(1, max_rank + 1)]
    return np.array(average_precisions), np.array(inps), np.array(cmc), np.array(valid)


@pytest.mark.parametrize("use_cameras", [True, False])
def test_matches_brute_force_on_random_data_with_ties_junk_and_cameras(use_cameras):
    rng = np.random.default_rng(7)
    num_queries, num_gallery = 60, 90
    distmat = rng.integers(0, 12, size=(num_queries, num_gallery)).astype(np.float64)  # many ties
    q_pids = rng.integers(0, 15, size=num_queries)
    g_pids = rng.integers(-1, 12, size=num_gallery)  # some junk, some query ids never in gallery
    q_camids = rng.integers(0, 3, size=num_queries) if use_cameras else None
    g_camids = rng.integers(0, 3, size=num_gallery) if use_cameras else None

    expected_ap, expected_inp, expected_cmc, expected_valid = _brute_force(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank=10
    )
    result = evaluate_retrieval_from_distmat(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank=10, chunk_size=7
    )
    assert 0 < result.num_valid_queries < num_queries  # the data exercises skipping
    np.testing.assert_array_equal(result.valid_query, expected_valid)
    np.testing.assert_allclose(result.average_precision, expected_ap, rtol=1e-12)
    np.testing.assert_allclose(result.inverse_negative_penalty, expected_inp, rtol=1e-12)
    np.testing.assert_allclose(result.cmc, expected_cmc, rtol=1e-12)
    assert result.mAP == pytest.approx(expected_ap.mean(), rel=1e-12)
    assert result.mINP == pytest.approx(expected_inp.mean(), rel=1e-12)


def _random_retrieval_problem(seed: int):
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(40, 16, generator=generator)
    gallery = torch.randn(70, 16, generator=generator)
    q_pids = torch.randint(0, 8, (40,), generator=generator)
    g_pids = torch.randint(0, 8, (70,), generator=generator)
    q_camids = torch.randint(0, 3, (40,), generator=generator)
    g_camids = torch.randint(0, 3, (70,), generator=generator)
    return query, gallery, q_pids, g_pids, q_camids, g_camids


def _assert_same_result(first: RetrievalResult, second: RetrievalResult, rtol: float = 0.0):
    np.testing.assert_array_equal(first.valid_query, second.valid_query)
    np.testing.assert_allclose(first.average_precision, second.average_precision, rtol=rtol)
    np.testing.assert_allclose(
        first.inverse_negative_penalty, second.inverse_negative_penalty, rtol=rtol
    )
    np.testing.assert_allclose(first.cmc, second.cmc, rtol=rtol)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_features_path_equals_independent_distmat_path(metric):
    query, gallery, q_pids, g_pids, q_camids, g_camids = _random_retrieval_problem(seed=3)
    q64, g64 = query.double().numpy(), gallery.double().numpy()
    if metric == "cosine":
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        g64 = g64 / np.linalg.norm(g64, axis=1, keepdims=True)
        distmat = 1.0 - q64 @ g64.T
    else:
        distmat = np.linalg.norm(q64[:, None, :] - g64[None, :, :], axis=2)
    from_features = evaluate_retrieval(
        query, gallery, q_pids, g_pids, q_camids, g_camids, metric=metric, max_rank=10
    )
    from_distmat = evaluate_retrieval_from_distmat(
        distmat, q_pids.numpy(), g_pids.numpy(), q_camids.numpy(), g_camids.numpy(), max_rank=10
    )
    _assert_same_result(from_features, from_distmat, rtol=1e-12)
    dense = compute_distance_matrix(query, gallery, metric).double().numpy()
    np.testing.assert_allclose(dense, distmat, atol=1e-5)


def test_chunk_size_does_not_change_the_result():
    problem = _random_retrieval_problem(seed=5)
    one_at_a_time = evaluate_retrieval(*problem, metric="euclidean", chunk_size=1)
    all_at_once = evaluate_retrieval(*problem, metric="euclidean", chunk_size=1024)
    _assert_same_result(one_at_a_time, all_at_once)
    assert one_at_a_time.mAP == all_at_once.mAP and one_at_a_time.mINP == all_at_once.mINP
