"""Training pairs for AFLink from MOT ground truth, and the LightningDataModule serving them.

Tracks: the ground-truth rows a MOT evaluation counts (``consider`` flag set and, where the
file has classes (MOT16+), class 1 = pedestrian; dyhBUPT/StrongSORT ``AFLink/dataset.py``
keeps exactly these), as (frame, x, y) with (x, y) the top-left corner, one track per id with at
least ``min_length`` rows (reference ``model_minLen = 30``).

Per track, per epoch, the reference's four pairs (``LinkData.__getitem__``):

* training: a cut index drawn uniformly in ``[min_length // 3, n - min_length // 3]``; the
  earlier piece ends ``int(N(-5, 3))`` rows before it, the later one starts ``int(N(5, 3))``
  rows after it. Validation: cut at ``n // 2``, no jitter;
* ``(earlier, later)`` -> same (label 1);
* ``(later, earlier)`` -> different (time runs backwards);
* ``(earlier, later shifted in time)`` by +-30..100 frames (validation: +-50) -> different;
* ``(earlier, later shifted in space)``: x and y each by +-100..500 px (validation: +-300) ->
  different.

``identity_negatives`` (our addition, off by default): the reference's negatives are all
synthetic, whereas the wrong links the linker must refuse at inference are two *different*
people who pass its gates. With it, per track, one more pair when one exists: the earlier piece
of this person, and the later piece of another person of the same sequence that starts ``gap``
frames after the cut (``gap`` drawn in the inference window ``[min_gap, max_gap)``) within
``max_distance`` px of where this one was last -> different. A network trained so is much less
sure of itself: its positives rarely pass the reference threshold (p(same) > 0.95), so it
needs a looser ``postprocess.link_max_cost`` (about 0.5); on our MOT17 check neither network
was clearly better (conf/aflink/default.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from reidsort.tracking.aflink import (
    DEFAULT_INPUT_LENGTH,
    DEFAULT_MAX_DISTANCE,
    DEFAULT_MAX_GAP,
    DEFAULT_MIN_GAP,
    PairColumn,
    normalise_pair,
)
from reidsort.tracking.mot_io import read_mot_ground_truth

log = logging.getLogger(__name__)

#: reference ``model_minLen``: shorter ground-truth tracks are not used
DEFAULT_MIN_LENGTH = 30
#: MOT16+ ground-truth class of pedestrians (gt without a class column reads as -1: kept)
PEDESTRIAN_CLASS = 1
NO_CLASS = -1
GT_FILE = Path("gt") / "gt.txt"
SAME, DIFFERENT = 1, 0
#: reference training jitter of the two pieces around the cut: N(mean, std) rows, truncated
CUT_JITTER_EARLIER = (-5.0, 3.0)
CUT_JITTER_LATER = (5.0, 3.0)
#: reference training shifts of the later piece (inclusive ranges, random sign)
TIME_SHIFT_RANGE = (30, 100)
SPACE_SHIFT_RANGE = (100, 500)
#: reference validation shifts (sign alternating with the cut index)
VAL_TIME_SHIFT = 50
VAL_SPACE_SHIFT = 300
#: validation pairs are drawn from a generator seeded with this plus the track's index
VAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class GroundTruthTrack:
    sequence: str
    track_id: int
    rows_fxy: np.ndarray  # (n, 3) frame, x, y sorted by frame


def sequence_dirs(spec: str | Path) -> list[Path]:
    """A sequence folder (``<dir>/gt/gt.txt``) or a folder of them."""
    path = Path(spec).expanduser()
    if (path / GT_FILE).is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / GT_FILE).is_file()) if path.is_dir() else []
    if not found:
        raise FileNotFoundError(
            f"aflink data: {path} is neither a sequence with {GT_FILE} nor "
            "a folder of such sequences"
        )
    return found


def load_tracks(
    sequence_dir: str | Path, min_length: int = DEFAULT_MIN_LENGTH
) -> list[GroundTruthTrack]:
    """The pedestrian ground-truth tracks of one sequence with >= ``min_length`` rows."""
    sequence_dir = Path(sequence_dir)
    gt = read_mot_ground_truth(sequence_dir / GT_FILE)
    keep = gt.consider & np.isin(gt.class_ids, (PEDESTRIAN_CLASS, NO_CLASS))
    frames, ids, tlwh = gt.frame_ids[keep], gt.track_ids[keep], gt.tlwh[keep]
    order = np.lexsort((frames, ids))
    frames, ids, tlwh = frames[order], ids[order], tlwh[order]
    unique, starts, counts = np.unique(ids, return_index=True, return_counts=True)
    fxy = np.column_stack([frames, tlwh[:, 0], tlwh[:, 1]]).astype(np.float64)
    return [
        GroundTruthTrack(sequence_dir.name, int(track_id), fxy[start : start + count])
        for track_id, start, count in zip(unique, starts, counts)
        if count >= min_length
    ]


Pair = tuple[np.ndarray, np.ndarray, int]


def _signed(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.choice((-1, 1)) * rng.integers(low, high, endpoint=True))


def reference_pairs(
    rows_fxy: np.ndarray,
    rng: np.random.Generator,
    *,
    train: bool,
    min_length: int = DEFAULT_MIN_LENGTH,
) -> tuple[int, list[Pair]]:
    """The cut index and the four reference pairs of one track (see the module docstring)."""
    n = len(rows_fxy)
    if train:
        cut = int(rng.integers(min_length // 3, n - min_length // 3, endpoint=True))
        end = cut + int(rng.normal(*CUT_JITTER_EARLIER))
        begin = cut + int(rng.normal(*CUT_JITTER_LATER))
    else:
        cut = end = begin = n // 2
    end, begin = int(np.clip(end, 1, n - 1)), int(np.clip(begin, 1, n - 1))
    earlier, later = rows_fxy[:end], rows_fxy[begin:]
    shifted_time, shifted_space = later.copy(), later.copy()
    if train:
        shifted_time[:, PairColumn.FRAME] += _signed(rng, *TIME_SHIFT_RANGE)
        shifted_space[:, PairColumn.X] += _signed(rng, *SPACE_SHIFT_RANGE)
        shifted_space[:, PairColumn.Y] += _signed(rng, *SPACE_SHIFT_RANGE)
    else:
        sign = (-1) ** cut
        shifted_time[:, PairColumn.FRAME] += sign * VAL_TIME_SHIFT
        shifted_space[:, [PairColumn.X, PairColumn.Y]] += sign * VAL_SPACE_SHIFT
    return end, [
        (earlier, later, SAME),
        (later, earlier, DIFFERENT),
        (earlier, shifted_time, DIFFERENT),
        (earlier, shifted_space, DIFFERENT),
    ]


def identity_negative(
    track: GroundTruthTrack,
    end: int,
    others: Sequence[GroundTruthTrack],
    rng: np.random.Generator,
    *,
    min_gap: int = DEFAULT_MIN_GAP,
    max_gap: int = DEFAULT_MAX_GAP,
    max_distance: float = DEFAULT_MAX_DISTANCE,
) -> Pair | None:
    """This track up to row ``end`` followed by another person's track from ``gap`` frames
    after it, where that person is within ``max_distance`` px then (None if nobody is)."""
    earlier = track.rows_fxy[:end]
    last_frame, last_xy = earlier[-1, PairColumn.FRAME], earlier[-1, 1:]
    start_frame = last_frame + int(rng.integers(min_gap, max_gap))
    options = []
    for other in others:
        if other.track_id == track.track_id:
            continue
        at = np.searchsorted(other.rows_fxy[:, PairColumn.FRAME], start_frame)
        if at >= len(other.rows_fxy) or other.rows_fxy[at, PairColumn.FRAME] != start_frame:
            continue
        if np.linalg.norm(other.rows_fxy[at, 1:] - last_xy) <= max_distance:
            options.append(other.rows_fxy[at:])
    if not options:
        return None
    return earlier, options[int(rng.integers(len(options)))], DIFFERENT


class TrackletPairs(Dataset):
    """One item per ground-truth track: its pairs as (K, 1, T, 3) float32 arrays + (K,) labels.

    Training items draw new cuts and shifts each time (``rng``); validation items are fixed
    (seeded by the item index), so every epoch validates on the same pairs.
    """

    def __init__(
        self,
        tracks: list[GroundTruthTrack],
        *,
        train: bool,
        input_length: int = DEFAULT_INPUT_LENGTH,
        min_length: int = DEFAULT_MIN_LENGTH,
        identity_negatives: bool = False,
        min_gap: int = DEFAULT_MIN_GAP,
        max_gap: int = DEFAULT_MAX_GAP,
        max_distance: float = DEFAULT_MAX_DISTANCE,
        seed: int = 0,
    ) -> None:
        self.tracks, self.train = tracks, train
        self.input_length, self.min_length = int(input_length), int(min_length)
        self.identity_negatives = bool(identity_negatives)
        self.gates = {
            "min_gap": int(min_gap),
            "max_gap": int(max_gap),
            "max_distance": float(max_distance),
        }
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        by_sequence: dict[str, list[GroundTruthTrack]] = {}
        for track in tracks:
            by_sequence.setdefault(track.sequence, []).append(track)
        self.by_sequence = by_sequence

    def __len__(self) -> int:
        return len(self.tracks)

    def pairs(self, index: int) -> list[Pair]:
        track = self.tracks[index]
        rng = self.rng if self.train else np.random.default_rng(self.seed + VAL_SEED_OFFSET + index)
        end, pairs = reference_pairs(
            track.rows_fxy, rng, train=self.train, min_length=self.min_length
        )
        if self.identity_negatives:
            negative = identity_negative(
                track, end, self.by_sequence[track.sequence], rng, **self.gates
            )
            if negative is not None:
                pairs.append(negative)
        return pairs

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = self.pairs(index)
        inputs = [normalise_pair(a, b, self.input_length) for a, b, _ in pairs]
        return (
            np.stack([x[0] for x in inputs])[:, None],
            np.stack([x[1] for x in inputs])[:, None],
            np.array([label for *_, label in pairs], dtype=np.int64),
        )


def collate_pairs(
    items: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate the items' pairs into one batch (items hold 4 or 5 pairs each)."""
    return tuple(
        torch.from_numpy(np.concatenate([item[k] for item in items]))  # type: ignore
        for k in range(3)
    )


def worker_seed(worker_id: int) -> None:
    """A different pair stream in each data-loader worker."""
    info = torch.utils.data.get_worker_info()
    if info is not None:
        dataset = info.dataset
        dataset.rng = np.random.default_rng([dataset.seed, worker_id, torch.initial_seed() % 2**32])


class AFLinkDataModule(L.LightningDataModule):
    """Tracklet pairs from the ground truth of ``train_sequences`` and, held out,
    ``val_sequences`` (each a sequence folder or a folder of sequences)."""

    def __init__(
        self,
        train_sequences: Sequence[str],
        val_sequences: Sequence[str] = (),
        min_length: int = DEFAULT_MIN_LENGTH,
        input_length: int = DEFAULT_INPUT_LENGTH,
        batch_size: int = 16,
        val_batch_size: int = 32,
        num_workers: int = 0,
        identity_negatives: bool = False,
        min_gap: int = DEFAULT_MIN_GAP,
        max_gap: int = DEFAULT_MAX_GAP,
        max_distance: float = DEFAULT_MAX_DISTANCE,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not train_sequences:
            raise ValueError("aflink.data.train_sequences is empty: list MOT sequence folders")
        if int(min_length) < 3 or int(batch_size) < 1:
            raise ValueError(
                f"aflink.data: min_length={min_length} must be >= 3 and "
                f"batch_size={batch_size} >= 1"
            )
        self.train_specs, self.val_specs = list(train_sequences), list(val_sequences or [])
        self.options = {
            "input_length": int(input_length),
            "min_length": int(min_length),
            "identity_negatives": bool(identity_negatives),
            "min_gap": int(min_gap),
            "max_gap": int(max_gap),
            "max_distance": float(max_distance),
            "seed": int(seed or 0),
        }
        self.batch_size, self.val_batch_size = int(batch_size), int(val_batch_size)
        self.num_workers = int(num_workers)
        self.train_set: TrackletPairs | None = None
        self.val_set: TrackletPairs | None = None

    def _tracks(self, specs: list[str]) -> tuple[list[GroundTruthTrack], list[str]]:
        tracks, names = [], []
        for spec in specs:
            for folder in sequence_dirs(spec):
                tracks.extend(load_tracks(folder, self.options["min_length"]))
                names.append(folder.name)
        return tracks, names

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_tracks, train_names = self._tracks(self.train_specs)
        val_tracks, val_names = self._tracks(self.val_specs)
        overlap = sorted(set(train_names) & set(val_names))
        if overlap:
            raise ValueError(f"aflink.data: {overlap} both in train_sequences and val_sequences")
        if not train_tracks:
            raise ValueError(
                f"aflink.data: no ground-truth track of >= "
                f"{self.options['min_length']} rows in {self.train_specs}"
            )
        self.train_set = TrackletPairs(train_tracks, train=True, **self.options)
        self.val_set = (
            TrackletPairs(val_tracks, train=False, **self.options) if val_tracks else None
        )
        self.train_sequence_names, self.val_sequence_names = train_names, val_names
        log.info(
            "AFLink pairs: %d train tracks (%s), %d validation tracks (%s)",
            len(train_tracks),
            ", ".join(train_names),
            len(val_tracks),
            ", ".join(val_names) or "none",
        )

    @property
    def has_validation(self) -> bool:
        return self.val_set is not None

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            collate_fn=collate_pairs,
            drop_last=len(self.train_set) > self.batch_size,
            worker_init_fn=worker_seed,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_pairs,
        )
