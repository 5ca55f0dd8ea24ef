"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li: "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), computed from features without any dense (N x N) matrix.

The published algorithm, over all N = Q + G query and gallery items:

1. ``P`` = squared distance, each row divided by its maximum.
2. ``R(i)`` = the k-reciprocal neighbours of ``i``: items among its ``k1 + 1`` nearest whose own
   ``k1 + 1`` nearest contain ``i``. Each ``c`` in ``R(i)`` whose half-size set
   ``R_half(c)`` (``round(k1 / 2)``) shares more than 2/3 of its items with ``R(i)`` adds them.
3. ``V[i, j] = exp(-P[i, j])`` over that expanded set, rows normalised to sum 1; local query
   expansion replaces each row by the mean of the rows of its ``k2`` nearest items.
4. Jaccard distance ``1 - s / (2 - s)`` with ``s = sum_k min(V[q, k], V[g, k])``, and the final
   distance ``(1 - lambda) * jaccard + lambda * P[q, g]``.

Here only the ``k1 + 1`` nearest neighbours of each item are kept (found in row blocks), ``V`` is
a sparse matrix, and the Jaccard sums run over an inverted index, so memory is O(N * k1^2) plus the
(Q, G) float32 result; compute is the O(N^2 * D) all-pairs distance pass. Ties in the neighbour
lists are broken by index (the published code used an unstable argsort).

Limit: the result is a dense (Q, G) float32 matrix, e.g. 8 GB for 20,000 x 100,000; a run that
would exceed ``max_result_bytes`` fails with a clear message instead of exhausting memory.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from reidsort.reid.metrics import DistanceMetric
from reidsort.utils.errors import ReidsortError

DEFAULT_K1 = 20
DEFAULT_K2 = 6
DEFAULT_LAMBDA = 0.3
#: rows of the all-pairs distance pass per block
DEFAULT_BLOCK_ROWS = 1024
#: Jaccard (query, gallery) contributions accumulated per step (bounds the scratch memory)
JOIN_BUDGET = 4_000_000
#: feature pairs whose distances are computed together (float64 copies of 2 x 16k rows)
PAIR_BLOCK = 16_384
#: the published expansion rule: a candidate's set joins when > 2/3 of it is already in R(i)
EXPANSION_OVERLAP = 2.0 / 3.0


def smallest_k_stable(block: np.ndarray, k: int) -> np.ndarray:
    """(rows, k) column indices of each row's k smallest values, ordered by (value, index)."""
    k = min(k, block.shape[1])
    part = np.argpartition(block, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(block, part, axis=1)
    kth = values.max(axis=1, keepdims=True)
    overflow = np.count_nonzero(block <= kth, axis=1) > k  # ties straddle the k-th place
    order = np.lexsort((part, values), axis=1)
    result = np.take_along_axis(part, order, axis=1)
    for row in np.flatnonzero(overflow):
        candidates = np.flatnonzero(block[row] <= kth[row, 0])
        result[row] = candidates[np.lexsort((candidates, block[row, candidates]))][:k]
    return result


class _Distances:
    """Squared distances of the configured metric between rows of one feature matrix."""

    def __init__(self, features: torch.Tensor, metric: DistanceMetric) -> None:
        features = features.detach().float().cpu()
        if metric is DistanceMetric.COSINE:
            features = torch.nn.functional.normalize(features, dim=1)
        self.metric = metric
        self.features = features.numpy()
        self.squared_norms = (self.features.astype(np.float64) ** 2).sum(axis=1)

    def block(self, rows: np.ndarray | slice, columns: slice = slice(None)) -> np.ndarray:
        """float32 (rows, columns) block of squared distances (ranking only)."""
        products = self.features[rows] @ self.features[columns].T
        if self.metric is DistanceMetric.COSINE:
            distance = 1.0 - products
            return distance * distance
        squared = self.squared_norms[rows][:, None].astype(np.float32) \
            + self.squared_norms[columns][None, :].astype(np.float32) - 2.0 * products
        return np.maximum(squared, 0.0)

    def pairs(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """float64 squared distances of the (rows[n], columns[n]) pairs."""
        products = np.empty(rows.size)
        for start in range(0, rows.size, PAIR_BLOCK):  # bounded float64 copies of the rows
            part = slice(start, start + PAIR_BLOCK)
            products[part] = np.einsum("nd,nd->n", self.features[rows[part]].astype(np.float64),
                                       self.features[columns[part]].astype(np.float64))
        if self.metric is DistanceMetric.COSINE:
            return (1.0 - products) ** 2
        return np.maximum(self.squared_norms[rows] + self.squared_norms[columns] - 2 * products,
                          0.0)


def _reciprocal(neighbours: np.ndarray, block_rows: int) -> np.ndarray:
    """mask[i, a]: ``i`` is among the neighbours of its own a-th neighbour."""
    mask = np.zeros(neighbours.shape, dtype=bool)
    for start in range(0, neighbours.shape[0], block_rows):
        stop = min(start + block_rows, neighbours.shape[0])
        backward = neighbours[neighbours[start:stop]]  # (n, K, K)
        mask[start:stop] = (backward == np.arange(start, stop)[:, None, None]).any(axis=2)
    return mask


def _expanded_sets(neighbours: np.ndarray, k1: int, block_rows: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(rows, columns) of every item's expanded k-reciprocal set, each pair once."""
    half = int(np.around(k1 / 2.0))
    recip = _reciprocal(neighbours, block_rows)
    half_neighbours = neighbours[:, : half + 1]
    half_recip = _reciprocal(half_neighbours, block_rows)
    half_size = half_recip.sum(axis=1)
    row_parts, column_parts = [], []
    for start in range(0, neighbours.shape[0], block_rows):
        stop = min(start + block_rows, neighbours.shape[0])
        own = neighbours[start:stop]  # (n, K)
        own_recip = recip[start:stop]
        candidates = own  # a candidate c = own[:, a], only where own_recip
        cand_sets = half_neighbours[candidates]  # (n, K, H)
        cand_recip = half_recip[candidates]
        in_own = ((cand_sets[..., None] == own[:, None, None, :]) & own_recip[:, None, None, :]
                  ).any(axis=3)
        overlap = (in_own & cand_recip).sum(axis=2)
        accepted = own_recip & (overlap > EXPANSION_OVERLAP * half_size[candidates])
        rows = np.arange(start, stop)
        row_parts.append(np.broadcast_to(rows[:, None], own.shape)[own_recip])
        column_parts.append(own[own_recip])
        take = accepted[:, :, None] & cand_recip
        row_parts.append(np.broadcast_to(rows[:, None, None], cand_sets.shape)[take])
        column_parts.append(cand_sets[take])
    rows = np.concatenate(row_parts)
    columns = np.concatenate(column_parts)
    num_items = neighbours.shape[0]
    unique = np.unique(rows * num_items + columns)
    return unique // num_items, unique % num_items


def _jaccard_rows(
    query_vectors: sp.csr_matrix, gallery_by_column: sp.csc_matrix
) -> np.ndarray:
    """Dense (q, G) Jaccard distances ``1 - s / (2 - s)``, ``s = sum_k min(V_q[k], V_g[k])``."""
    num_rows, num_gallery = query_vectors.shape[0], gallery_by_column.shape[0]
    coo = query_vectors.tocoo()
    lengths = np.diff(gallery_by_column.indptr)[coo.col]
    repeat = np.repeat(np.arange(coo.nnz), lengths)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = gallery_by_column.indptr[coo.col][repeat] + (np.arange(repeat.size) - offsets)
    gallery_rows = gallery_by_column.indices[positions]
    shared = np.minimum(coo.data[repeat], gallery_by_column.data[positions])
    sums = np.bincount(coo.row[repeat] * num_gallery + gallery_rows, weights=shared,
                       minlength=num_rows * num_gallery).reshape(num_rows, num_gallery)
    return 1.0 - sums / (2.0 - sums)


def k_reciprocal_rerank(
    query_features: torch.Tensor | np.ndarray,
    gallery_features: torch.Tensor | np.ndarray,
    k1: int = DEFAULT_K1,
    k2: int = DEFAULT_K2,
    lambda_value: float = DEFAULT_LAMBDA,
    metric: DistanceMetric | str = DistanceMetric.EUCLIDEAN,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    max_result_bytes: float = 4e9,
) -> np.ndarray:
    """(Q, G) float32 re-ranked distances (smaller is closer); see the module docstring."""
    metric = DistanceMetric(metric)
    query = torch.as_tensor(query_features)
    gallery = torch.as_tensor(gallery_features)
    num_queries, num_gallery = query.shape[0], gallery.shape[0]
    num_items = num_queries + num_gallery
    if k1 < 1 or k2 < 1 or not 0.0 <= lambda_value <= 1.0:
        raise ValueError(
            f"re-ranking needs k1 >= 1, k2 >= 1 and 0 <= lambda <= 1, got k1={k1}, k2={k2}, "
            f"lambda={lambda_value}"
        )
    if k2 > k1 + 1:
        raise ValueError(f"re-ranking k2={k2} must not exceed k1 + 1 = {k1 + 1}")
    if num_items < 2:
        raise ValueError("re-ranking needs at least two items")
    result_bytes = 4.0 * num_queries * num_gallery
    if result_bytes > max_result_bytes:
        raise ReidsortError(
            f"re-ranking {num_queries} queries x {num_gallery} gallery items needs a dense "
            f"{result_bytes / 1e9:.1f} GB distance matrix, over the {max_result_bytes / 1e9:.1f} "
            "GB limit (task.rerank.max_memory_gb); evaluate fewer queries or disable re-ranking"
        )
    distances = _Distances(torch.cat([query.float().cpu(), gallery.float().cpu()]), metric)

    # 1. nearest neighbours and row maxima, one block of rows at a time
    num_neighbours = min(k1 + 1, num_items)
    neighbours = np.empty((num_items, num_neighbours), dtype=np.int64)
    row_max = np.empty(num_items)
    for start in range(0, num_items, block_rows):
        block = distances.block(slice(start, start + block_rows))
        row_max[start : start + block.shape[0]] = block.max(axis=1)
        neighbours[start : start + block.shape[0]] = smallest_k_stable(block, num_neighbours)
    row_max = np.where(row_max > 0, row_max, 1.0)  # all-identical features: avoid 0 / 0

    # 2-3. expanded k-reciprocal sets -> sparse V, rows normalised, then local query expansion
    rows, columns = _expanded_sets(neighbours, k1, block_rows)
    weights = np.exp(-distances.pairs(rows, columns) / row_max[rows])
    weights /= np.bincount(rows, weights=weights, minlength=num_items)[rows]
    vectors = sp.csr_matrix((weights, (rows, columns)), shape=(num_items, num_items))
    if k2 > 1:
        expansion_rows = np.repeat(np.arange(num_items), k2)
        expansion = sp.csr_matrix(
            (np.full(expansion_rows.size, 1.0 / k2), (expansion_rows,
                                                      neighbours[:, :k2].ravel())),
            shape=(num_items, num_items),
        )
        vectors = (expansion @ vectors).tocsr()

    # 4. Jaccard distance to every gallery item, blended with the normalised original distance
    gallery_by_column = vectors[num_queries:].tocsc()
    column_lengths = np.diff(gallery_by_column.indptr)
    query_vectors = vectors[:num_queries]
    entry_rows = np.repeat(np.arange(num_queries), np.diff(query_vectors.indptr))
    join_sizes = np.bincount(entry_rows, weights=column_lengths[query_vectors.indices],
                             minlength=num_queries)
    result = np.empty((num_queries, num_gallery), dtype=np.float32)
    start = 0
    while start < num_queries:
        cumulative = np.cumsum(join_sizes[start:])
        by_budget = int(np.searchsorted(cumulative, JOIN_BUDGET, side="right"))
        by_memory = max(1, int(JOIN_BUDGET // max(num_gallery, 1)))
        stop = start + max(1, min(by_budget, by_memory, block_rows))
        stop = min(stop, num_queries)
        jaccard = _jaccard_rows(query_vectors[start:stop], gallery_by_column)
        original = distances.block(slice(start, stop), slice(num_queries, None)) \
            / row_max[start:stop, None]
        result[start:stop] = (1.0 - lambda_value) * jaccard + lambda_value * original
        start = stop
    return result
