"""Training data for joint detection and embedding (FairMOT): sources, dataset, DataModule.

Sources (:class:`JDESource`), each a list of frames with ``class id cx cy w h`` labels
(normalised to the image size, FairMOT's ``labels_with_ids`` rows):

* :meth:`JDESource.from_labels_with_ids`: FairMOT's layout as ``task=prepare`` writes it
  (:mod:`reidsort.data.fairmot`): a root, a list file of image paths relative to it
  (``mot.train``), and for each image the label file found by replacing the ``images`` folder of
  its path with ``labels_with_ids`` and the extension with ``.txt``. A listed image without a
  label file is an error (FairMOT silently trains on it as an empty frame).
* :meth:`JDESource.from_mot_sequence`: a MOTChallenge sequence folder (``gt/gt.txt``,
  ``img1/``) read directly, keeping the rows FairMOT's label generator keeps (consider flag 1,
  pedestrian class; MOT15 files have no class and are kept). Every frame with an image is a
  sample, empty when nobody is annotated. :meth:`JDESource.from_synthetic` renders (once, cached
  under ``data_dir``) the built-in synthetic sequence and reads it the same way, so a fresh
  clone trains with no download.

Identities (:class:`IdentityMap`, FairMOT's MIX): each source's identities (ids >= 0 of its
training frames) are mapped to a dense ``0..n_k-1`` in increasing raw-id order and shifted by
the identities of the sources before it, so identities of different sources never collide;
-1 (a box with no identity) stays -1. ``num_ids`` is the total. (FairMOT counts ``max id + 1``
per source and adds one more, leaving unused classifier rows; dense ids leave none.) A
validation frame's identities go through the training map; identities the training set never
saw become -1 (no identity target: the classifier has no row for them).

Samples (:class:`JDEDataset`): HSV jitter, letterbox to the input ``(H, W)``, random affine and
horizontal flip (:mod:`reidsort.jde.augment`, FairMOT's recipe, all drawn from one
``numpy.random.Generator`` seeded by ``(seed, epoch, index)``: the same sample is the same
whatever the number of workers or ranks, and changes from epoch to epoch), then
:func:`reidsort.jde.targets.build_targets`. ``clip_boxes=True`` is MOT20's rule (FairMOT's
README: for MOT20, uncomment the clipping in ``random_affine``): boxes are clipped to the frame's
edges when read (not to the letterbox padding) and to the input after the affine, before the
targets. Off is FairMOT's default since its Sept. 2020 update: boxes stay amodal, partly outside
the frame (MOT17 annotates people cut by the frame edge and a tracker is scored on the full box);
FairMOT then clamps only the box *centre* into the output map and regresses the full box
(``ltrb``: the distances from that centre to the full box's sides): ``amodal=True``, passed on
to ``build_targets``. With ``amodal=False`` (default) ``build_targets`` clips every box to the
network input before taking its centre and size (a deliberate choice of
:mod:`reidsort.jde.targets`), so with ``clip_boxes`` off the targets differ from on only where a
box reaches into the letterbox padding; :class:`RawSample` keeps the amodal boxes either way.
Boxes are only dropped by the affine step (see :func:`reidsort.jde.augment.box_candidates`) and
when clipping leaves them no area.

An item is ``(image, targets)``: the image a float32 (3, H, W) tensor, RGB / 255 normalised with
the ImageNet mean and std (FairMOT only divides by 255; our backbones are ImageNet-pretrained and
expect the normalisation), the targets a ``JDETargets`` of tensors; :func:`collate_jde` stacks.

Bad input raises one :class:`ReidsortError` naming the file and line: a malformed label line
(not 6 numbers), a non-integer or negative (< -1) id or class, a non-positive size, a box outside
the image beyond :data:`BOUNDS_TOLERANCE` (see ``bounds`` below), a listed image or its label file
missing, a source without frames.

``bounds`` checks normalised boxes: ``"overlap"`` (default) requires the box to overlap the image
(widened by the tolerance): real MOT17 ground truth has people cut by the frame edge whose
centre or size lies beyond [0, 1] (4% of the pedestrian rows of the MOT17 train halves, 16% in
MOT17-05; MOT15's ETH-Pedcross2 has boxes taller than the frame), which ``task=prepare``
writes unclipped as FairMOT does, and labels in pixels instead of fractions fail it. ``"inside"``
additionally requires ``cx, cy, w, h`` each within ``[0, 1]`` up to the tolerance: for datasets
annotated inside the frame (MOT20, CrowdHuman), where anything else is a labelling error.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from reidsort.data.datamodule import world_and_rank
from reidsort.data.fairmot import IMAGES_DIR, LABELS_DIR, LIST_FILENAME
from reidsort.data.image_io import read_image_rgb
from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PIXEL_SCALE
from reidsort.detection.letterbox import LetterboxTransform
from reidsort.jde.augment import (
    AugmentConfig,
    clip_boxes,
    hflip,
    hsv_jitter,
    letterbox_frame,
    normalised_to_xyxy,
    random_affine,
)
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: ``class id cx cy w h``
LABEL_COLUMNS = 6
#: normalised label coordinates may pass the image border by this much (rounding of 6 decimals)
BOUNDS_TOLERANCE = 1e-3
BOUNDS_MODES = ("overlap", "inside")
#: network input height and width must be multiples of this (the backbones' total stride)
INPUT_MULTIPLE = 32
SOURCE_TYPES = ("labels_with_ids", "mot", "synthetic")
GT_FILE = Path("gt") / "gt.txt"
#: MOTChallenge gt class kept by FairMOT's label generator (MOT15 files have none: -1, kept)
PEDESTRIAN_CLASSES = (1,)


# ================================================================================ labels
def check_labels(table: np.ndarray, lines: np.ndarray, where: str, *,
                 tolerance: float = BOUNDS_TOLERANCE, bounds: str = "overlap") -> None:
    """Raise a :class:`ReidsortError` naming ``where:line`` for the first bad row of a
    ``(N, 6)`` ``class id cx cy w h`` table (normalised boxes)."""
    if bounds not in BOUNDS_MODES:
        raise ReidsortError(f"jde data: bounds={bounds!r}, expected one of {BOUNDS_MODES}")
    if not len(table):
        return
    cls, ids, cx, cy, w, h = (table[:, k] for k in range(LABEL_COLUMNS))
    problems = [
        (~np.isfinite(table).all(axis=1), "a value is not finite"),
        ((cls < 0) | (cls != np.round(cls)), "class must be an integer >= 0"),
        ((ids < -1) | (ids != np.round(ids)),
         "id out of range: identities are integers >= 0, or -1 for a box without identity"),
        ((w <= 0) | (h <= 0), "box width and height must be > 0"),
    ]
    low, high = -tolerance, 1.0 + tolerance
    outside = ((cx + w / 2 < low) | (cx - w / 2 > high) | (cy + h / 2 < low) | (cy - h / 2 > high))
    problems.append((outside, ("box lies outside the image (normalised cx cy w h must overlap "
                               f"[0, 1] within {tolerance:g}; pixels instead of fractions?)")))
    if bounds == "inside":
        beyond = ((table[:, 2:] < low) | (table[:, 2:] > high)).any(axis=1)
        problems.append((beyond, (f"normalised cx cy w h must lie in [0, 1] within "
                                  f"{tolerance:g} (bounds='inside')")))
    for bad, message in problems:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            values = " ".join(f"{v:g}" for v in table[row])
            raise ReidsortError(f"{where}:{int(lines[row])}: {message}: '{values}'")


def read_label_file(path: str | os.PathLike, *, tolerance: float = BOUNDS_TOLERANCE,
                    bounds: str = "overlap") -> tuple[np.ndarray, np.ndarray]:
    """A ``labels_with_ids`` file: ``(N, 6)`` float64 rows and their 1-based line numbers
    (blank lines skipped). Missing file or bad rows: :class:`ReidsortError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReidsortError(f"label file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReidsortError(f"{path}: unreadable label file ({error})") from None
    rows, numbers = [], []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != LABEL_COLUMNS:
            raise ReidsortError(f"{path}:{number}: expected {LABEL_COLUMNS} values "
                                f"'class id cx cy w h', found {len(parts)}: {line.strip()!r}")
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            raise ReidsortError(f"{path}:{number}: not a number in {line.strip()!r}") from None
        numbers.append(number)
    table = np.array(rows, dtype=np.float64).reshape(-1, LABEL_COLUMNS)
    lines = np.array(numbers, dtype=np.int64)
    check_labels(table, lines, str(path), tolerance=tolerance, bounds=bounds)
    return table, lines


def label_path_for(image: Path) -> Path | None:
    """FairMOT's rule: the last ``images`` folder of the path becomes ``labels_with_ids``, the
    extension ``.txt``; None when the path has no ``images`` folder."""
    parts = list(image.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == IMAGES_DIR:
            parts[k] = LABELS_DIR
            return Path(*parts).with_suffix(".txt")
    return None


# ================================================================================ sources
@dataclass(frozen=True)
class JDEFrame:
    """One training image and its labels."""

    image: Path
    #: (N, 6) float64 ``class id cx cy w h`` (centre and size divided by the image size)
    labels: np.ndarray
    #: the sequence (video) the frame belongs to: splits never cut through one
    sequence: str
    #: where the labels come from and the line of each row, for error messages
    label_file: Path
    lines: np.ndarray


@dataclass(frozen=True)
class JDESource:
    """Frames of one dataset; its identities form one id space (offset when mixed)."""

    name: str
    frames: tuple[JDEFrame, ...]
    origin: str

    def __post_init__(self) -> None:
        if not self.frames:
            raise ReidsortError(f"{self.origin}: no frames in JDE source {self.name!r}")

    @property
    def sequences(self) -> list[str]:
        return sorted({f.sequence for f in self.frames})

    @property
    def num_boxes(self) -> int:
        return sum(len(f.labels) for f in self.frames)

    def identities(self) -> np.ndarray:
        """Sorted raw identities (ids >= 0) of the frames."""
        ids = [f.labels[:, 1] for f in self.frames if len(f.labels)]
        values = np.concatenate(ids) if ids else np.zeros(0)
        return np.unique(values[values >= 0]).astype(np.int64)

    def subset(self, sequences: Iterable[str]) -> JDESource | None:
        """The frames of these sequences (None when it has none of them)."""
        keep = set(sequences)
        frames = tuple(f for f in self.frames if f.sequence in keep)
        return dataclasses.replace(self, frames=frames) if frames else None

    # ---------------------------------------------------------------- readers
    @classmethod
    def from_labels_with_ids(cls, root: str | os.PathLike, list_file: str = LIST_FILENAME, *,
                             name: str | None = None, tolerance: float = BOUNDS_TOLERANCE,
                             bounds: str = "overlap") -> JDESource:
        """FairMOT's layout: ``root/<list_file>`` lists image paths relative to ``root``."""
        root = Path(root)
        listing = Path(list_file) if Path(list_file).is_absolute() else root / list_file
        if not listing.is_file():
            raise ReidsortError(f"JDE image list not found: {listing} (task=prepare writes "
                                f"{LIST_FILENAME} with fairmot_labels=true)")
        frames = []
        for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
            entry = line.strip()
            if not entry:
                continue
            image = root / entry
            labels = label_path_for(image)
            if labels is None:
                raise ReidsortError(f"{listing}:{number}: {entry}: no '{IMAGES_DIR}' folder in "
                                    f"the path to replace by '{LABELS_DIR}'")
            if not image.is_file():
                raise ReidsortError(f"{listing}:{number}: image not found: {image}")
            if not labels.is_file():
                raise ReidsortError(f"{listing}:{number}: label file not found for {image}: "
                                    f"{labels}")
            table, lines = read_label_file(labels, tolerance=tolerance, bounds=bounds)
            folder = image.parent.parent if image.parent.name == "img1" else image.parent
            try:
                sequence = folder.relative_to(root).as_posix()
            except ValueError:
                sequence = folder.as_posix()
            if sequence.startswith(f"{IMAGES_DIR}/"):
                sequence = sequence[len(IMAGES_DIR) + 1:]
            frames.append(JDEFrame(image, table, sequence, labels, lines))
        return cls(name or root.resolve().name, tuple(frames), str(listing))

    @classmethod
    def from_mot_sequence(cls, path: str | os.PathLike,
                          classes: Sequence[int] = PEDESTRIAN_CLASSES, *,
                          name: str | None = None, tolerance: float = BOUNDS_TOLERANCE,
                          bounds: str = "overlap") -> JDESource:
        """A MOTChallenge sequence folder with ``gt/gt.txt``, as FairMOT's label generator reads
        it (rows with consider flag 1 and a pedestrian class)."""
        from reidsort.data.prepare import load_sequences, pedestrian_mask

        try:
            (seq,) = load_sequences([path])
        except (ValueError, FileNotFoundError) as error:
            raise ReidsortError(f"JDE MOT source {path}: {error}") from None
        gt, info = seq.gt, seq.info
        rows = np.flatnonzero(pedestrian_mask(gt, classes))
        tlwh = gt.tlwh[rows]
        table = np.column_stack([
            np.zeros(len(rows)), gt.track_ids[rows].astype(np.float64),
            (tlwh[:, 0] + tlwh[:, 2] / 2) / info.width, (tlwh[:, 1] + tlwh[:, 3] / 2) / info.height,
            tlwh[:, 2] / info.width, tlwh[:, 3] / info.height,
        ]).reshape(-1, LABEL_COLUMNS)
        lines = rows + 1  # mot_io's row numbering (the table's non-blank lines)
        gt_file = seq.root / GT_FILE
        check_labels(table, lines, str(gt_file), tolerance=tolerance, bounds=bounds)
        frame_ids = gt.frame_ids[rows]
        last = max(info.length, int(frame_ids.max()) if len(frame_ids) else 0)
        order = np.argsort(frame_ids, kind="stable")
        starts = np.searchsorted(frame_ids[order], np.arange(1, last + 2))
        frames = []
        for frame in range(1, last + 1):
            image = seq.frame_path(frame)
            if not image.is_file():
                continue
            picked = order[starts[frame - 1]:starts[frame]]
            frames.append(JDEFrame(image, table[picked], seq.root.name, gt_file, lines[picked]))
        if not frames:
            raise ReidsortError(f"{seq.root}: no frame images in {seq.root / info.image_dir} "
                                "(a JDE source needs images, not only gt.txt)")
        return cls(name or seq.root.name, tuple(frames), str(seq.root))

    @classmethod
    def from_synthetic(cls, data_dir: str | os.PathLike, *, source_name: str | None = None,
                       tolerance: float = BOUNDS_TOLERANCE, **params: Any) -> JDESource:
        """The built-in synthetic MOT sequence for ``params`` (rendered once, cached under
        ``data_dir/synthetic_mot/``; ``name`` is the renderer's sequence name, ``source_name``
        the source's, by default the cache folder's name, unique per parameter set)."""
        from reidsort.data.synthetic.mot import ensure_synthetic_mot

        try:
            root = ensure_synthetic_mot(data_dir, **params)
        except ValueError as error:
            raise ReidsortError(f"JDE synthetic source: {error}") from None
        return cls.from_mot_sequence(root, name=source_name, tolerance=tolerance)


# ================================================================================ identities
@dataclass(frozen=True)
class IdentityMap:
    """MIX: per source, sorted raw identities -> ``offset + rank``; unknown -> -1."""

    names: tuple[str, ...]
    raw_ids: tuple[np.ndarray, ...]
    offsets: tuple[int, ...]

    @classmethod
    def from_sources(cls, sources: Sequence[JDESource]) -> IdentityMap:
        raw = tuple(s.identities() for s in sources)
        offsets = tuple(int(v) for v in np.cumsum([0] + [len(r) for r in raw[:-1]]))
        return cls(tuple(s.name for s in sources), raw, offsets)

    @property
    def num_ids(self) -> int:
        return int(sum(len(r) for r in self.raw_ids))

    def counts(self) -> dict[str, int]:
        return {n: len(r) for n, r in zip(self.names, self.raw_ids)}

    def apply(self, source: str, ids: np.ndarray) -> np.ndarray:
        """Global identities for raw ``ids`` of ``source`` (-1 and unknown ids -> -1)."""
        ids = np.asarray(ids).astype(np.int64)
        out = np.full(ids.shape, -1, dtype=np.int64)
        if source not in self.names:
            return out
        k = self.names.index(source)
        table = self.raw_ids[k]
        if not len(table):
            return out
        pos = np.searchsorted(table, ids).clip(0, len(table) - 1)
        known = (ids >= 0) & (table[pos] == ids)
        out[known] = pos[known] + self.offsets[k]
        return out


# ================================================================================ dataset
@dataclass
class RawSample:
    """A sample before targets: the input image and its boxes (input pixels)."""

    image: np.ndarray  # float32 (H, W, 3) RGB, 0..255
    boxes: np.ndarray  # (N, 4) float64 xyxy
    ids: np.ndarray  # (N,) int64 global identities, -1 none
    classes: np.ndarray  # (N,) int64
    transform: LetterboxTransform  # original frame -> letterboxed input (before affine/flip)
    path: Path
    flipped: bool


def _input_size(value: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ReidsortError(f"jde input_size={value!r}: expected [height, width]") from None
    if height <= 0 or width <= 0 or height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ReidsortError(f"jde input_size={value!r}: height and width must be positive "
                            f"multiples of {INPUT_MULTIPLE}")
    return height, width


def _targets_to_tensors(targets: Any) -> Any:
    """The same targets object with every NumPy array field as a tensor."""
    out = copy.copy(targets)
    for spec in dataclasses.fields(targets):
        value = getattr(targets, spec.name)
        if isinstance(value, np.ndarray):
            object.__setattr__(out, spec.name, torch.from_numpy(np.ascontiguousarray(value)))
    return out


class JDEDataset(Dataset):
    """Frames of one or more sources with MIX identity offsets, augmented, as network inputs and
    FairMOT targets (see the module docstring)."""

    def __init__(self, sources: Sequence[JDESource], input_size: Sequence[int] = (608, 1088), *,
                 augment: bool | dict[str, Any] | AugmentConfig | None = False,
                 clip_boxes: bool = False, num_classes: int = 1, stride: int = 4,
                 max_objects: int = 500, size_mode: str = "wh", seed: int = 0,
                 identities: IdentityMap | None = None, amodal: bool = False) -> None:
        if not sources:
            raise ReidsortError("jde data: no sources given")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ReidsortError(f"jde data: source names must be unique (identity spaces are per "
                                f"source): {names}")
        self.sources = list(sources)
        self.input_size = _input_size(input_size)
        self.augment = AugmentConfig.from_config(augment)
        self.clip_boxes = bool(clip_boxes)
        self.num_classes, self.stride = int(num_classes), int(stride)
        self.max_objects, self.size_mode = int(max_objects), str(size_mode)
        self.amodal = bool(amodal)  # build_targets(amodal=...): FairMOT's post-2020 targets
        if int(seed) < 0:
            raise ReidsortError(f"jde data: seed must be >= 0, got {seed}")
        self.seed, self.epoch = int(seed), 0
        self.identities = identities or IdentityMap.from_sources(self.sources)
        self.frames: list[JDEFrame] = []
        self.ids: list[np.ndarray] = []
        for source in self.sources:
            for frame in source.frames:
                classes = frame.labels[:, 0]
                bad = classes >= self.num_classes
                if bad.any():
                    row = int(np.flatnonzero(bad)[0])
                    raise ReidsortError(f"{frame.label_file}:{int(frame.lines[row])}: class "
                                        f"{classes[row]:g} but num_classes={self.num_classes}")
                self.frames.append(frame)
                self.ids.append(self.identities.apply(source.name, frame.labels[:, 1]))

    @property
    def num_ids(self) -> int:
        """Identities of the id classifier (all sources of the identity map)."""
        return self.identities.num_ids

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation of the next epoch (called by the DataModule's sampler)."""
        self.epoch = int(epoch)

    def generator(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def raw_sample(self, index: int) -> RawSample:
        """Read, augment and letterbox frame ``index`` (boxes in input pixels, no targets)."""
        frame = self.frames[index]
        image = read_image_rgb(frame.image)
        if image is None:
            raise ReidsortError(f"{frame.image}: unreadable image")
        height, width = image.shape[:2]
        boxes = normalised_to_xyxy(frame.labels[:, 2:], width, height)
        ids, classes = self.ids[index], frame.labels[:, 0].astype(np.int64)
        if self.clip_boxes:  # MOT20's rule: boxes end at the frame's edges, not the padding's
            boxes, ids, classes = _clipped(boxes, (height, width), ids, classes)
        config, rng = self.augment, self.generator(index)
        flipped = False
        if config.enabled and config.hsv_fraction > 0:
            image = hsv_jitter(image, rng, config.hsv_fraction)
        image, boxes, transform = letterbox_frame(image, boxes, self.input_size)
        if config.enabled and config.affine:
            image, boxes, keep = random_affine(image, boxes, rng, config)
            ids, classes = ids[keep], classes[keep]
        if config.enabled and rng.random() < config.flip:
            image, boxes = hflip(image, boxes)
            flipped = True
        if self.clip_boxes:  # and the affine may have pushed them out of the input
            boxes, ids, classes = _clipped(boxes, self.input_size, ids, classes)
        return RawSample(image, boxes, ids, classes, transform, frame.image, flipped)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        from reidsort.jde.targets import build_targets

        sample = self.raw_sample(index)
        targets = build_targets(
            sample.boxes.astype(np.float32), sample.ids, self.input_size, classes=sample.classes,
            num_classes=self.num_classes, stride=self.stride, max_objects=self.max_objects,
            size_mode=self.size_mode, amodal=self.amodal)
        return image_tensor(sample.image), _targets_to_tensors(targets)


def _clipped(boxes: np.ndarray, size_hw: tuple[int, int], ids: np.ndarray, classes: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = clip_boxes(boxes, size_hw)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep], ids[keep], classes[keep]


_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32) * PIXEL_SCALE
_STD = np.array(IMAGENET_STD, dtype=np.float32) * PIXEL_SCALE


def image_tensor(image_rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) RGB 0..255 -> (3, H, W) float32, /255 then ImageNet mean/std (FairMOT: /255
    only; the ImageNet-pretrained backbones expect the normalisation)."""
    normalised = (np.asarray(image_rgb, dtype=np.float32) - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))


def collate_jde(batch: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any]:
    """Stack images to (B, 3, H, W) and every target field to (B, ...)."""
    images = torch.stack([item[0] for item in batch])
    first = batch[0][1]
    targets = copy.copy(first)
    for spec in dataclasses.fields(first):
        values = [getattr(item[1], spec.name) for item in batch]
        if isinstance(values[0], torch.Tensor):
            object.__setattr__(targets, spec.name, torch.stack(values))
    return images, targets


# ================================================================================ DataModule
class EpochShuffleSampler(DistributedSampler):
    """A seeded shuffle, one shard per rank (a ``DistributedSampler``, so Lightning keeps it
    under DDP), that also hands the epoch to the dataset: its augmentation follows the epoch.
    (Lightning's own injected ``DistributedSampler`` would shuffle but leave the dataset at
    epoch 0, i.e. the same augmentation every epoch.)"""

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)


def _worker_init(worker_id: int) -> None:
    cv2.setNumThreads(0)  # one OpenCV thread per loader worker: workers are the parallelism


def _spec_dict(spec: Any) -> dict[str, Any]:
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if (path / GT_FILE).is_file() or (path.is_dir() and any(
                (p / GT_FILE).is_file() for p in path.iterdir())):
            return {"type": "mot", "path": str(path)}
        return {"type": "labels_with_ids", "root": str(path)}
    if isinstance(spec, Mapping) or hasattr(spec, "keys"):
        return {str(k): spec[k] for k in spec}
    raise ReidsortError(f"jde data: a source is a path or a mapping with 'type', got {spec!r}")


def _mot_folders(path: Path) -> list[Path]:
    if (path / GT_FILE).is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / GT_FILE).is_file()) if path.is_dir() else []
    if not found:
        raise ReidsortError(f"jde data: {path} is neither a MOT sequence with {GT_FILE} nor a "
                            "folder of such sequences")
    return found


def load_sources(specs: Sequence[Any], *, data_dir: str | os.PathLike,
                 tolerance: float = BOUNDS_TOLERANCE, bounds: str = "overlap"
                 ) -> list[JDESource]:
    """Sources from config entries: a path (a MOT sequence, a folder of them, or a
    ``labels_with_ids`` root) or a mapping ``{type: labels_with_ids, root, list?, name?}``,
    ``{type: mot, path, classes?}`` (a folder of sequences gives one source per sequence: MOT
    track ids restart in every sequence) or ``{type: synthetic, name?, <renderer params>}``."""
    sources: list[JDESource] = []
    for raw in specs:
        spec = _spec_dict(raw)
        kind = spec.pop("type", None)
        options = {"tolerance": float(spec.pop("tolerance", tolerance))}
        if kind == "labels_with_ids":
            sources.append(JDESource.from_labels_with_ids(
                spec.pop("root"), str(spec.pop("list", LIST_FILENAME)), name=spec.pop("name", None),
                bounds=str(spec.pop("bounds", bounds)), **options))
        elif kind == "mot":
            classes = [int(c) for c in spec.pop("classes", PEDESTRIAN_CLASSES)]
            source_bounds = str(spec.pop("bounds", bounds))
            for folder in _mot_folders(Path(spec.pop("path"))):
                sources.append(JDESource.from_mot_sequence(folder, classes, bounds=source_bounds,
                                                           **options))
        elif kind == "synthetic":
            source_name = spec.pop("source_name", None)
            sources.append(JDESource.from_synthetic(data_dir, source_name=source_name, **options,
                                                    **_plain(spec)))
            spec = {}
        else:
            raise ReidsortError(f"jde data: source type {kind!r}, expected one of {SOURCE_TYPES}")
        if spec:
            raise ReidsortError(f"jde data: unknown keys {sorted(spec)} in {kind} source {raw!r}")
    return sources


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if hasattr(v, "__iter__") and not isinstance(v, str) else v)
            for k, v in mapping.items()}


def split_by_sequence(sources: Sequence[JDESource], val_sequences: Sequence[str]
                      ) -> tuple[list[JDESource], list[JDESource]]:
    """Move the named sequences (a sequence's key, its last path part, or a whole source's
    name) to validation; every other frame stays in training."""
    wanted = [str(v) for v in val_sequences]
    used: set[str] = set()
    train, val = [], []
    for source in sources:
        held = set()
        for seq in source.sequences:
            names = {seq, seq.rsplit("/", 1)[-1], source.name}
            hit = names.intersection(wanted)
            if hit:
                held.add(seq)
                used |= hit
        if kept := source.subset(set(source.sequences) - held):
            train.append(kept)
        if held_out := source.subset(held):
            val.append(held_out)
    missing = [v for v in wanted if v not in used]
    if missing:
        known = sorted({s for src in sources for s in src.sequences})
        raise ReidsortError(f"jde data: val_sequences {missing} match no sequence "
                            f"(sequences: {known})")
    if not train:
        raise ReidsortError(f"jde data: val_sequences {wanted} leave no training frames")
    return train, val


class JDEDataModule(L.LightningDataModule):
    """FairMOT training data: ``sources`` mixed with identity offsets, split by sequence.

    ``val_sequences`` moves whole sequences of the sources to validation, ``val_sources`` adds
    sources used for validation only; a frame is never in both (checked on the image files).
    Training batches are augmented and shuffled by :class:`EpochShuffleSampler` (seeded,
    sharded per rank under DDP); validation is letterbox-only, in order (Lightning shards it).
    """

    def __init__(self, sources: Sequence[Any], val_sequences: Sequence[str] = (),
                 val_sources: Sequence[Any] = (), input_size: Sequence[int] = (608, 1088),
                 batch_size: int = 12, val_batch_size: int | None = None, num_workers: int = 4,
                 pin_memory: bool = False, seed: int = 0,
                 augment: bool | dict[str, Any] | None = True, clip_boxes: bool = False,
                 num_classes: int = 1, stride: int = 4, max_objects: int = 500,
                 size_mode: str = "wh", bounds: str = "overlap",
                 tolerance: float = BOUNDS_TOLERANCE, data_dir: str = "data",
                 drop_last: bool = True, amodal: bool = False) -> None:
        super().__init__()
        if not sources:
            raise ReidsortError("jde data.sources is empty: list labels_with_ids roots, MOT "
                                "sequences or {type: synthetic}")
        if int(batch_size) < 1 or int(num_workers) < 0:
            raise ReidsortError(f"jde data: batch_size={batch_size} must be >= 1 and "
                                f"num_workers={num_workers} >= 0")
        self.source_specs, self.val_source_specs = list(sources), list(val_sources or [])
        self.val_sequences = [str(v) for v in (val_sequences or [])]
        self.input_size = _input_size(input_size)
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        self.seed = int(seed or 0)
        self.augment = AugmentConfig.from_config(augment)
        self.dataset_options = {"input_size": self.input_size, "clip_boxes": bool(clip_boxes),
                                "num_classes": int(num_classes), "stride": int(stride),
                                "max_objects": int(max_objects), "size_mode": str(size_mode),
                                "seed": self.seed, "amodal": bool(amodal)}
        self.load_options = {"bounds": str(bounds), "tolerance": float(tolerance),
                             "data_dir": str(data_dir)}
        self.drop_last = bool(drop_last)
        self.train_set: JDEDataset | None = None
        self.val_set: JDEDataset | None = None

    def prepare_data(self) -> None:
        """Render the synthetic sources once (rank 0; the others find the cache in setup)."""
        from reidsort.data.synthetic.mot import ensure_synthetic_mot

        for raw in [*self.source_specs, *self.val_source_specs]:
            spec = _spec_dict(raw)
            if spec.get("type") == "synthetic":
                params = {k: v for k, v in spec.items()
                          if k not in ("type", "source_name", "tolerance")}
                try:
                    ensure_synthetic_mot(self.load_options["data_dir"], **_plain(params))
                except ValueError as error:
                    raise ReidsortError(f"JDE synthetic source: {error}") from None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        sources = load_sources(self.source_specs, **self.load_options)
        train, val = split_by_sequence(sources, self.val_sequences)
        val += load_sources(self.val_source_specs, **self.load_options)
        train_images = {f.image.resolve() for s in train for f in s.frames}
        for source in val:
            for frame in source.frames:
                if frame.image.resolve() in train_images:
                    raise ReidsortError(f"jde data: {frame.image} is both a training and a "
                                        f"validation frame (source {source.name!r})")
        self.train_set = JDEDataset(train, augment=self.augment, **self.dataset_options)
        if val:
            names = [s.name for s in val]
            if len(set(names)) != len(names):
                raise ReidsortError(f"jde data: validation source names must be unique: {names}")
            self.val_set = JDEDataset(val, augment=False, identities=self.train_set.identities,
                                      **self.dataset_options)
        log.info("JDE data: %s", self.summary())

    @property
    def num_ids(self) -> int:
        if self.train_set is None:
            self.setup()
        assert self.train_set is not None
        return self.train_set.num_ids

    @property
    def has_validation(self) -> bool:
        return self.val_set is not None

    def summary(self) -> dict[str, Any]:
        assert self.train_set is not None
        identities = self.train_set.identities
        return {
            "train_frames": len(self.train_set),
            "train_boxes": sum(s.num_boxes for s in self.train_set.sources),
            "train_sequences": [s for src in self.train_set.sources for s in src.sequences],
            "identities": identities.num_ids,
            "identity_offsets": dict(zip(identities.names, identities.offsets)),
            "val_frames": len(self.val_set) if self.val_set else 0,
            "val_sequences": ([s for src in self.val_set.sources for s in src.sequences]
                              if self.val_set else []),
        }

    def _distributed(self) -> tuple[int, int]:
        return world_and_rank(self.trainer)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        world, rank = self._distributed()
        sampler = EpochShuffleSampler(self.train_set, num_replicas=world, rank=rank,
                                      shuffle=True, seed=self.seed)
        per_rank = len(sampler)
        # persistent workers would keep the dataset copy of the first epoch (its epoch, 0)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=collate_jde,
                          pin_memory=self.pin_memory,
                          drop_last=self.drop_last and per_rank > self.batch_size,
                          worker_init_fn=_worker_init, persistent_workers=False)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.val_batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_jde,
                          pin_memory=self.pin_memory, worker_init_fn=_worker_init)
