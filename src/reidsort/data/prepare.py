"""Re-ID data from tracking data: crops of MOTChallenge ground truth in the Market-1501 layout.

Every identity of every sequence is cropped every ``frame_step``-th frame, skipping boxes that are
ignored (gt flag 0), not pedestrians, too occluded (visibility), too small or mostly outside the
image. Identities are split identity-disjointly: training identities go to
``bounding_box_train``; each test identity's crops are cut in time into an early and a late
half, and the earliest and the latest crop are queries, the rest the gallery
(``queries_per_half > 1`` adds queries spread evenly over each half).

Camera ids: the camera of a crop is its sequence's index (1-based, in the order given). The
late half of a test identity gets camera ``index + number of sequences``: MOTChallenge
sequences are single cameras with their own people, and the Market-1501 protocol ignores
same-camera matches, so without a second "camera" no query would have a valid match. The time
gap between the halves plays the role of the camera change (each query's nearest valid match
is half a track away).

Names: ``<pid:04d>_c<cam>s1_<frame:06d>_00.jpg``; pids are 1.. over all sequences' pedestrian
tracks, sorted by (sequence, track id), and are the same ids as in the FairMOT labels
(:mod:`reidsort.data.fairmot`). The output is byte-identical for the same inputs and options.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reidsort.data.staging import staged_dir
from reidsort.tracking.mot_io import (
    MotGroundTruth,
    SequenceInfo,
    read_mot_ground_truth,
    read_seqinfo,
)
from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

TRAIN_DIR, QUERY_DIR, GALLERY_DIR = "bounding_box_train", "query", "bounding_box_test"
META_FILENAME = "prepare_meta.json"
#: MOTChallenge class id of pedestrians (MOT16 and later); MOT15 has no class column and
#: mot_io reports -1 there, which is kept (its ground truth holds pedestrians only)
PEDESTRIAN_CLASS = 1
NO_CLASS = -1
#: a test identity needs its queries + one gallery crop in each time half
MIN_GALLERY_PER_HALF = 1
MAX_PID = 9999  # four-digit Market-1501 pids
#: why a ground-truth box gave no crop (counted in prepare_meta.json)
SKIP_REASONS = ("ignored_or_not_pedestrian", "between_frame_steps", "low_visibility",
                "mostly_outside_image", "too_small", "identity_with_too_few_crops")
FRAME_DIGITS = 6


@dataclass(frozen=True)
class PrepareOptions:
    #: crop every n-th frame (adjacent frames are near-duplicates)
    frame_step: int = 5
    #: skip boxes less visible than this (MOT16+ gt visibility; MOT15 has none: 1.0)
    min_visibility: float = 0.25
    #: skip boxes smaller than this after clipping to the image (pixels)
    min_height: int = 50
    min_width: int = 15
    #: skip boxes with less than this fraction of their area inside the image
    min_inside: float = 0.75
    #: gt classes to keep (1 = pedestrian); -1 (no class column) is always kept
    classes: tuple[int, ...] = (PEDESTRIAN_CLASS,)
    #: identities held out for query/gallery (fraction or count)
    test_identities: float = 0.5
    #: query crops per test identity and time half, spread evenly over the half from its far end
    #: (1: the earliest and the latest crop of the track)
    queries_per_half: int = 1
    #: identities with fewer crops are left out
    min_images: int = 2
    seed: int = 0
    jpeg_quality: int = 95

    def validate(self) -> None:
        if self.frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {self.frame_step}")
        if not 0.0 <= self.min_visibility <= 1.0 or not 0.0 <= self.min_inside <= 1.0:
            raise ValueError("min_visibility and min_inside must be in [0, 1]")
        if self.min_height < 1 or self.min_width < 1 or self.min_images < 1:
            raise ValueError("min_height, min_width and min_images must be >= 1")
        if self.queries_per_half < 1:
            raise ValueError(f"queries_per_half must be >= 1, got {self.queries_per_half}")
        if self.test_identities <= 0:
            raise ValueError(f"test_identities must be > 0, got {self.test_identities}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


@dataclass(frozen=True)
class MotSequence:
    name: str
    root: Path
    camera: int
    info: SequenceInfo
    gt: MotGroundTruth

    def frame_path(self, frame: int) -> Path:
        return self.root / self.info.image_dir / f"{frame:0{FRAME_DIGITS}d}{self.info.image_ext}"


@dataclass(frozen=True)
class Crop:
    pid: int
    sequence: int  # index into the sequence list
    frame: int
    xyxy: tuple[int, int, int, int]
    split: str = TRAIN_DIR
    camera: int = 0

    @property
    def filename(self) -> str:
        return f"{self.pid:04d}_c{self.camera}s1_{self.frame:0{FRAME_DIGITS}d}_00.jpg"


def _image_info(root: Path) -> SequenceInfo:
    """``seqinfo.ini`` when present, else ``img1/*.jpg`` measured from its first frame."""
    if (root / "seqinfo.ini").is_file():
        return read_seqinfo(root)
    frames = sorted((root / "img1").glob("*.jpg"))
    if not frames:
        raise FileNotFoundError(f"{root}: neither seqinfo.ini nor img1/*.jpg found")
    first = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
    if first is None:
        raise ValueError(f"{frames[0]}: unreadable frame")
    return SequenceInfo(root.name, "img1", 0.0, len(frames), first.shape[1], first.shape[0],
                        ".jpg")


def load_sequences(paths: Sequence[str | os.PathLike]) -> list[MotSequence]:
    """Read ``seqinfo.ini`` and ``gt/gt.txt`` of each sequence folder; camera = 1-based index."""
    if not paths:
        raise ValueError("no sequences given (task.sequences=[<MOT sequence folder>, ...])")
    sequences = []
    for index, path in enumerate(paths, 1):
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"MOT sequence folder not found: {root}")
        info = _image_info(root)
        sequences.append(MotSequence(root.name, root, index, info,
                                     read_mot_ground_truth(root / "gt" / "gt.txt")))
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError(f"sequence names must be unique: {names}")
    return sequences


def pedestrian_mask(gt: MotGroundTruth, classes: Sequence[int]) -> np.ndarray:
    """Rows that count as people: not flagged ignore, and of a kept class (or no class)."""
    wanted = np.isin(gt.class_ids, list(classes)) | (gt.class_ids == NO_CLASS)
    return gt.consider & wanted


def assign_pids(sequences: Sequence[MotSequence], classes: Sequence[int]
                ) -> dict[tuple[int, int], int]:
    """Global pids 1.. for the pedestrian tracks, ordered by (sequence, track id)."""
    keys = []
    for s_index, seq in enumerate(sequences):
        mask = pedestrian_mask(seq.gt, classes)
        keys += [(s_index, int(t)) for t in np.unique(seq.gt.track_ids[mask])]
    if len(keys) > MAX_PID:
        raise ValueError(f"{len(keys)} identities exceed the {MAX_PID} of Market-1501 names")
    return {key: pid for pid, key in enumerate(keys, 1)}


def select_crops(sequences: Sequence[MotSequence], pids: dict[tuple[int, int], int],
                 options: PrepareOptions) -> tuple[dict[int, list[Crop]], Counter]:
    """Apply the frame step, visibility, inside and size thresholds; crops grouped by pid."""
    by_pid: dict[int, list[Crop]] = defaultdict(list)
    skipped: Counter = Counter(dict.fromkeys(SKIP_REASONS, 0))
    for s_index, seq in enumerate(sequences):
        gt, width, height = seq.gt, seq.info.width, seq.info.height
        people = pedestrian_mask(gt, options.classes)
        skipped["ignored_or_not_pedestrian"] += int((~people).sum())
        on_step = (gt.frame_ids - 1) % options.frame_step == 0
        skipped["between_frame_steps"] += int((people & ~on_step).sum())
        visibility = np.where(gt.visibility < 0, 1.0, gt.visibility)  # -1 = not annotated
        visible = visibility >= options.min_visibility
        skipped["low_visibility"] += int((people & on_step & ~visible).sum())
        x1, y1 = gt.tlwh[:, 0], gt.tlwh[:, 1]
        x2, y2 = x1 + gt.tlwh[:, 2], y1 + gt.tlwh[:, 3]
        cx1, cy1 = np.clip(x1, 0, width), np.clip(y1, 0, height)
        cx2, cy2 = np.clip(x2, 0, width), np.clip(y2, 0, height)
        area = np.maximum(gt.tlwh[:, 2], 0) * np.maximum(gt.tlwh[:, 3], 0)
        inside = np.where(area > 0, (cx2 - cx1) * (cy2 - cy1) / np.maximum(area, 1e-9), 0.0)
        enough_inside = inside >= options.min_inside
        skipped["mostly_outside_image"] += int((people & on_step & visible & ~enough_inside).sum())
        ix1, iy1 = np.floor(cx1).astype(int), np.floor(cy1).astype(int)
        ix2, iy2 = np.ceil(cx2).astype(int), np.ceil(cy2).astype(int)
        big = ((iy2 - iy1) >= options.min_height) & ((ix2 - ix1) >= options.min_width)
        keep = people & on_step & visible & enough_inside
        skipped["too_small"] += int((keep & ~big).sum())
        for row in np.flatnonzero(keep & big):
            pid = pids[(s_index, int(gt.track_ids[row]))]
            by_pid[pid].append(Crop(pid, s_index, int(gt.frame_ids[row]),
                                    (int(ix1[row]), int(iy1[row]), int(ix2[row]), int(iy2[row]))))
    for pid, crops in list(by_pid.items()):
        if len(crops) < options.min_images:
            skipped["identity_with_too_few_crops"] += len(crops)
            del by_pid[pid]
        else:
            crops.sort(key=lambda c: c.frame)
    return dict(sorted(by_pid.items())), skipped


def split_crops(by_pid: dict[int, list[Crop]], num_sequences: int,
                options: PrepareOptions) -> list[Crop]:
    """Identity-disjoint train / query / gallery with cameras assigned (module docstring)."""
    pids = sorted(by_pid)
    queries = options.queries_per_half
    min_test_crops = 2 * (queries + MIN_GALLERY_PER_HALF)
    eligible = [p for p in pids if len(by_pid[p]) >= min_test_crops]
    fraction = options.test_identities
    wanted = int(round(fraction * len(pids))) if fraction < 1 else int(fraction)
    count = min(wanted, len(eligible), len(pids) - 1)
    if count < 1:
        raise ValueError(
            f"cannot hold out test identities: {len(eligible)} of {len(pids)} identities have "
            f"the {min_test_crops} crops a query/gallery identity needs (lower "
            "task.frame_step or the size/visibility thresholds, or add sequences)")
    rng = np.random.default_rng(options.seed)
    test = set(rng.choice(eligible, size=count, replace=False).tolist())
    out: list[Crop] = []
    for pid in pids:
        crops = by_pid[pid]
        camera = crops[0].sequence + 1
        if pid not in test:
            out += [_with(c, TRAIN_DIR, camera) for c in crops]
            continue
        half = len(crops) // 2
        # the late half reversed: its queries, too, start at the end farthest from the other half
        for part, part_camera in ((crops[:half], camera),
                                  (crops[half:][::-1], camera + num_sequences)):
            picks = set(_evenly_spaced(len(part), queries))
            out += [_with(c, QUERY_DIR if i in picks else GALLERY_DIR, part_camera)
                    for i, c in enumerate(part)]
    return out


def _evenly_spaced(length: int, count: int) -> list[int]:
    """``count`` distinct indices spread evenly over ``range(length)`` from 0 (count <= length)."""
    return [(i * length) // count for i in range(count)]


def _with(crop: Crop, split: str, camera: int) -> Crop:
    return Crop(crop.pid, crop.sequence, crop.frame, crop.xyxy, split, camera)


def write_crops(out: Path, sequences: Sequence[MotSequence], crops: Sequence[Crop],
                jpeg_quality: int, threads: int = 4) -> int:
    """Cut and write every crop (each frame is decoded once). Returns the number written."""
    for split in (TRAIN_DIR, QUERY_DIR, GALLERY_DIR):
        (out / split).mkdir(parents=True, exist_ok=True)
    by_frame: dict[tuple[int, int], list[Crop]] = defaultdict(list)
    for crop in crops:
        by_frame[(crop.sequence, crop.frame)].append(crop)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]

    def one_frame(key: tuple[int, int]) -> int:
        seq = sequences[key[0]]
        path = seq.frame_path(key[1])
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"{path}: frame missing or unreadable")
        for crop in by_frame[key]:
            x1, y1, x2, y2 = crop.xyxy
            ok, data = cv2.imencode(".jpg", frame[y1:y2, x1:x2], params)
            if not ok:
                raise ValueError(f"{path}: could not encode the crop of pid {crop.pid}")
            (out / crop.split / crop.filename).write_bytes(data.tobytes())
        return len(by_frame[key])

    keys = sorted(by_frame)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return sum(pool.map(one_frame, keys))


def _counts(crops: Sequence[Crop]) -> dict[str, dict[str, int]]:
    out = {}
    for split in (TRAIN_DIR, QUERY_DIR, GALLERY_DIR):
        chosen = [c for c in crops if c.split == split]
        out[split] = {"images": len(chosen), "identities": len({c.pid for c in chosen})}
    return out


def prepare_reid_from_mot(
    sequence_paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    options: PrepareOptions | None = None,
    *,
    fairmot_labels: bool = True,
    overwrite: bool = False,
    threads: int = 4,
) -> dict[str, Any]:
    """Write the Re-ID dataset (and FairMOT labels) to ``out``; return the summary that is also
    saved as ``prepare_meta.json``. Nothing is left behind on failure."""
    from reidsort.data.fairmot import write_fairmot_labels

    options = options or PrepareOptions()
    options.validate()
    sequences = load_sequences(sequence_paths)
    pids = assign_pids(sequences, options.classes)
    by_pid, skipped = select_crops(sequences, pids, options)
    if not by_pid:
        raise ValueError("no crop passed the thresholds (check task.min_height, "
                         "task.min_visibility, task.classes)")
    crops = split_crops(by_pid, len(sequences), options)
    split_of = {c.pid: c.split for c in crops if c.split == TRAIN_DIR}
    with staged_dir(out, overwrite) as staging:
        written = write_crops(staging, sequences, crops, options.jpeg_quality, threads)
        labels = write_fairmot_labels(staging, sequences, pids, options.classes) \
            if fairmot_labels else None
        meta = {
            "generator": "reidsort.data.prepare",
            "options": {**asdict(options), "classes": list(options.classes)},
            "sequences": [{"name": s.name, "path": str(s.root.resolve()), "camera": s.camera,
                           "late_half_camera": s.camera + len(sequences),
                           "frames": s.info.length, "width": s.info.width,
                           "height": s.info.height} for s in sequences],
            "counts": _counts(crops),
            "crops_written": written,
            "boxes_skipped": dict(sorted(skipped.items())),
            "identities": [{"pid": pid, "sequence": sequences[s].name, "track_id": t,
                            "split": "train" if pid in split_of else
                            ("test" if pid in by_pid else "dropped")}
                           for (s, t), pid in sorted(pids.items(), key=lambda kv: kv[1])],
            "fairmot": labels,
        }
        atomic_write_text(staging / META_FILENAME, json.dumps(meta, indent=1) + "\n")
    log.info("prepared %d crops of %d identities in %s", written, len(by_pid), out)
    return meta


__all__ = ["PrepareOptions", "prepare_reid_from_mot", "load_sequences", "assign_pids",
           "select_crops", "split_crops", "Crop"]
