"""Image records and the split operations on them (no file access).

Identity labels are kept as found on disk (``pid``); training relabels them to 0..C-1
(:func:`relabel`). Market-1501 conventions: pid -1 = junk (dropped by readers), pid 0 =
distractor (gallery negatives only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

JUNK_PID = -1
DISTRACTOR_PID = 0
#: camera id of images whose camera is unknown
UNKNOWN_CAMERA = -1


@dataclass(frozen=True)
class ImageRecord:
    path: str
    pid: int
    camid: int


@dataclass(frozen=True)
class ReIDSplit:
    """Training images plus a query/gallery pair for retrieval (either may be empty when a
    dataset has no such part, e.g. a folder of identities has no query/gallery)."""

    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]


def relabel(records: Sequence[ImageRecord]) -> tuple[list[int], dict[int, int]]:
    """Map the identities of ``records`` to contiguous labels 0..C-1 (sorted by pid)."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [mapping[r.pid] for r in records], mapping


def drop_small_identities(
    records: Sequence[ImageRecord], min_samples: int | None
) -> tuple[list[ImageRecord], dict[int, int]]:
    """Drop identities with fewer than ``min_samples`` images (batch-hard triplet needs a
    positive). Returns the kept records and ``{dropped pid: its image count}``."""
    if not min_samples or min_samples <= 1:
        return list(records), {}
    counts = Counter(r.pid for r in records)
    dropped = {pid: n for pid, n in sorted(counts.items()) if n < min_samples}
    return [r for r in records if r.pid not in dropped], dropped


def carve_query_gallery(
    records: Sequence[ImageRecord], rng: np.random.Generator
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Cut the images of some identities into a query and a gallery.

    For each identity one query image is taken from one of its cameras (when file names carry
    cameras, so the Market-1501 protocol can exclude same-camera matches); without cameras, one
    image is the query and the rest the gallery, each with its own pseudo-camera so only the
    query image itself is excluded. Identities with one image are left out (no true match).
    """
    by_pid: dict[int, list[ImageRecord]] = {}
    for r in records:
        by_pid.setdefault(r.pid, []).append(r)
    query: list[ImageRecord] = []
    gallery: list[ImageRecord] = []
    for pid in sorted(by_pid):
        items = by_pid[pid]
        if len(items) < 2:
            continue
        cams = sorted({r.camid for r in items})
        if len(cams) >= 2 and UNKNOWN_CAMERA not in cams:
            query_cam = cams[int(rng.integers(len(cams)))]
            in_cam = [r for r in items if r.camid == query_cam]
            q = in_cam[int(rng.integers(len(in_cam)))]
            query.append(q)
            gallery.extend(r for r in items if r is not q)
        else:
            q_index = int(rng.integers(len(items)))
            for i, r in enumerate(items):
                if i == q_index:
                    query.append(ImageRecord(r.path, r.pid, 0))
                else:
                    gallery.append(ImageRecord(r.path, r.pid, 1))
    return query, gallery


def split_identities(
    records: Sequence[ImageRecord], val_identities: float | int, seed: int
) -> ReIDSplit:
    """Identity-disjoint train/validation split; validation is cut into query and gallery
    (:func:`carve_query_gallery`). ``val_identities`` is a fraction (0-1) or a count."""
    pids = sorted({r.pid for r in records})
    fraction = 0 < val_identities < 1
    count = int(round(val_identities * len(pids))) if fraction else int(val_identities)
    if not 1 <= count < len(pids):
        raise ValueError(
            f"val_identities={val_identities} gives {count} of {len(pids)} identities; "
            "need at least 1 for validation and 1 for training"
        )
    rng = np.random.default_rng(seed)
    val_pids = set(rng.choice(pids, size=count, replace=False).tolist())
    train = [r for r in records if r.pid not in val_pids]
    query, gallery = carve_query_gallery([r for r in records if r.pid in val_pids], rng)
    if not query:
        raise ValueError("validation split has no identity with two or more images")
    return ReIDSplit(train=train, query=query, gallery=gallery)
