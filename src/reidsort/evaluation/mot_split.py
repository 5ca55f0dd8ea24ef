"""Frame splits of a sequence: the whole sequence, or the "half" splits of MOT17-style work.

The half splits are the ones CenterTrack introduced and ByteTrack, FairMOT, OC-SORT and
StrongSORT reuse (``convert_mot17_to_coco.py``): for a sequence of ``n`` frames,

* ``train_half`` keeps frames ``1 .. n//2 + 1``;
* ``val_half`` keeps frames ``n//2 + 2 .. n`` and renumbers them from 1 (frame ``f`` becomes
  ``f - (n//2 + 1)``), exactly as those scripts write ``gt_val_half.txt``.

Ground truth and tracker results are cut by the same rule, so a result file produced on the
whole sequence is scored on the second half only. A result file produced by running the tracker
on the val half alone (numbered from 1, like ByteTrack's) is taken as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidsort.utils.errors import ReidsortError

FULL = "full"
TRAIN_HALF = "train_half"
VAL_HALF = "val_half"
SPLITS: tuple[str, ...] = (FULL, TRAIN_HALF, VAL_HALF)

#: Result files numbered like the whole sequence (cut like the ground truth).
SEQUENCE_NUMBERING = "sequence"
#: Result files produced on the split alone, numbered from 1 within it (taken as they are).
SPLIT_NUMBERING = "split"
RESULT_NUMBERINGS: tuple[str, ...] = (SEQUENCE_NUMBERING, SPLIT_NUMBERING)


@dataclass(frozen=True)
class FrameRange:
    """Frames ``first .. last`` (1-based, inclusive, whole-sequence numbering) of a split."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def offset(self) -> int:
        """Subtracted from whole-sequence frame numbers to number the split from 1."""
        return self.first - 1


def split_frame_range(split: str, num_frames: int, sequence: str = "") -> FrameRange:
    """The frames that ``split`` keeps of a sequence of ``num_frames`` frames."""
    if split not in SPLITS:
        raise ReidsortError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == FULL:
        return FrameRange(1, num_frames)
    middle = num_frames // 2
    frame_range = FrameRange(1, middle + 1) if split == TRAIN_HALF else FrameRange(middle + 2,
                                                                                 num_frames)
    if frame_range.length < 1:
        name = f"sequence {sequence!r}" if sequence else "the sequence"
        raise ReidsortError(f"{name} has {num_frames} frames: too short for split={split}")
    return frame_range


def cut_rows(frame_ids: np.ndarray, frame_range: FrameRange) -> tuple[np.ndarray, np.ndarray]:
    """Rows inside ``frame_range`` (boolean mask) and their frame numbers within the split."""
    frame_ids = np.asarray(frame_ids)
    keep = (frame_ids >= frame_range.first) & (frame_ids <= frame_range.last)
    return keep, frame_ids[keep] - frame_range.offset
