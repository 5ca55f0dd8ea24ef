"""Hungarian assignment with a cost ceiling, and DeepSORT's matching cascade.

The control flow, including the order in which unmatched tracks and detections are listed,
follows nwojke/deep_sort ``linear_assignment.py`` exactly: that order decides which new track
gets which id and how ties in the assignment are broken, so a faithful tracker must keep it.
The cost matrices themselves are computed once per frame, vectorised, by the caller; a level of
the cascade only slices them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Cost given to infeasible pairs (outside the Kalman gate, other class, stale track); any value
#: above the matching threshold is clipped to ``threshold + COST_CLIP_MARGIN`` before solving.
INFEASIBLE_COST: float = 1e5
#: nwojke/deep_sort clips costs above the threshold to ``threshold + 1e-5``, so that the solver
#: never prefers a cheap infeasible pair over leaving a feasible one unmatched.
COST_CLIP_MARGIN: float = 1e-5


class MatchResult(NamedTuple):
    """Matched ``(track, detection)`` pairs and the leftovers (indices into the caller's lists)."""

    matches: list[tuple[int, int]]
    unmatched_tracks: list[int]
    unmatched_detections: list[int]


@functools.lru_cache(maxsize=1)
def solver_pairs_diagonal_on_constant_cost() -> bool:
    """Whether SciPy's solver assigns row i to column i when all costs are equal.

    When every pair of an assignment problem is above the threshold, the reference still runs
    the solver and then rejects its pairs, which moves the assigned detections to the end of
    the unmatched list (in row order). SciPy's solver pairs row i with column i on a constant
    matrix (checked for every shape up to 80 x 80 in the tests); this is verified once per
    process on a few shapes, and the shortcut is only taken when it holds.
    """
    for shape in ((1, 4), (4, 1), (3, 7), (7, 3), (6, 6), (2, 40)):
        rows, cols = linear_sum_assignment(np.full(shape, 1.0 + COST_CLIP_MARGIN))
        diagonal = np.arange(min(shape))
        if not (np.array_equal(rows, diagonal) and np.array_equal(cols, diagonal)):
            return False
    return True


def min_cost_matching(
    cost_matrix: np.ndarray,
    max_distance: float,
    track_indices: Sequence[int],
    detection_indices: Sequence[int],
) -> MatchResult:
    """Solve one assignment problem; pairs costing more than ``max_distance`` stay unmatched.

    ``cost_matrix[i, j]`` is the cost of ``track_indices[i]`` with ``detection_indices[j]``.
    The cost matrix is not modified.
    """
    track_indices = list(track_indices)
    detection_indices = list(detection_indices)
    if len(track_indices) == 0 or len(detection_indices) == 0:
        return MatchResult([], track_indices, detection_indices)
    cost_matrix = np.asarray(cost_matrix, dtype=np.float64)
    feasible = cost_matrix <= max_distance
    if np.count_nonzero(feasible) == 0 and solver_pairs_diagonal_on_constant_cost():
        # Everything is clipped to the same value: the solver pairs the first k rows and columns
        # and all k pairs are rejected (see solver_pairs_diagonal_on_constant_cost).
        k = min(len(track_indices), len(detection_indices))
        return MatchResult(
            [], track_indices[k:] + track_indices[:k], detection_indices[k:] + detection_indices[:k]
        )
    rows, cols = linear_sum_assignment(
        np.where(feasible, cost_matrix, max_distance + COST_CLIP_MARGIN)
    )
    rows, cols, accepted = rows.tolist(), cols.tolist(), feasible[rows, cols].tolist()
    # Bookkeeping on short Python lists, in the reference's order: unassigned first (input
    # order), then rejected assignments (row order).
    assigned_rows, assigned_cols = set(rows), set(cols)
    unmatched_tracks = [t for i, t in enumerate(track_indices) if i not in assigned_rows]
    unmatched_detections = [d for j, d in enumerate(detection_indices) if j not in assigned_cols]
    matches = []
    for row, col, ok in zip(rows, cols, accepted):
        if ok:
            matches.append((track_indices[row], detection_indices[col]))
        else:
            unmatched_tracks.append(track_indices[row])
            unmatched_detections.append(detection_indices[col])
    return MatchResult(matches, unmatched_tracks, unmatched_detections)


def matching_cascade(
    cost_matrix: np.ndarray,
    max_distance: float,
    cascade_depth: int,
    time_since_update: np.ndarray,
    track_indices: Sequence[int],
    detection_indices: Sequence[int] | None = None,
) -> MatchResult:
    """Match tracks in order of recency: all tracks seen 1 frame ago first, then 2, ...

    A track that has been missed for longer has a wider Kalman covariance and would otherwise
    win detections through a smaller Mahalanobis distance (Wojke et al. 2017, sec. 2.3).

    ``cost_matrix[i, j]`` is the (gated) cost of ``track_indices[i]`` with detection ``j``,
    computed once for all detections of the frame; ``time_since_update[i]`` belongs to
    ``track_indices[i]``. Levels ``1 .. cascade_depth`` are visited as in the reference; a level
    without tracks is skipped and a level whose tracks have no affordable detection at all is
    resolved without building its cost matrix (same result, see :func:`min_cost_matching`).
    """
    cost_matrix = np.asarray(cost_matrix, dtype=np.float64)
    track_indices = list(track_indices)
    unmatched_detections = (
        list(range(cost_matrix.shape[1])) if detection_indices is None else list(detection_indices)
    )
    matches: list[tuple[int, int]] = []
    if track_indices and unmatched_detections:
        ages = np.asarray(time_since_update).reshape(-1).tolist()
        feasible = cost_matrix <= max_distance
        may_match = (
            feasible.any(axis=1).tolist() if np.count_nonzero(feasible) else [False] * len(ages)
        )
        for level in sorted({age for age in ages if 1 <= age <= cascade_depth}):
            if len(unmatched_detections) == 0:
                break
            level_positions = [p for p, age in enumerate(ages) if age == level]
            level_tracks = [track_indices[p] for p in level_positions]
            if (
                not any(may_match[p] for p in level_positions)
                and solver_pairs_diagonal_on_constant_cost()
            ):
                k = min(len(level_tracks), len(unmatched_detections))
                unmatched_detections = unmatched_detections[k:] + unmatched_detections[:k]
                continue
            level_result = min_cost_matching(
                cost_matrix.take(level_positions, axis=0).take(unmatched_detections, axis=1),
                max_distance,
                level_tracks,
                unmatched_detections,
            )
            matches += level_result.matches
            unmatched_detections = level_result.unmatched_detections
    # Same set expression as the reference, so that the iteration order (which feeds the
    # row order of the IoU stage) is identical.
    unmatched_tracks = list(set(track_indices) - set(k for k, _ in matches))
    return MatchResult(matches, unmatched_tracks, unmatched_detections)
