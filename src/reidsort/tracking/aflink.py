"""AFLink, StrongSORT++'s appearance-free tracklet linker (Du et al., 2023), in NumPy.

A tracklet that ends and another that starts shortly after and nearby may be one person cut in
two by an occlusion or a missed detection. AFLink decides from motion alone: a small temporal
CNN (trained by ``task=aflink``, :mod:`reidsort.linking`) reads the last ``input_length``
(frame, x, y) rows of the earlier tracklet and the first ones of the later one and scores
"same person". Linking then works on all tracklets of a sequence at once (dyhBUPT/StrongSORT
``AFLink/AppFreeLink.py``):

1. candidates: ordered pairs (i, j), i != j, whose gap ``first_frame(j) - last_frame(i)`` is in
   ``[min_gap, max_gap)`` (reference: ``thrT = (0, 30)``; (-10, 30) for trackers that output
   overlapping tracklets) and whose (x, y) distance, last box of i to first box of j, is at
   most ``max_distance`` pixels (``thrS = 75``);
2. cost ``1 - p(same)`` of every candidate, one batched network forward; costs above
   ``max_cost`` (``thrP = 0.05``) are dropped;
3. one Hungarian assignment (each tracklet gets at most one successor and one predecessor),
   pairs costing less than ``max_cost`` accepted;
4. accepted links are followed to the start of their chain: the whole chain takes the id of
   its first tracklet (the reference's dict walk does this for chains in start order; a
   union-find makes it independent of the order); where two linked tracklets share a frame
   (gap 0) the earlier tracklet's box is kept.

(x, y) is the box's top-left corner, as in the reference (its rows are ``[frame, x, y, w, h]``
of the MOTChallenge file and the network reads the first three columns).

Input normalisation (reference ``LinkData.transform``): the earlier tracklet is cut to its last
``input_length`` rows or zero-padded in front, the later one cut to its first rows or
zero-padded at the back; then each column (frame, x, y) is min-max scaled to [-1, 1] over the
``2 * input_length`` rows of both together, padding zeros included (the trained network
expects exactly that), with ``1e-5`` added to the half-range.

The network, per tracklet (two branches with their own weights): 4 temporal blocks, each a
(7 x 1) convolution along time without bias, a batch norm of its own per column (frame, x, y)
and a ReLU (30 -> 24 -> 18 -> 12 -> 6 rows; 1 -> 32 -> 64 -> 128 -> 256 channels); a fusion
block, a (1 x 3) convolution across the three columns + batch norm + ReLU; global average
pooling. The two 256-d vectors are concatenated and classified by Linear(512, 128) - ReLU -
Linear(128, 2); softmax, column 1 = same. :class:`AFLinkNumpy` runs it from the ``.npz``
written by ``task=aflink`` (the keys are the torch ``state_dict`` names of
:class:`reidsort.linking.model.AFLinkNet`), so tracking stays torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from reidsort.tracking.linear_assignment import min_cost_matching

#: reference ``cfg.model_inputLen``: rows of each tracklet the network reads
DEFAULT_INPUT_LENGTH = 30
#: reference ``thrT = (0, 30)`` used by strong_sort.py: gap in frames, end of one to start of
#: the other, ``min_gap <= gap < max_gap``
DEFAULT_MIN_GAP = 0
DEFAULT_MAX_GAP = 30
#: reference ``thrS = 75``: pixels between the last (x, y) of one and the first of the other
DEFAULT_MAX_DISTANCE = 75.0
#: reference ``thrP = 0.05``: the largest accepted ``1 - p(same)``
DEFAULT_MAX_COST = 0.05
#: reference min-max normalisation: added to the half-range
NORMALISATION_EPS = 1e-5
#: torch BatchNorm's default epsilon (the reference keeps it)
BATCH_NORM_EPS = 1e-5
#: candidate pairs per network forward (bounds memory on sequences with many tracklets)
FORWARD_CHUNK = 4096
#: the reference's "no link" cost; any value above max_cost does
NO_LINK_COST = 1e5


class PairColumn(IntEnum):
    """Columns of the network input rows."""

    FRAME = 0
    X = 1
    Y = 2


PAIR_COLUMNS = len(PairColumn)
#: the two branches of the network, earlier tracklet first
BRANCHES = ("former", "latter")


def fill_or_cut(rows_fxy: np.ndarray, length: int, *, former: bool) -> np.ndarray:
    """``length`` rows of (frame, x, y): the last ones of the earlier tracklet (``former``),
    zero rows in front if it is shorter; the first ones of the later tracklet, zeros behind."""
    rows_fxy = np.asarray(rows_fxy, dtype=np.float64).reshape(-1, PAIR_COLUMNS)
    kept = rows_fxy[-length:] if former else rows_fxy[:length]
    padding = np.zeros((length - len(kept), PAIR_COLUMNS))
    return np.concatenate([padding, kept] if former else [kept, padding])


def normalise_pair(
    former_fxy: np.ndarray, latter_fxy: np.ndarray, length: int = DEFAULT_INPUT_LENGTH
) -> tuple[np.ndarray, np.ndarray]:
    """The network input of one candidate pair: two (length, 3) float32 arrays (see the module
    docstring: cut or pad, then joint per-column min-max scaling to [-1, 1])."""
    first = fill_or_cut(former_fxy, length, former=True)
    second = fill_or_cut(latter_fxy, length, former=False)
    both = np.concatenate([first, second])
    low, high = both.min(axis=0), both.max(axis=0)
    centre, half_range = (high + low) / 2, (high - low) / 2 + NORMALISATION_EPS
    return (
        ((first - centre) / half_range).astype(np.float32),
        ((second - centre) / half_range).astype(np.float32),
    )


class AFLinkModelError(ValueError):
    """The AFLink weight file is missing or is not one ``task=aflink`` wrote."""


@dataclass(frozen=True)
class _BatchNorm:
    scale: np.ndarray  # gamma / sqrt(var + eps)
    shift: np.ndarray  # beta - mean * scale

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray], prefix: str) -> _BatchNorm:
        scale = weights[f"{prefix}.weight"] / np.sqrt(
            weights[f"{prefix}.running_var"] + BATCH_NORM_EPS
        )
        return cls(scale, weights[f"{prefix}.bias"] - weights[f"{prefix}.running_mean"] * scale)


@dataclass(frozen=True)
class _Branch:
    temporal_kernels: list[np.ndarray]  # (C_out, C_in, K) per block
    temporal_norms: list[list[_BatchNorm]]  # one per column per block
    fusion_kernel: np.ndarray  # (C_out, C_in, 3)
    fusion_norm: _BatchNorm

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, C, T, 3) -> pooled (B, C_out)."""
        for kernel, norms in zip(self.temporal_kernels, self.temporal_norms):
            windows = sliding_window_view(x, kernel.shape[-1], axis=2)  # (B, C, T', 3, K)
            x = np.einsum("bctwk,ock->botw", windows, kernel, optimize=True)
            scale = np.stack([n.scale for n in norms], axis=-1)[None, :, None, :]
            shift = np.stack([n.shift for n in norms], axis=-1)[None, :, None, :]
            x = np.maximum(x * scale + shift, 0.0)
        x = np.einsum("bctw,ocw->bot", x, self.fusion_kernel, optimize=True)
        x = np.maximum(
            x * self.fusion_norm.scale[None, :, None] + self.fusion_norm.shift[None, :, None], 0.0
        )
        return x.mean(axis=2)


class AFLinkNumpy:
    """The AFLink network's inference forward in NumPy (float64), from a ``task=aflink`` .npz.

    ``AFLinkNumpy(path)(former, latter)`` with (B, T, 3) or (B, 1, T, 3) inputs returns the
    (B, 2) softmax probabilities [different, same].
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise AFLinkModelError(
                f"AFLink model {self.path}: no such file (write one with "
                "python main.py task=aflink)"
            )
        try:
            with np.load(self.path, allow_pickle=False) as data:
                weights = {key: np.asarray(data[key], dtype=np.float64) for key in data.files}
            self._branches = [self._load_branch(weights, name) for name in BRANCHES]
            self._fc = [
                (weights[f"{fc}.weight"], weights[f"{fc}.bias"])
                for fc in ("classifier.fc1", "classifier.fc2")
            ]
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise AFLinkModelError(
                f"AFLink model {self.path}: not an AFLink .npz written by "
                f"task=aflink ({type(error).__name__}: {error})"
            ) from None
        self.input_length = int(weights.get("input_length", np.array(DEFAULT_INPUT_LENGTH)))
        self._check_shapes()

    @staticmethod
    def _load_branch(weights: dict[str, np.ndarray], name: str) -> _Branch:
        kernels, norms = [], []
        block = 0
        while f"{name}.temporal.{block}.conv.weight" in weights:
            prefix = f"{name}.temporal.{block}"
            kernels.append(weights[f"{prefix}.conv.weight"][..., 0])  # (O, I, K, 1) -> (O, I, K)
            norms.append(
                [
                    _BatchNorm.from_weights(weights, f"{prefix}.norms.{column}")
                    for column in range(PAIR_COLUMNS)
                ]
            )
            block += 1
        if not kernels:
            raise KeyError(f"{name}.temporal.0.conv.weight")
        return _Branch(
            kernels,
            norms,
            weights[f"{name}.fusion.conv.weight"][:, :, 0, :],
            _BatchNorm.from_weights(weights, f"{name}.fusion.norm"),
        )

    def _check_shapes(self) -> None:
        for branch in self._branches:
            channels = 1
            for kernel in [*branch.temporal_kernels, branch.fusion_kernel]:
                if kernel.shape[1] != channels:
                    raise AFLinkModelError(
                        f"AFLink model {self.path}: layer shapes do not "
                        f"chain ({kernel.shape[1]} != {channels} channels)"
                    )
                channels = kernel.shape[0]
            if branch.fusion_kernel.shape[-1] != PAIR_COLUMNS:
                raise AFLinkModelError(f"AFLink model {self.path}: fusion kernel is not 1 x 3")
        pooled = sum(branch.fusion_kernel.shape[0] for branch in self._branches)
        if self._fc[0][0].shape[1] != pooled or self._fc[1][0].shape[0] != 2:
            raise AFLinkModelError(f"AFLink model {self.path}: classifier shapes do not fit")
        shrink = sum(k.shape[-1] - 1 for k in self._branches[0].temporal_kernels)
        if self.input_length <= shrink:
            raise AFLinkModelError(
                f"AFLink model {self.path}: input_length "
                f"{self.input_length} too short for its convolutions"
            )

    def __call__(self, former: np.ndarray, latter: np.ndarray) -> np.ndarray:
        inputs = []
        for x in (former, latter):
            x = np.asarray(x, dtype=np.float64)
            x = x[:, None] if x.ndim == 3 else x
            if x.ndim != 4 or x.shape[1:] != (1, self.input_length, PAIR_COLUMNS):
                raise ValueError(
                    f"AFLink input must be (B, 1, {self.input_length}, 3), got {x.shape}"
                )
            inputs.append(x)
        pooled = np.concatenate([branch(x) for branch, x in zip(self._branches, inputs)], axis=1)
        (w1, b1), (w2, b2) = self._fc
        logits = np.maximum(pooled @ w1.T + b1, 0.0) @ w2.T + b2
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def candidate_mask(
    first_frames: np.ndarray,
    last_frames: np.ndarray,
    first_xy: np.ndarray,
    last_xy: np.ndarray,
    min_gap: float = DEFAULT_MIN_GAP,
    max_gap: float = DEFAULT_MAX_GAP,
    max_distance: float = DEFAULT_MAX_DISTANCE,
) -> np.ndarray:
    """(n, n) bool: may tracklet j continue tracklet i? (gap and distance gates, i != j)."""
    gap = first_frames[None, :] - last_frames[:, None]
    distance = np.linalg.norm(first_xy[None, :, :] - last_xy[:, None, :], axis=2)
    mask = (gap >= min_gap) & (gap < max_gap) & (distance <= max_distance)
    np.fill_diagonal(mask, False)
    return mask


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        """Merge the sets; the smaller index (earlier-starting tracklet) stays the root."""
        root_i, root_j = self.find(i), self.find(j)
        if root_i != root_j:
            self.parent[max(root_i, root_j)] = min(root_i, root_j)


@dataclass
class LinkResult:
    """What :func:`link_tracklets` decided: ``links`` (earlier id, later id, cost) accepted and
    ``id_map`` old id -> new id for every id that changed."""

    links: list[tuple[float, float, float]]
    id_map: dict[float, float]
    candidates: int


def link_tracklets(
    rows: np.ndarray,
    model: AFLinkNumpy,
    *,
    min_gap: float = DEFAULT_MIN_GAP,
    max_gap: float = DEFAULT_MAX_GAP,
    max_distance: float = DEFAULT_MAX_DISTANCE,
    max_cost: float = DEFAULT_MAX_COST,
) -> tuple[np.ndarray, LinkResult]:
    """Link the tracklets of one sequence's result rows ``[frame, id, x, y, w, h, score]``.

    Returns the rows with linked tracklets renamed to the first id of their chain (one box per
    id and frame: the earlier tracklet's where two share one), sorted by id then frame, and the
    decisions.
    """
    rows = np.asarray(rows, dtype=np.float64)
    empty = LinkResult([], {}, 0)
    if len(rows) == 0:
        return rows, empty
    frame, track_id, x, y = 0, 1, 2, 3
    order = np.lexsort((rows[:, frame], rows[:, track_id]))
    rows = rows[order]
    ids, starts, counts = np.unique(rows[:, track_id], return_index=True, return_counts=True)
    stops = starts + counts
    # tracklets in order of their first frame (ties by id), like the reference's dict order
    by_start = np.lexsort((ids, rows[starts, frame]))
    ids, starts, stops = ids[by_start], starts[by_start], stops[by_start]
    first_frames, last_frames = rows[starts, frame], rows[stops - 1, frame]
    first_xy, last_xy = rows[starts][:, [x, y]], rows[stops - 1][:, [x, y]]
    mask = candidate_mask(
        first_frames, last_frames, first_xy, last_xy, min_gap, max_gap, max_distance
    )
    pair_i, pair_j = np.nonzero(mask)
    if len(pair_i) == 0:
        return rows, empty
    fxy = rows[:, [frame, x, y]]
    length = model.input_length
    cost = np.full(mask.shape, NO_LINK_COST)
    for chunk in range(0, len(pair_i), FORWARD_CHUNK):
        ci, cj = pair_i[chunk : chunk + FORWARD_CHUNK], pair_j[chunk : chunk + FORWARD_CHUNK]
        pairs = [
            normalise_pair(
                fxy[max(starts[i], stops[i] - length) : stops[i]],
                fxy[starts[j] : min(stops[j], starts[j] + length)],
                length,
            )
            for i, j in zip(ci, cj)
        ]
        former = np.stack([p[0] for p in pairs])[:, None]
        latter = np.stack([p[1] for p in pairs])[:, None]
        cost[ci, cj] = 1.0 - model(former, latter)[:, 1]
    # the reference keeps costs <= thrP in the matrix and accepts assignments < thrP
    cost[cost > max_cost] = NO_LINK_COST
    live_rows = np.flatnonzero((cost < max_cost).any(axis=1))
    live_cols = np.flatnonzero((cost < max_cost).any(axis=0))
    if len(live_rows) == 0:
        return rows, LinkResult([], {}, len(pair_i))
    matched = min_cost_matching(
        cost[np.ix_(live_rows, live_cols)],
        np.nextafter(max_cost, 0),
        range(len(live_rows)),
        range(len(live_cols)),
    ).matches
    union = _UnionFind(len(ids))
    links = []
    for r, c in matched:
        i, j = int(live_rows[r]), int(live_cols[c])
        union.union(i, j)
        links.append((float(ids[i]), float(ids[j]), float(cost[i, j])))
    new_ids = ids[[union.find(k) for k in range(len(ids))]]
    id_map = {float(old): float(new) for old, new in zip(ids, new_ids) if old != new}
    lookup = dict(zip(ids.tolist(), new_ids.tolist()))
    out = rows.copy()
    out[:, track_id] = [lookup[v] for v in out[:, track_id].tolist()]
    # one box per (id, frame): the earliest-starting tracklet's (rank = start order)
    row_order = np.concatenate([np.arange(s, e) for s, e in zip(starts, stops)])
    rank = np.repeat(np.arange(len(ids)), stops - starts)
    out = out[row_order]
    keep_order = np.lexsort((rank, out[:, frame], out[:, track_id]))
    out = out[keep_order]
    duplicate = np.r_[False, (np.diff(out[:, track_id]) == 0) & (np.diff(out[:, frame]) == 0)]
    return out[~duplicate], LinkResult(links, id_map, len(pair_i))
