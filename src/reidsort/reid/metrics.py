"""Re-ID retrieval metrics: CMC, mAP and mINP under the Market-1501 query/gallery protocol.

Protocol (the semantics of torchreid's ``eval_market1501``):

* Every query is ranked against the whole gallery by ascending distance.
* **Camera exclusion**: for each query, gallery images with the same person id *and* the same
  camera id are removed before scoring; finding yourself again in the same camera is trivial.
  When no camera ids are given, nothing is removed this way (no-camera mode, e.g. tracking data).
* **Junk**: gallery images with person id ``-1`` are removed for every query. The dataset readers
  already drop such images, so this only matters for hand-built galleries. (Id ``0``, the
  Market-1501 distractors, is an ordinary wrong identity.)
* A query with no true match left in the gallery cannot be scored: it is skipped and reported
  through ``valid_query`` / ``num_valid_queries``.
* **Ties** are broken by gallery index: each distance row is sorted with a *stable* sort, exactly
  like ``numpy.argsort(row, kind="stable")``. (torchreid uses numpy's default, unstable sort.)

Per valid query, with ranks counted in the gallery that remains after removal:
AP is the mean over its true matches of the precision at each match; the CMC records the rank of
the first true match; INP (Ye et al., TPAMI 2021) is ``number of true matches / rank of the last
true match``. mAP and mINP are means over valid queries; ``cmc[k - 1]`` is the fraction of valid
queries whose first true match is within the top ``k`` (so ``cmc[0]`` is Rank-1). Unlike
torchreid, the CMC always has ``max_rank`` entries: beyond the gallery size it is 1.0, which is
what the definition gives.

Scale: distances are computed, sorted and scored ``chunk_size`` queries at a time, in float32 on
the features' device, so no dense query x gallery matrix is ever built: 20,000 queries against
100,000 gallery images need about 4 GB of scratch per 1,024-query chunk, not the 16 GB of a
float64 matrix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
import torch.nn.functional as F

JUNK_PID = -1
DEFAULT_MAX_RANK = 20
DEFAULT_CHUNK_SIZE = 1024

IdArray = np.ndarray | torch.Tensor | Sequence[int]


class DistanceMetric(str, Enum):
    """How feature vectors are compared.

    ``COSINE`` is ``1 - cos`` of the L2-normalised features (range [0, 2]). ``EUCLIDEAN`` is the
    plain Euclidean distance, the square root of the squared distance clamped at zero; the
    square root does not change the ranking, it only keeps the values interpretable.
    """

    COSINE = "cosine"
    EUCLIDEAN = "euclidean"


@dataclass(frozen=True)
class RetrievalResult:
    """Scores of one query/gallery evaluation (see the module docstring for the protocol)."""

    mAP: float
    mINP: float
    cmc: np.ndarray
    """(max_rank,) cumulative matching characteristic; ``cmc[0]`` is Rank-1."""
    average_precision: np.ndarray
    """(num_valid_queries,) AP of each valid query, in query order."""
    inverse_negative_penalty: np.ndarray
    """(num_valid_queries,) INP of each valid query, in query order."""
    valid_query: np.ndarray
    """(num_queries,) bool: the query had a true match left after removal and was scored."""
    num_valid_queries: int

    @property
    def max_rank(self) -> int:
        return int(self.cmc.shape[0])

    def rank(self, k: int) -> float:
        """Rank-k accuracy: the fraction of valid queries whose first true match is in the top k."""
        if not 1 <= k <= self.max_rank:
            raise ValueError(f"rank k must lie in [1, {self.max_rank}] (max_rank), got {k}")
        return float(self.cmc[k - 1])

    def summary(self, ranks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
        """Flat ``{"mAP", "mINP", "rank1", ...}`` dict for loggers; skips ranks beyond max_rank."""
        scores = {"mAP": self.mAP, "mINP": self.mINP}
        scores.update({f"rank{k}": self.rank(k) for k in ranks if 1 <= k <= self.max_rank})
        return scores


def _as_id_tensor(values: IdArray, name: str, length: int, device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
    if ids.dim() != 1 or ids.shape[0] != length:
        raise ValueError(f"{name} must be 1-D with {length} entries, got shape {tuple(ids.shape)}")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {ids.dtype}")
    return ids.to(device=device, dtype=torch.int64)


def _check_settings(max_rank: int, chunk_size: int) -> None:
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def _camera_ids(
    query_camids: IdArray | None,
    gallery_camids: IdArray | None,
    num_queries: int,
    num_gallery: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    if (query_camids is None) != (gallery_camids is None):
        raise ValueError("give camera ids for both query and gallery, or for neither")
    if query_camids is None:
        return None
    return (
        _as_id_tensor(query_camids, "query_camids", num_queries, device),
        _as_id_tensor(gallery_camids, "gallery_camids", num_gallery, device),
    )


def compute_distance_matrix(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    metric: DistanceMetric | str = DistanceMetric.COSINE,
) -> torch.Tensor:
    """(Q, G) float32 distances on the features' device; use for small sets only (it is dense)."""
    metric = DistanceMetric(metric)
    query = query_features.float()
    gallery = gallery_features.float()
    if metric is DistanceMetric.COSINE:
        return 1.0 - F.normalize(query, dim=1) @ F.normalize(gallery, dim=1).T
    squared = (
        query.pow(2).sum(dim=1, keepdim=True)
        + gallery.pow(2).sum(dim=1).unsqueeze(0)
        - 2.0 * query @ gallery.T
    )
    return squared.clamp(min=0.0).sqrt()


def _feature_distance_chunks(
    query: torch.Tensor, gallery: torch.Tensor, metric: DistanceMetric, chunk_size: int
) -> Iterator[torch.Tensor]:
    """Yield float32 distance rows for ``chunk_size`` queries at a time."""
    query = query.float()
    gallery = gallery.float()
    if metric is DistanceMetric.COSINE:
        query = F.normalize(query, dim=1)
        gallery_t = F.normalize(gallery, dim=1).T.contiguous()
        for start in range(0, query.shape[0], chunk_size):
            yield 1.0 - query[start : start + chunk_size] @ gallery_t
    else:
        gallery_t = gallery.T.contiguous()
        gallery_squared_norms = gallery.pow(2).sum(dim=1).unsqueeze(0)
        for start in range(0, query.shape[0], chunk_size):
            rows = query[start : start + chunk_size]
            squared = rows.pow(2).sum(dim=1, keepdim=True) + gallery_squared_norms
            squared -= 2.0 * rows @ gallery_t
            yield squared.clamp_(min=0.0).sqrt_()


def _score_chunk(
    distances: torch.Tensor,
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    query_camids: torch.Tensor | None,
    gallery_camids: torch.Tensor | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score one (c, G) distance block; return per query (valid, AP, INP, first-match rank).

    Removal is done without compacting rows: ``kept_rank`` counts, at every sorted position,
    how many kept gallery items are at or before it, which is the rank the item would have in
    the compacted list. Only the (few) true-match positions leave the device.
    """
    num_rows = distances.shape[0]
    order = torch.sort(distances, dim=1, stable=True).indices
    ranked_pids = gallery_pids[order]
    same_pid = ranked_pids == query_pids.unsqueeze(1)
    kept = ranked_pids != JUNK_PID
    if query_camids is not None and gallery_camids is not None:
        kept &= ~(same_pid & (gallery_camids[order] == query_camids.unsqueeze(1)))
    true_match = same_pid & kept
    kept_rank = kept.cumsum(dim=1, dtype=torch.int32)
    matches_so_far = true_match.cumsum(dim=1, dtype=torch.int32)

    rows, cols = true_match.nonzero(as_tuple=True)  # row-major: ranks ascend within a row
    match_rank = kept_rank[rows, cols].cpu().numpy().astype(np.float64)
    match_count = matches_so_far[rows, cols].cpu().numpy().astype(np.float64)
    rows_np = rows.cpu().numpy()

    num_matches = np.bincount(rows_np, minlength=num_rows)
    valid = num_matches > 0
    precision_sum = np.bincount(rows_np, weights=match_count / match_rank, minlength=num_rows)
    average_precision = np.zeros(num_rows)
    average_precision[valid] = precision_sum[valid] / num_matches[valid]

    row_ids = np.arange(num_rows)
    first_position = np.searchsorted(rows_np, row_ids, side="left")
    last_position = np.searchsorted(rows_np, row_ids, side="right") - 1
    first_rank = np.zeros(num_rows, dtype=np.int64)
    inverse_negative_penalty = np.zeros(num_rows)
    first_rank[valid] = match_rank[first_position[valid]]
    inverse_negative_penalty[valid] = num_matches[valid] / match_rank[last_position[valid]]
    return valid, average_precision, inverse_negative_penalty, first_rank


def _evaluate_distance_chunks(
    distance_chunks: Iterator[torch.Tensor],
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    camids: tuple[torch.Tensor, torch.Tensor] | None,
    max_rank: int,
) -> RetrievalResult:
    """The one scoring path shared by the features and the distance-matrix entry points."""
    num_queries = query_pids.shape[0]
    valid = np.zeros(num_queries, dtype=bool)
    average_precision = np.zeros(num_queries)
    inverse_negative_penalty = np.zeros(num_queries)
    first_rank = np.zeros(num_queries, dtype=np.int64)
    start = 0
    for distances in distance_chunks:
        stop = start + distances.shape[0]
        query_camids = camids[0][start:stop] if camids is not None else None
        gallery_camids = camids[1] if camids is not None else None
        (
            valid[start:stop],
            average_precision[start:stop],
            inverse_negative_penalty[start:stop],
            first_rank[start:stop],
        ) = _score_chunk(
            distances, query_pids[start:stop], gallery_pids, query_camids, gallery_camids
        )
        start = stop

    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"none of the {num_queries} queries has a true match in the gallery after camera "
            "exclusion and junk removal; check the query/gallery split and the person ids"
        )
    capped_first_rank = np.minimum(first_rank[valid], max_rank + 1)
    first_rank_counts = np.bincount(capped_first_rank, minlength=max_rank + 2)[1 : max_rank + 1]
    cmc = np.cumsum(first_rank_counts) / num_valid
    return RetrievalResult(
        mAP=float(average_precision[valid].mean()),
        mINP=float(inverse_negative_penalty[valid].mean()),
        cmc=cmc,
        average_precision=average_precision[valid],
        inverse_negative_penalty=inverse_negative_penalty[valid],
        valid_query=valid,
        num_valid_queries=num_valid,
    )


def evaluate_retrieval(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    query_pids: IdArray,
    gallery_pids: IdArray,
    query_camids: IdArray | None = None,
    gallery_camids: IdArray | None = None,
    metric: DistanceMetric | str = DistanceMetric.COSINE,
    max_rank: int = DEFAULT_MAX_RANK,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> RetrievalResult:
    """Rank the gallery for every query by feature distance and score CMC, mAP and mINP.

    Features are (Q, D) and (G, D) tensors (NumPy arrays are accepted too); work happens in
    float32 on the query features' device, ``chunk_size`` queries at a time. Ids may be NumPy
    arrays, tensors or sequences. Without camera ids nothing is camera-excluded.
    """
    query = torch.as_tensor(query_features)
    gallery = torch.as_tensor(gallery_features).to(query.device)
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            "query and gallery features must be 2-D with the same feature dimension, got "
            f"{tuple(query.shape)} and {tuple(gallery.shape)}"
        )
    if query.shape[0] == 0 or gallery.shape[0] == 0:
        raise ValueError(
            f"need at least one query and one gallery item, got {query.shape[0]} and "
            f"{gallery.shape[0]}"
        )
    if not (torch.isfinite(query).all() and torch.isfinite(gallery).all()):
        raise ValueError("query or gallery features contain NaN or infinite values")
    metric = DistanceMetric(metric)
    _check_settings(max_rank, chunk_size)
    device = query.device
    q_pids = _as_id_tensor(query_pids, "query_pids", query.shape[0], device)
    g_pids = _as_id_tensor(gallery_pids, "gallery_pids", gallery.shape[0], device)
    camids = _camera_ids(query_camids, gallery_camids, query.shape[0], gallery.shape[0], device)
    chunks = _feature_distance_chunks(query, gallery, metric, chunk_size)
    return _evaluate_distance_chunks(chunks, q_pids, g_pids, camids, max_rank)


def evaluate_retrieval_from_distmat(
    distmat: np.ndarray | torch.Tensor,
    q_pids: IdArray,
    g_pids: IdArray,
    q_camids: IdArray | None = None,
    g_camids: IdArray | None = None,
    max_rank: int = DEFAULT_MAX_RANK,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> RetrievalResult:
    """Score a precomputed (Q, G) distance matrix (smaller is closer) with the same protocol.

    The matrix keeps its own dtype (a float64 matrix is ranked in float64) and is scored in
    row chunks through the same code as :func:`evaluate_retrieval`.
    """
    distances = torch.as_tensor(distmat)
    if distances.dim() != 2 or distances.shape[0] == 0 or distances.shape[1] == 0:
        raise ValueError(
            f"distmat must be a non-empty 2-D (Q, G) matrix, got {tuple(distances.shape)}"
        )
    if not distances.dtype.is_floating_point:
        distances = distances.double()
    if torch.isnan(distances).any():
        raise ValueError("distmat contains NaN values")
    _check_settings(max_rank, chunk_size)
    num_queries, num_gallery = distances.shape
    device = distances.device
    query_pids = _as_id_tensor(q_pids, "q_pids", num_queries, device)
    gallery_pids = _as_id_tensor(g_pids, "g_pids", num_gallery, device)
    camids = _camera_ids(q_camids, g_camids, num_queries, num_gallery, device)
    chunks = (distances[start : start + chunk_size] for start in range(0, num_queries, chunk_size))
    return _evaluate_distance_chunks(chunks, query_pids, gallery_pids, camids, max_rank)
