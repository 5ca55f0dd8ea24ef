"""Sort-free scoring of one block of query rows: the rank of every true match is *counted*.

Scoring a query under the Market-1501 protocol needs the ranks of its true matches among the kept
gallery items, never the full order of the gallery. In the stable order (ties broken by gallery
index), the item at gallery index ``j`` with distance ``t`` has the 0-based position

    #{g : d_g < t}  +  #{g < j : d_g == t}

so each true match costs two vectorised comparisons over its distance row (``<`` and ``==``; the
index-aware count runs only when a tie exists). A query has a handful of true matches, so this is
a few cheap passes instead of an O(G log G) argsort with an int64 index matrix; and nothing of
size (rows x gallery) is allocated beyond the distance block itself.

Camera exclusion never needs a pass: the removed items (same identity *and* same camera) are
among the query's "same-identity" items, which are gathered per row up front; how many of them
precede a match follows from sorting those few items by (distance, index).

Junk gallery items (``pid == -1``) are removed by the callers before the distances reach this
module (dropping columns keeps the relative order of the others, hence the tie-breaking).

Two interchangeable backends count: NumPy row by row (fastest on a CPU: each row stays in cache)
and torch on the block's device (used for CUDA tensors). Both give identical integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: entries of a padded per-row table that hold no item
PAD_INDEX = -1
#: tied matches whose index-aware count is computed together on the torch backend
TIE_BLOCK = 256


@dataclass(frozen=True)
class SameIdentityIndex:
    """The gallery grouped by identity, so each query's same-identity items are found at once."""

    order: np.ndarray
    """gallery indices sorted by (pid, index)"""
    sorted_pids: np.ndarray

    @classmethod
    def build(cls, gallery_pids: np.ndarray) -> SameIdentityIndex:
        order = np.argsort(gallery_pids, kind="stable")
        return cls(order=order, sorted_pids=gallery_pids[order])

    def lookup(self, query_pids: np.ndarray) -> np.ndarray:
        """(rows, M) gallery indices of each query's identity, ascending, padded with -1."""
        low = np.searchsorted(self.sorted_pids, query_pids, side="left")
        high = np.searchsorted(self.sorted_pids, query_pids, side="right")
        counts = high - low
        width = int(counts.max()) if counts.size else 0
        slots = np.arange(width)
        present = slots[None, :] < counts[:, None]
        positions = np.where(present, low[:, None] + slots[None, :], 0)
        if self.order.size == 0:
            return np.full((len(query_pids), width), PAD_INDEX, dtype=np.int64)
        return np.where(present, self.order[positions], PAD_INDEX).astype(np.int64)


@dataclass(frozen=True)
class BlockScores:
    """Per query row of one block."""

    valid: np.ndarray
    average_precision: np.ndarray
    inverse_negative_penalty: np.ndarray
    first_rank: np.ndarray
    """1-based rank of the first true match among the kept items (0 when not valid)"""


def _stable_positions_numpy(
    distances: np.ndarray, thresholds: np.ndarray, columns: np.ndarray, is_match: np.ndarray
) -> np.ndarray:
    """0-based stable position of every match entry in its row (0 for non-match entries)."""
    positions = np.zeros(thresholds.shape, dtype=np.int64)
    scratch = np.empty(distances.shape[1], dtype=bool)
    for row_index in np.flatnonzero(is_match.any(axis=1)):
        row = distances[row_index]
        for slot in np.flatnonzero(is_match[row_index]):
            value = row.dtype.type(thresholds[row_index, slot])
            smaller = np.count_nonzero(np.less(row, value, out=scratch))
            if np.count_nonzero(np.equal(row, value, out=scratch)) > 1:  # a tie: index decides
                smaller += np.count_nonzero(row[: columns[row_index, slot]] == value)
            positions[row_index, slot] = smaller
    return positions


def _stable_positions_torch(
    distances: torch.Tensor, thresholds: np.ndarray, columns: np.ndarray, is_match: np.ndarray
) -> np.ndarray:
    """Same as the NumPy backend, one slot (all rows at once) at a time, on the block's device."""
    device = distances.device
    values = torch.as_tensor(thresholds, device=device, dtype=distances.dtype)
    # NaN thresholds compare false, so padded and removed slots count nothing
    values = torch.where(torch.as_tensor(is_match, device=device), values, float("nan"))
    smaller = torch.zeros(thresholds.shape, dtype=torch.int64, device=device)
    equal = torch.zeros_like(smaller)
    for slot in range(thresholds.shape[1]):
        column = values[:, slot : slot + 1]
        smaller[:, slot] = (distances < column).sum(dim=1)
        equal[:, slot] = (distances == column).sum(dim=1)
    positions = smaller.cpu().numpy()
    tied_rows, tied_slots = np.nonzero(equal.cpu().numpy() > 1)
    gallery_index = torch.arange(distances.shape[1], device=device)
    for start in range(0, tied_rows.size, TIE_BLOCK):
        rows = tied_rows[start : start + TIE_BLOCK]
        slots = tied_slots[start : start + TIE_BLOCK]
        row_values = values[torch.as_tensor(rows, device=device),
                            torch.as_tensor(slots, device=device)].unsqueeze(1)
        limits = torch.as_tensor(columns[rows, slots], device=device).unsqueeze(1)
        earlier_ties = (distances[torch.as_tensor(rows, device=device)] == row_values) & (
            gallery_index.unsqueeze(0) < limits
        )
        positions[rows, slots] += earlier_ties.sum(dim=1).cpu().numpy()
    return positions


def gather_thresholds(distances: np.ndarray | torch.Tensor, columns: np.ndarray) -> np.ndarray:
    """Distances at the (row, column) entries of a padded column table (padding reads column 0)."""
    safe = np.where(columns == PAD_INDEX, 0, columns)
    rows = np.arange(columns.shape[0])[:, None]
    if isinstance(distances, torch.Tensor):
        picked = distances[torch.as_tensor(rows, device=distances.device),
                           torch.as_tensor(safe, device=distances.device)]
        return picked.cpu().numpy()
    return distances[rows, safe]


def score_block(
    distances: np.ndarray | torch.Tensor,
    same_identity: np.ndarray,
    removed: np.ndarray,
) -> tuple[BlockScores, np.ndarray, np.ndarray]:
    """Score a (rows, G) block of distances (smaller is closer, junk columns already gone).

    ``same_identity`` is the (rows, M) padded table of each query's same-identity gallery columns
    (:meth:`SameIdentityIndex.lookup`); ``removed`` marks the entries that the protocol excludes
    (same camera). Returns the per-row scores, and for every true match (row-major, ranks ascending
    within a row) its row and 1-based rank among the kept items.
    """
    num_rows = same_identity.shape[0]
    if same_identity.shape[1] == 0:  # no query of the block has its identity in the gallery
        nothing = np.zeros(num_rows)
        scores = BlockScores(np.zeros(num_rows, dtype=bool), nothing, nothing.copy(),
                             np.zeros(num_rows, dtype=np.int64))
        return scores, np.empty(0, dtype=np.int64), np.empty(0)
    present = same_identity != PAD_INDEX
    is_match = present & ~removed
    thresholds = gather_thresholds(distances, same_identity)
    if isinstance(distances, np.ndarray):
        positions = _stable_positions_numpy(distances, thresholds, same_identity, is_match)
    else:
        positions = _stable_positions_torch(distances, thresholds, same_identity, is_match)

    # Order each row's same-identity items by (distance, index): how many removed items and how
    # many other matches precede a match follows from running counts along that order.
    rows = np.broadcast_to(np.arange(num_rows)[:, None], same_identity.shape)
    sort_values = np.where(present, thresholds, np.inf)
    sort_columns = np.where(present, same_identity, np.iinfo(np.int64).max)
    order = np.lexsort((sort_columns.ravel(), sort_values.ravel(), rows.ravel()))
    flat_match = is_match.ravel()[order]
    flat_removed = (present & removed).ravel()[order]
    flat_rows = rows.ravel()[order]
    row_starts = np.searchsorted(flat_rows, np.arange(num_rows), side="left")
    removed_before = np.cumsum(flat_removed) - flat_removed
    matches_before = np.cumsum(flat_match) - flat_match
    removed_before -= removed_before[row_starts][flat_rows]
    matches_before -= matches_before[row_starts][flat_rows]

    match_rows = flat_rows[flat_match]
    kept_rank = (positions.ravel()[order][flat_match] - removed_before[flat_match] + 1).astype(
        np.float64
    )
    hits = (matches_before[flat_match] + 1).astype(np.float64)

    num_matches = np.bincount(match_rows, minlength=num_rows)
    valid = num_matches > 0
    precision_sum = np.bincount(match_rows, weights=hits / kept_rank, minlength=num_rows)
    average_precision = np.zeros(num_rows)
    average_precision[valid] = precision_sum[valid] / num_matches[valid]
    first = np.searchsorted(match_rows, np.arange(num_rows), side="left")
    last = np.searchsorted(match_rows, np.arange(num_rows), side="right") - 1
    first_rank = np.zeros(num_rows, dtype=np.int64)
    inverse_negative_penalty = np.zeros(num_rows)
    first_rank[valid] = kept_rank[first[valid]]
    inverse_negative_penalty[valid] = num_matches[valid] / kept_rank[last[valid]]
    scores = BlockScores(valid, average_precision, inverse_negative_penalty, first_rank)
    return scores, match_rows, kept_rank


def _top_k_row(row: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest kept columns of one row in stable order (ties at the k-th place included)."""
    reach = min(k + excluded.size, row.size)
    if reach == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=row.dtype)
    kth_value = np.partition(row, reach - 1)[reach - 1]
    candidates = np.flatnonzero(row <= kth_value)
    candidates = candidates[~np.isin(candidates, excluded)]
    nearest = candidates[np.lexsort((candidates, row[candidates]))][:k]
    return nearest, row[nearest]


def top_k_block(
    distances: np.ndarray | torch.Tensor, k: int, same_identity: np.ndarray, removed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, k) nearest kept gallery columns and their distances; -1 / inf where fewer exist."""
    num_rows = same_identity.shape[0]
    indices = np.full((num_rows, k), PAD_INDEX, dtype=np.int64)
    values = np.full((num_rows, k), np.inf)
    if isinstance(distances, torch.Tensor):
        # only a small candidate set per row comes back from the device
        reach = min(k + same_identity.shape[1], distances.shape[1])
        near = torch.topk(distances, reach, dim=1, largest=False, sorted=True)
        kth = near.values[:, -1:]
        overflow = ((distances <= kth).sum(dim=1) > reach).cpu().numpy()
        cand_values, cand_columns = near.values.cpu().numpy(), near.indices.cpu().numpy()
        for row_index in range(num_rows):
            excluded = same_identity[row_index][removed[row_index]]
            if overflow[row_index]:  # ties at the boundary: resolve on the full row
                row = distances[row_index].cpu().numpy()
                found, found_values = _top_k_row(row, k, excluded)
            else:
                keep = ~np.isin(cand_columns[row_index], excluded)
                columns, row_values = cand_columns[row_index][keep], cand_values[row_index][keep]
                pick = np.lexsort((columns, row_values))[:k]
                found, found_values = columns[pick], row_values[pick]
            indices[row_index, : found.size] = found
            values[row_index, : found.size] = found_values
        return indices, values
    for row_index in range(num_rows):
        excluded = same_identity[row_index][removed[row_index]]
        found, found_values = _top_k_row(distances[row_index], k, excluded)
        indices[row_index, : found.size] = found
        values[row_index, : found.size] = found_values
    return indices, values
