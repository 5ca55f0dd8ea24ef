"""Appearance metric: nearest-neighbour distance to per-track galleries of past embeddings.

DeepSORT (Wojke et al. 2017, eq. 3) scores a detection against a track by the smallest distance
between the detection's embedding and any of the last ``nn_budget`` embeddings the track was
matched with. nwojke/deep_sort keeps those galleries as Python lists in a dict and re-normalises
every gallery on every query; here they live in one preallocated ring-buffer array
``(slots, budget, D)``, normalised once when an embedding is stored, so memory stays flat over
any stream length and a query is one small product per track (or per gated pair).

Metric values match the reference exactly in definition:

* ``cosine``: ``1 - max_i <g_i, q>`` with ``g_i`` and ``q`` scaled to unit length.
* ``euclidean``: the smallest *squared* Euclidean distance (the reference's ``_pdist``), clipped
  at 0. The threshold ``max_dist`` is therefore in squared units for this metric.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

#: A track with at least this many gated candidate detections gets one matrix product over all of
#: them; below that, one matrix-vector product per candidate is faster (OpenBLAS, one thread,
#: 30 tracks with galleries of up to 100 x 128-512 dims: the crossover lies between 4 and 6).
BATCHED_MIN_CANDIDATES = 5

#: Embeddings are stored and compared in single precision, as in the reference
#: (``Detection.feature`` is float32 there), which halves memory and doubles BLAS speed.
EMBEDDING_DTYPE = np.float32


class DistanceMetric(str, Enum):
    """How an embedding is compared with a gallery sample."""

    COSINE = "cosine"
    EUCLIDEAN = "euclidean"


def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    """Scale each row to unit L2 norm (single precision, like the reference)."""
    embeddings = np.asarray(embeddings, dtype=EMBEDDING_DTYPE)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


class AppearanceGallery:
    """Bounded per-track embedding galleries in a preallocated ring buffer.

    A track owns one *slot* from :meth:`allocate` until :meth:`release`. Released slots are
    reused, so the buffer grows only with the largest number of simultaneously live tracks.
    With ``budget=None`` (unbounded, allowed by the reference) the sample axis doubles on
    demand instead; memory then grows with track length, as in the reference.
    """

    def __init__(
        self,
        metric: DistanceMetric | str = DistanceMetric.COSINE,
        budget: int | None = 100,
        embedding_dim: int | None = None,
        initial_slots: int = 32,
    ) -> None:
        self.metric = DistanceMetric(metric)
        if budget is not None and int(budget) < 1:
            raise ValueError(f"nn_budget must be a positive integer or None, got {budget}")
        self.budget = None if budget is None else int(budget)
        self.embedding_dim: int | None = None
        self._initial_slots = max(1, int(initial_slots))
        self._samples = np.zeros((0, 0, 0), dtype=EMBEDDING_DTYPE)
        self._squared_norms = np.zeros((0, 0), dtype=EMBEDDING_DTYPE)
        self._count = np.zeros(0, dtype=np.int64)
        self._next_position = np.zeros(0, dtype=np.int64)
        self._free_slots: list[int] = []
        if embedding_dim is not None:
            self._set_dim(int(embedding_dim))

    # -- storage -----------------------------------------------------------------------------
    @property
    def sample_capacity(self) -> int:
        return self._samples.shape[1]

    @property
    def slot_capacity(self) -> int:
        return len(self._count)

    @property
    def nbytes(self) -> int:
        return self._samples.nbytes + self._squared_norms.nbytes + self._count.nbytes * 2

    def _set_dim(self, embedding_dim: int) -> None:
        if embedding_dim < 1:
            raise ValueError(f"embedding dimension must be positive, got {embedding_dim}")
        self.embedding_dim = embedding_dim
        samples_per_slot = self.budget if self.budget is not None else 8
        self._samples = np.zeros(
            (len(self._count), samples_per_slot, embedding_dim), EMBEDDING_DTYPE
        )
        self._squared_norms = np.zeros((len(self._count), samples_per_slot), EMBEDDING_DTYPE)

    def _grow_slots(self, needed: int) -> None:
        old = len(self._count)
        new = max(self._initial_slots, 2 * old, old + needed)
        self._count = np.concatenate([self._count, np.zeros(new - old, np.int64)])
        self._next_position = np.concatenate([self._next_position, np.zeros(new - old, np.int64)])
        if self.embedding_dim is not None:
            extra = (new - old,) + self._samples.shape[1:]
            self._samples = np.concatenate([self._samples, np.zeros(extra, EMBEDDING_DTYPE)])
            self._squared_norms = np.concatenate(
                [self._squared_norms, np.zeros(extra[:2], EMBEDDING_DTYPE)]
            )
        # Reuse low slots first: pop() takes from the end.
        self._free_slots = list(range(new - 1, old - 1, -1)) + self._free_slots

    def _grow_samples(self) -> None:
        """Unbounded mode only: double the per-slot sample axis."""
        old = self._samples.shape[1]
        pad = np.zeros((len(self._count), old, self.embedding_dim or 0), EMBEDDING_DTYPE)
        self._samples = np.concatenate([self._samples, pad], axis=1)
        self._squared_norms = np.concatenate(
            [self._squared_norms, np.zeros((len(self._count), old), EMBEDDING_DTYPE)], axis=1
        )

    def allocate(self, count: int) -> np.ndarray:
        """Reserve ``count`` empty galleries; returns their slot indices."""
        if count > len(self._free_slots):
            self._grow_slots(count - len(self._free_slots))
        slots = np.array([self._free_slots.pop() for _ in range(count)], dtype=np.int64)
        self._count[slots] = 0
        self._next_position[slots] = 0
        return slots

    def release(self, slots: np.ndarray) -> None:
        """Free the galleries of deleted tracks (their samples are forgotten)."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        self._count[slots] = 0
        self._next_position[slots] = 0
        self._free_slots.extend(slots[::-1].tolist())

    def sample_count(self, slots: np.ndarray) -> np.ndarray:
        return self._count[np.asarray(slots, dtype=np.int64)]

    def samples(self, slot: int) -> np.ndarray:
        """The stored (normalised for cosine) samples of one slot, oldest first."""
        count = int(self._count[slot])
        capacity = self._samples.shape[1]
        if count < capacity:
            return self._samples[slot, :count].copy()
        start = int(self._next_position[slot])
        return np.roll(self._samples[slot], -start, axis=0).copy()

    def add(self, slots: np.ndarray, embeddings: np.ndarray, prepared: bool = False) -> None:
        """Append one embedding to each of ``slots`` (distinct), evicting the oldest if full.

        ``prepared=True`` means the rows come from :meth:`prepare_queries` already (the tracker
        normalises a frame's embeddings once and reuses them for queries and storage).
        """
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        if len(slots) == 0:
            return
        embeddings = np.asarray(embeddings, dtype=EMBEDDING_DTYPE).reshape(len(slots), -1)
        if self.embedding_dim is None:
            self._set_dim(embeddings.shape[1])
        elif embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embedding dimension {embeddings.shape[1]} does not match the gallery's "
                f"{self.embedding_dim}"
            )
        if not prepared:
            embeddings = self.prepare_queries(embeddings)
        if self.budget is None:
            while int(self._next_position[slots].max()) >= self._samples.shape[1]:
                self._grow_samples()
        positions = self._next_position.take(slots)
        self._samples[slots, positions] = embeddings
        if self.metric is DistanceMetric.EUCLIDEAN:  # only the Euclidean distance reads them
            self._squared_norms[slots, positions] = (embeddings * embeddings).sum(axis=1)
        capacity = self._samples.shape[1]
        positions += 1
        if self.budget is not None:
            positions %= capacity
        self._next_position[slots] = positions
        counts = self._count.take(slots)
        counts += 1
        self._count[slots] = np.minimum(counts, capacity, out=counts)

    def repeat_newest(self, slots: np.ndarray) -> None:
        """Store each slot's newest sample once more (deep-sort-realtime compatibility).

        deep-sort-realtime re-stores a confirmed track's newest embedding on every frame, so its
        galleries fill with duplicates; the nearest-neighbour distance is unchanged but the
        budget then evicts distinct samples sooner. Empty slots are skipped.
        """
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        slots = slots[self._count[slots] > 0]
        if len(slots) == 0:
            return
        newest = self._next_position[slots] - 1
        if self.budget is not None:
            newest %= self._samples.shape[1]
        self.add(slots, self._samples[slots, newest].copy(), prepared=True)

    # -- queries -----------------------------------------------------------------------------
    def prepare_queries(self, embeddings: np.ndarray) -> np.ndarray:
        """Queries in the stored representation (unit rows for cosine); reuse across calls."""
        embeddings = np.asarray(embeddings, dtype=EMBEDDING_DTYPE)
        return normalize_rows(embeddings) if self.metric is DistanceMetric.COSINE else embeddings

    def distance(
        self,
        slots: np.ndarray,
        queries: np.ndarray,
        candidate_mask: np.ndarray | None = None,
        prepared: bool = False,
    ) -> np.ndarray:
        """Nearest-neighbour distance of every query to every slot's gallery, ``(T, N)``.

        Only entries where ``candidate_mask`` is True are computed (the others are ``inf``):
        the tracker passes the Kalman gate here, since an appearance cost outside the gate
        cannot change the assignment. A slot with k >= ``BATCHED_MIN_CANDIDATES`` candidates
        costs one ``(k, D) x (D, samples)`` product, one with fewer one matrix-vector product
        per candidate, all on views of the ring buffer (no gallery is copied). Slots with an
        empty gallery give ``inf``.
        """
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        if not prepared:
            queries = self.prepare_queries(queries)
        result = np.full((len(slots), len(queries)), np.inf, dtype=np.float64)
        if len(slots) == 0 or len(queries) == 0 or self.embedding_dim is None:
            return result
        if queries.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embedding dimension {queries.shape[1]} does not match the gallery's "
                f"{self.embedding_dim}"
            )
        counts = self._count.take(slots)
        if candidate_mask is None:
            candidate_mask = np.ones((len(slots), len(queries)), dtype=bool)
        if np.count_nonzero(counts) != len(counts):
            candidate_mask = candidate_mask & (counts > 0)[:, None]
        pair_rows, pair_cols = candidate_mask.nonzero()
        if len(pair_rows) == 0:
            return result
        # Similarities are written straight into a padded (pairs, capacity) buffer, then a single
        # reduction takes the nearest neighbour of every pair. Products read views of the ring
        # buffer, so no gallery is copied. A track with many gated candidates costs one
        # (k, D) x (D, samples) product (its pairs are one contiguous run: nonzero() is
        # row-major); a track with few (after the Kalman gate, almost always 1 or 2) costs one
        # matrix-vector product per pair, which BLAS runs straight off the gallery, whereas a
        # matrix product first packs the gallery and is slower below ~5 columns (see
        # BATCHED_MIN_CANDIDATES). Gathering the galleries into one padded tensor for a single
        # matmul/einsum copies them all and is slower still.
        capacity = self._samples.shape[1]
        euclidean = self.metric is DistanceMetric.EUCLIDEAN
        # Padding (-inf) loses every comparison: max for cosine, min of -2x + |a|^2 for Euclidean.
        similarity = np.full((len(pair_rows), capacity), -np.inf, EMBEDDING_DTYPE)
        samples = self._samples
        slot_list, count_list = slots.tolist(), counts.tolist()
        # bincount over the row-major pairs: one C call (count_nonzero with an axis is not)
        per_row = np.bincount(pair_rows, minlength=len(slots))
        if int(per_row.max()) >= BATCHED_MIN_CANDIDATES:
            batched = per_row >= BATCHED_MIN_CANDIDATES
            rows = batched.nonzero()[0]
            ends = np.cumsum(per_row).take(rows)
            for row, start, end in zip(
                rows.tolist(), (ends - per_row.take(rows)).tolist(), ends.tolist()
            ):
                count = count_list[row]
                chunk = (
                    queries
                    if end - start == len(queries)
                    else queries.take(pair_cols[start:end], axis=0)
                )
                np.matmul(
                    chunk, samples[slot_list[row], :count].T, out=similarity[start:end, :count]
                )
            single = (~batched).take(pair_rows).nonzero()[0].tolist()
        else:
            single = range(len(pair_rows))
        # Plain Python ints from two tolist() calls: cheaper than a take() per array per pair.
        pair_row_list, pair_col_list = pair_rows.tolist(), pair_cols.tolist()
        for pair in single:
            row = pair_row_list[pair]
            count = count_list[row]
            np.dot(
                samples[slot_list[row], :count],
                queries[pair_col_list[pair]],
                out=similarity[pair, :count],
            )
        if euclidean:
            # Reference order per sample: (-2 a.b + |a|^2) + |b|^2, then the minimum, clipped at
            # 0 (squared units).
            squared = -2.0 * similarity + self._squared_norms.take(slots.take(pair_rows), axis=0)
            pair_queries = queries.take(pair_cols, axis=0)
            best = squared.min(axis=1) + (pair_queries * pair_queries).sum(axis=1)
            result[pair_rows, pair_cols] = np.maximum(0.0, best)
        else:
            result[pair_rows, pair_cols] = 1.0 - similarity.max(axis=1)
        return result
