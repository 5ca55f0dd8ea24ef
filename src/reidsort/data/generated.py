"""Generated (unlabelled) person images for LSRO training: ``data.generated_root=<folder>``.

Images a GAN wrote (``task=generate`` writes a flat folder; any tree of ``*.png`` / ``*.jpg`` /
``*.jpeg`` works, hidden entries are left out) join the Re-ID training batches with no identity:
label :data:`GENERATED_LABEL`. The objective gives them the uniform target over the training
identities (label smoothing regularisation for outliers, Zheng, Zheng & Yang, ICCV 2017).

They are training images only: the data module never puts them into validation, test, the
histogram baseline or the identity count (:mod:`reidsort.data.datamodule`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from reidsort.data.image_dataset import ReIDImageDataset
from reidsort.data.image_io import read_image_rgb
from reidsort.data.scan import INVALID, ScanOptions, check_images, walk
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: the label of a generated image in a training batch (real labels are 0..C-1)
GENERATED_LABEL = -1
#: the camera id of a generated image (no camera took it)
GENERATED_CAMID = -1
#: the file types read as generated images (lower case); what ``task=generate`` writes
GENERATED_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})
#: how many skipped file names the warning lists before "..."
LISTED_SKIPS = 5
#: how many other generated images to try when one fails to decode mid-epoch
MAX_FALLBACK_TRIES = 8


@dataclass(frozen=True)
class GeneratedFolder:
    """The readable generated images of a folder and the files left out."""

    root: str
    paths: list[str]
    skipped: list[str]


def _config_name(root: str | os.PathLike) -> str:
    return f"data.generated_root={root}"


def read_generated_folder(root: str | os.PathLike, options: ScanOptions | None = None,
                          threads: int = 1) -> GeneratedFolder:
    """Every readable ``*.png`` / ``*.jpg`` / ``*.jpeg`` under ``root`` (sorted, recursive).

    Files are checked as ``task=scan`` checks a dataset (header + truncation, a full decode
    with ``options.paranoid``); the unreadable ones are skipped with one warning and counted
    in :attr:`GeneratedFolder.skipped`. A missing folder, or one without a readable image, is
    a one-line :class:`ReidsortError` naming it.
    """
    root = os.fspath(root)
    if not os.path.exists(root):
        raise ReidsortError(f"{_config_name(root)}: folder not found")
    if not os.path.isdir(root):
        raise ReidsortError(f"{_config_name(root)}: not a folder")
    listing = walk(root)
    candidates: list[tuple[str, int]] = []
    skipped: list[str] = []
    for rel, size, note in zip(listing.paths, listing.sizes, listing.notes):
        if Path(rel).suffix.lower() not in GENERATED_EXTENSIONS:
            continue
        if note is None:
            candidates.append((os.path.join(root, rel), size))
        elif note[0] == INVALID:  # e.g. a broken link to an image; hidden files stay unlisted
            skipped.append(os.path.join(root, rel))
    checks = check_images([p for p, _ in candidates], [s for _, s in candidates],
                          options or ScanOptions(), threads=threads)
    paths = []
    for (path, _), (status, _reason, _h, _w) in zip(candidates, checks):
        (skipped if status == INVALID else paths).append(path)
    if skipped:
        shown = ", ".join(Path(p).name for p in skipped[:LISTED_SKIPS])
        more = ", ..." if len(skipped) > LISTED_SKIPS else ""
        log.warning("%s: skipping %d unreadable generated image(s): %s%s",
                    _config_name(root), len(skipped), shown, more)
    if not paths:
        found = f"none of its {len(skipped)} image files is readable" if skipped else \
            f"no {'/'.join(sorted(e.lstrip('.') for e in GENERATED_EXTENSIONS))} images in it"
        raise ReidsortError(f"{_config_name(root)}: {found}")
    return GeneratedFolder(root=root, paths=sorted(paths), skipped=sorted(skipped))


class GeneratedImageDataset(Dataset):
    """Items ``(image, GENERATED_LABEL, GENERATED_CAMID, index)`` like :class:`ReIDImageDataset`.

    An image that fails to decode at training time (it passed the header check) is replaced
    by another generated one with a warning and remembered in ``bad_files``, so a batch keeps
    its size.
    """

    def __init__(self, paths: Sequence[str],
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if not paths:
            raise ValueError("GeneratedImageDataset needs at least one image")
        self.paths = list(paths)
        self.transform = transform
        self.bad_files: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> np.ndarray | None:
        path = self.paths[index]
        if path in self.bad_files:
            return None
        image = read_image_rgb(path)
        if image is None:
            self.bad_files.add(path)
            warnings.warn(f"skipping unreadable generated image {path}", RuntimeWarning,
                          stacklevel=2)
        return image

    def load(self, index: int) -> torch.Tensor:
        """The transformed image ``index`` (or a stand-in, see the class docstring)."""
        image = self._decode(index)
        if image is None:
            rng = np.random.default_rng(index)
            for other in rng.permutation(len(self.paths))[:MAX_FALLBACK_TRIES]:
                image = self._decode(int(other))
                if image is not None:
                    break
        if image is None:  # nothing decodes: a black image keeps the batch shape
            image = np.zeros((8, 4, 3), dtype=np.uint8)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        return self.transform(tensor)

    def __getitem__(self, index: int):
        return self.load(index), GENERATED_LABEL, GENERATED_CAMID, index


class WithGenerated(Dataset):
    """The training set the PK loader reads: real images ``[0, R)``, generated ``[R, R + G)``.

    Items keep the real dataset's form ``(image, label, camid, index)``; a generated item has
    label :data:`GENERATED_LABEL` and its index in this combined numbering.
    """

    def __init__(self, real: ReIDImageDataset, generated: GeneratedImageDataset) -> None:
        self.real = real
        self.generated = generated

    @property
    def num_real(self) -> int:
        return len(self.real)

    def __len__(self) -> int:
        return len(self.real) + len(self.generated)

    def __getitem__(self, index: int):
        if index < self.num_real:
            return self.real[index]
        image, label, camid, _ = self.generated[index - self.num_real]
        return image, label, camid, index


def generated_per_batch(ratio: float, p: int, k: int) -> int:
    """Generated images in a global P x K batch: ``round(ratio * P * K)``."""
    return round(float(ratio) * p * k)
