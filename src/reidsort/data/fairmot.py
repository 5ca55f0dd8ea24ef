"""FairMOT / JDE training labels from MOTChallenge ground truth (``labels_with_ids``).

Layout (FairMOT finds a label file by replacing ``images`` with ``labels_with_ids`` and the image
extension with ``.txt`` in the image path)::

    out/images/<seq>/img1/000001.jpg            -> symlink to the sequence's frame
    out/labels_with_ids/<seq>/img1/000001.txt   one line per person: class id cx cy w h
    out/mot.train                               image paths relative to out/, one per line

``class`` is 0 (person, the only class), ``id`` the global identity (the pids of the Re-ID crops
of :mod:`reidsort.data.prepare`), and ``cx cy w h`` the box centre and size divided by the image
width/height. As in FairMOT's own label generator, every pedestrian box that is not flagged
ignore is written (no visibility or size threshold: a detector must find occluded people too),
and every frame gets a file, empty when nobody is annotated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from reidsort.data.prepare import MotSequence

LABEL_CLASS = 0
IMAGES_DIR, LABELS_DIR = "images", "labels_with_ids"
LIST_FILENAME = "mot.train"


def label_lines(tlwh: np.ndarray, ids: np.ndarray, width: int, height: int) -> str:
    """``class id cx cy w h`` lines (normalised to the image size) for one frame."""
    tlwh = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    cx = (tlwh[:, 0] + tlwh[:, 2] / 2) / width
    cy = (tlwh[:, 1] + tlwh[:, 3] / 2) / height
    w, h = tlwh[:, 2] / width, tlwh[:, 3] / height
    return "".join(f"{LABEL_CLASS} {int(i)} {a:.6f} {b:.6f} {c:.6f} {d:.6f}\n"
                   for i, a, b, c, d in zip(ids, cx, cy, w, h))


def write_fairmot_labels(out: Path, sequences: Sequence["MotSequence"],
                         pids: dict[tuple[int, int], int], classes: Sequence[int]
                         ) -> dict[str, Any]:
    """Write labels, image links and the image list under ``out``; returns counts."""
    from reidsort.data.prepare import pedestrian_mask

    listed: list[str] = []
    boxes = 0
    for s_index, seq in enumerate(sequences):
        gt = seq.gt
        mask = pedestrian_mask(gt, classes)
        frames, tlwh, tracks = gt.frame_ids[mask], gt.tlwh[mask], gt.track_ids[mask]
        ids = np.array([pids[(s_index, int(t))] for t in tracks], dtype=np.int64)
        label_dir = out / LABELS_DIR / seq.name / seq.info.image_dir
        image_dir = out / IMAGES_DIR / seq.name / seq.info.image_dir
        label_dir.mkdir(parents=True, exist_ok=True)
        image_dir.mkdir(parents=True, exist_ok=True)
        last = max(seq.info.length, int(frames.max()) if len(frames) else 0)
        for frame in range(1, last + 1):
            source = seq.frame_path(frame)
            if not source.is_file():
                continue
            rows = frames == frame
            boxes += int(rows.sum())
            stem = source.stem
            (label_dir / f"{stem}.txt").write_text(
                label_lines(tlwh[rows], ids[rows], seq.info.width, seq.info.height))
            os.symlink(source.resolve(), image_dir / source.name)
            listed.append(f"{IMAGES_DIR}/{seq.name}/{seq.info.image_dir}/{source.name}")
    (out / LIST_FILENAME).write_text("".join(f"{p}\n" for p in listed))
    return {"images": len(listed), "boxes": boxes, "identities": len(pids),
            "list": LIST_FILENAME}
