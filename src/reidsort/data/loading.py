"""Scan + read + filter: the one way datasets are loaded (training, ``task=scan``, converters and
evaluation all go through :func:`load_dataset`, so they agree on what the dataset is).

1. :func:`reidsort.data.scan.scan_dataset` classifies every file under the root (cached);
2. the format's reader (:mod:`reidsort.data.readers`) turns names into records;
3. records whose file the scan found invalid are dropped, each counted with its reason.

Carving a validation split and ``min_samples`` happen after that (:func:`finalize_split`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reidsort.data.readers import DatasetFiles, get_reader
from reidsort.data.records import (
    ImageRecord,
    ReIDSplit,
    drop_small_identities,
    split_identities,
)
from reidsort.data.scan import INVALID, ScanOptions, ScanResult, scan_dataset

log = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")
#: ``data.format=folder`` has no query/gallery of its own; a test_root is read as Market-1501
TEST_ROOT_FORMAT = {"folder": "market1501"}


@dataclass
class LoadedDataset:
    """The reader's split with invalid files removed, plus everything a report needs."""

    split: ReIDSplit
    scans: list[ScanResult]
    #: per split: the dropped records' ``(path, reason)``
    invalid: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def num_invalid(self) -> int:
        return sum(len(v) for v in self.invalid.values())


@dataclass(frozen=True)
class ScanSettings:
    """How datasets are scanned (``data.scan`` in the configs)."""

    verify: bool = True
    options: ScanOptions = ScanOptions()
    threads: int = 8
    cache: bool = True
    fallback_cache_dir: str | None = None

    @classmethod
    def from_config(cls, verify: bool = True, scan: dict[str, Any] | None = None
                    ) -> "ScanSettings":
        scan = dict(scan or {})
        option_names = ScanOptions.__dataclass_fields__
        options = ScanOptions(**{k: scan.pop(k) for k in list(scan) if k in option_names})
        known = {"threads", "cache", "fallback_cache_dir"}
        unknown = set(scan) - known
        if unknown:
            raise ValueError(f"unknown data.scan options: {sorted(unknown)}")
        fallback = scan.get("fallback_cache_dir")
        return cls(verify=bool(verify), options=options, threads=int(scan.get("threads", 8)),
                   cache=bool(scan.get("cache", True)),
                   fallback_cache_dir=str(fallback) if fallback else None)

    def scan(self, root: str | os.PathLike) -> ScanResult:
        return scan_dataset(root, self.options, threads=self.threads, cache=self.cache,
                            fallback_cache_dir=self.fallback_cache_dir, verify=self.verify)


def _drop_invalid(split: ReIDSplit, scan: ScanResult
                  ) -> tuple[ReIDSplit, dict[str, list[tuple[str, str]]]]:
    reasons = {os.path.join(scan.root, p): r for p, r in scan.entries(INVALID)}
    parts: dict[str, list[ImageRecord]] = {}
    invalid: dict[str, list[tuple[str, str]]] = {}
    for name in SPLITS:
        records = getattr(split, name)
        parts[name] = [r for r in records if r.path not in reasons]
        invalid[name] = [(r.path, reasons[r.path]) for r in records if r.path in reasons]
    return ReIDSplit(**parts), invalid


def read_scanned(format: str, scan: ScanResult) -> tuple[ReIDSplit, dict[str, Any],
                                                         dict[str, list[tuple[str, str]]]]:
    """Run ``format``'s reader on ``scan`` and drop the invalid files it picked."""
    files = DatasetFiles(scan.root, scan.image_paths(), scan.dirs)
    output = get_reader(format)(files)
    split, invalid = _drop_invalid(output.split, scan)
    return split, output.notes, invalid


def load_dataset(
    format: str,
    root: str | os.PathLike,
    *,
    test_root: str | os.PathLike | None = None,
    settings: ScanSettings | None = None,
) -> LoadedDataset:
    """Scan ``root`` (and ``test_root``), read it as ``format``, drop invalid files.

    With ``test_root`` the query/gallery come from there (read as the same format; a ``folder``
    dataset's test root is read as Market-1501).
    """
    settings = settings or ScanSettings()
    scan = settings.scan(root)
    split, notes, invalid = read_scanned(format, scan)
    scans = [scan]
    if test_root:
        test_scan = settings.scan(test_root)
        test_split, test_notes, test_invalid = read_scanned(
            TEST_ROOT_FORMAT.get(format, format), test_scan)
        split = ReIDSplit(train=split.train, query=test_split.query, gallery=test_split.gallery)
        invalid = {"train": invalid["train"], "query": test_invalid["query"],
                   "gallery": test_invalid["gallery"]}
        notes = {**notes, "test_root": test_notes}
        scans.append(test_scan)
    loaded = LoadedDataset(split, scans, invalid, notes)
    if loaded.num_invalid:
        log.warning("skipping %d invalid image(s) of %s (%s)", loaded.num_invalid, root,
                    ", ".join(f"{r}: {n}" for r, n in Counter(
                        reason for items in invalid.values() for _, reason in items).items()))
    return loaded


@dataclass
class FinalSplit:
    """What training and evaluation use, with the bookkeeping for reports.

    ``split`` holds the training images and the *validation* query/gallery (identities carved
    out of the training set: what checkpoint selection and sweeps look at; empty when no
    validation split was asked for). ``test_query`` / ``test_gallery`` are the dataset's own
    query/gallery (or ``test_root``'s), reported once at the end and never used to select.
    """

    split: ReIDSplit
    #: train identities dropped by ``min_samples``: ``{pid: images}``
    dropped_identities: dict[int, int]
    val_carved: bool
    test_query: list[ImageRecord] = field(default_factory=list)
    test_gallery: list[ImageRecord] = field(default_factory=list)

    @property
    def has_validation(self) -> bool:
        return bool(self.split.query and self.split.gallery)

    @property
    def has_test(self) -> bool:
        return bool(self.test_query and self.test_gallery)


def finalize_split(loaded: LoadedDataset, *, val_identities: float | int | None,
                   seed: int, min_samples: int | None, root: str | os.PathLike) -> FinalSplit:
    """Carve an identity-disjoint validation split out of the training identities when asked,
    keep the dataset's query/gallery as the test split, then drop training identities with
    fewer than ``min_samples`` images."""
    split = loaded.split
    test_query, test_gallery = list(split.query), list(split.gallery)
    if not split.train:
        raise ValueError(f"{root}: no readable training images")
    if val_identities:
        split = split_identities(split.train, val_identities, seed)
    elif not (test_query and test_gallery):
        raise ValueError(f"{root}: the dataset has no query/gallery; set data.val_identities "
                         "(a fraction or a count of identities held out for validation)")
    else:
        split = ReIDSplit(split.train, [], [])
    train, dropped = drop_small_identities(split.train, min_samples)
    if dropped:
        log.warning("min_samples=%d: dropped %d training identities (%d images)", min_samples,
                    len(dropped), sum(dropped.values()))
    if not train:
        raise ValueError(f"{root}: no training identity has min_samples={min_samples} images")
    return FinalSplit(ReIDSplit(train, split.query, split.gallery), dropped,
                      bool(val_identities), test_query, test_gallery)


def split_counts(split: ReIDSplit) -> dict[str, dict[str, int]]:
    return {name: {"images": len(getattr(split, name)),
                   "identities": len({r.pid for r in getattr(split, name)})}
            for name in SPLITS}


def describe(loaded: LoadedDataset, final: FinalSplit | None) -> dict[str, Any]:
    """JSON-ready summary of a load: the scans, what the reader found, what training uses."""
    out: dict[str, Any] = {
        "scans": [s.report() for s in loaded.scans],
        "reader": {"splits": split_counts(loaded.split), "notes": loaded.notes,
                   "invalid_images_dropped": {k: [{"path": p, "reason": r} for p, r in v]
                                              for k, v in loaded.invalid.items()}},
    }
    if final is not None:
        counts = split_counts(final.split)
        test = split_counts(ReIDSplit([], final.test_query, final.test_gallery))
        out["used"] = {
            "splits": {"train": counts["train"], "val_query": counts["query"],
                       "val_gallery": counts["gallery"], "test_query": test["query"],
                       "test_gallery": test["gallery"]},
            "validation_carved_from_train": final.val_carved,
            "dropped_identities_min_samples": {str(k): v for k, v in
                                               final.dropped_identities.items()},
        }
    return out


__all__ = ["LoadedDataset", "FinalSplit", "ScanSettings", "load_dataset", "finalize_split",
           "describe", "split_counts", "read_scanned"]
