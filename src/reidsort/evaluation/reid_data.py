"""Query and gallery images for ``task=eval``, from any data config.

* ``data=market1501`` (and the other dataset readers, ``data=synthetic``): the dataset's own
  query / gallery (the test split), read and scanned exactly as training reads them
  (``data.test_root`` evaluates on another root: cross-domain evaluation is just another data
  config); ``task.split=val`` evaluates the identities training held out instead.
* ``data=folder``: one folder per identity, split identity-disjointly and seeded
  (``data.val_identities``, ``data.seed``): the identities that training held out. With
  ``task.folder_identities=all`` every identity of the folder is cut into query / gallery
  (a folder of people the model never saw).
* ``data=query_gallery``: two explicit folders, ``data.query_root`` and ``data.gallery_root``,
  with Market-1501 file names (``<pid>_c<cam>...``); no training images needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from reidsort.data.datasets import MARKET_NAME, ImageRecord, carve_query_gallery
from reidsort.data.image_io import is_image_file
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

JUNK_PID = -1
HELDOUT, ALL = "heldout", "all"
TEST, VAL = "test", "val"


@dataclass(frozen=True)
class EvalSplit:
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    source: str
    """one line saying where the images came from"""
    skipped_files: int = 0
    """files the data scan rejected (unreadable, truncated, ...)"""
    notes: dict[str, Any] = field(default_factory=dict)
    """``format``, ``root``, ``test_root`` of the data and ``split``: which of its splits the
    images are (test, val, all), to compare with what a model was trained on"""

    @property
    def has_cameras(self) -> bool:
        """True when every image has a camera id (the Market-1501 protocol can exclude)."""
        return all(r.camid >= 0 for r in (*self.query, *self.gallery))


def _market_named_images(folder: Path, role: str) -> list[ImageRecord]:
    if not folder.is_dir():
        raise ReidsortError(f"{role} folder not found: {folder}")
    records = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p)):
        match = MARKET_NAME.match(path.name)
        if match is None:
            raise ReidsortError(
                f"{path}: {role} image name does not follow Market-1501 naming "
                "'<pid>_c<cam>...' (use data=folder for one folder per identity)"
            )
        pid, camid = int(match.group(1)), int(match.group(2))
        if pid == JUNK_PID or path.stat().st_size == 0:
            continue
        records.append(ImageRecord(str(path), pid, camid))
    return records


class QueryGalleryData:
    """``data=query_gallery``: explicit query and gallery folders, for ``task=eval`` only.

    ``root`` is optional: with it, a relative ``query_root`` / ``gallery_root`` is taken under
    it, and a missing one defaults to ``root/query`` and ``root/gallery``.
    """

    format = "query_gallery"

    def __init__(
        self,
        query_root: str | None = None,
        gallery_root: str | None = None,
        root: str | None = None,
        image_size: tuple[int, int] | list[int] = (256, 128),
        eval_batch_size: int = 128,
        num_workers: int = 4,
        format: str = "query_gallery",
        **training_options: Any,
    ) -> None:
        # training-only keys (p, k, augment, ...) that an experiment merges into any data
        # config are accepted and unused: there is nothing to train on here
        del training_options
        if format != self.format:
            raise ValueError(f"data.format={format!r}: QueryGalleryData reads 'query_gallery'")
        base = Path(root) if root not in (None, "", "???") else None
        self.query_root = self._resolve(query_root, base, "query")
        self.gallery_root = self._resolve(gallery_root, base, "gallery")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.eval_batch_size = int(eval_batch_size)
        self.num_workers = int(num_workers)

    @staticmethod
    def _resolve(folder: str | None, base: Path | None, default: str) -> Path | None:
        if folder not in (None, ""):
            path = Path(str(folder))
            return base / path if base is not None and not path.is_absolute() else path
        return base / default if base is not None else None

    def read(self) -> EvalSplit:
        if self.query_root is None or self.gallery_root is None:
            raise ReidsortError("data=query_gallery needs data.query_root and data.gallery_root "
                                "(or data.root holding query/ and gallery/)")
        query = _market_named_images(self.query_root, "query")
        gallery = _market_named_images(self.gallery_root, "gallery")
        return EvalSplit(query, gallery, f"query {self.query_root}, gallery {self.gallery_root}",
                         notes={"format": self.format, "split": TEST,
                                "root": f"{self.query_root}, {self.gallery_root}"})

    def prepare_data(self) -> None:
        raise ReidsortError("data=query_gallery holds no training images; use it with task=eval")

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()


def load_eval_split(data_cfg: DictConfig, folder_identities: str = HELDOUT,
                    seed: int = 0, split: str = TEST) -> EvalSplit:
    """The query / gallery that ``data_cfg`` describes (see the module docstring).

    ``split=test``: the dataset's own query/gallery (or ``data.test_root``'s); a folder dataset
    without one evaluates its held-out identities. ``split=val``: the identities training held
    out for validation (``data.val_identities``, ``data.seed``).
    """
    if folder_identities not in (HELDOUT, ALL):
        raise ReidsortError(
            f"task.folder_identities={folder_identities!r}: expected {HELDOUT} or {ALL}"
        )
    if split not in (TEST, VAL):
        raise ReidsortError(f"task.split={split!r}: expected {TEST} or {VAL}")
    data = instantiate(data_cfg)
    if isinstance(data, QueryGalleryData):
        result = data.read()
    else:
        data.prepare_data()  # generates the synthetic data on first use
        loaded, final = data.load()
        source = f"{data.format} {data.dataset_root}"
        held_out = (f" (held-out identities: val_identities={data.val_identities}, "
                    f"seed={data.seed})")
        if data.format == "folder" and folder_identities == ALL and not data.test_root:
            query, gallery = carve_query_gallery(loaded.split.train,
                                                 np.random.default_rng(seed))
            source += " (all identities)"
            roles: tuple[str, ...] = ("train",)
            chosen = ALL
        elif split == TEST and final.has_test:
            query, gallery = final.test_query, final.test_gallery
            source += (f" (test split: query/gallery from {data.test_root})" if data.test_root
                       else " (test split: its query/gallery)")
            roles = ("query", "gallery")
            chosen = TEST
        elif final.has_validation:
            if split == TEST:
                log.info("%s has no query/gallery of its own: evaluating the identities "
                         "training held out", data.dataset_root)
            query, gallery = final.split.query, final.split.gallery
            source += held_out
            roles = ("train",)
            chosen = VAL
        else:
            raise ReidsortError(f"{source}: no validation split (data.val_identities=null) "
                                "to evaluate; use task.split=test or set data.val_identities")
        # files the scan rejected among the images evaluated (a carved split draws on "train")
        skipped = sum(len(loaded.invalid.get(role, [])) for role in roles)
        result = EvalSplit(query, gallery, source, skipped_files=skipped,
                           notes={"format": data.format, "root": str(data.dataset_root),
                                  "test_root": data.test_root, "split": chosen})
    for role, records in (("query", result.query), ("gallery", result.gallery)):
        if not records:
            raise ReidsortError(f"{result.source}: no {role} images to evaluate")
    return result
