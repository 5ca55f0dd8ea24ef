"""Small inputs for the tracking-application tests: a tiny synthetic MOT sequence, hand-made
MOT folders without images, and little videos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from reidsort.data.synthetic.mot import ensure_synthetic_mot

#: A few seconds of people at a quarter of the default resolution: renders in about a second.
TINY_SYNTHETIC = dict(name="TINY", num_frames=24, width=320, height=240, num_people=5,
                      num_pillars=1, frame_rate=10.0, seed=3)


def tiny_sequence(data_dir: Path) -> Path:
    return ensure_synthetic_mot(data_dir, **TINY_SYNTHETIC)


def synthetic_overrides(data_dir: Path) -> list[str]:
    """Overrides that make ``task=track`` (no source) use the tiny synthetic sequence."""
    return [f"paths.data_dir={data_dir}", "task.progress=false"] + [
        f"task.synthetic.{key}={value}" for key, value in TINY_SYNTHETIC.items()
    ]


def write_mot_folder(root: Path, det_rows: list[str], length: int, gt_rows=None,
                     name: str = "HAND-01", width: int = 100, height: int = 80) -> Path:
    """A MOTChallenge sequence folder without images (seqinfo.ini, det.txt, optional gt.txt)."""
    (root / "det").mkdir(parents=True)
    (root / "det" / "det.txt").write_text("".join(f"{r}\n" for r in det_rows))
    if gt_rows is not None:
        (root / "gt").mkdir()
        (root / "gt" / "gt.txt").write_text("".join(f"{r}\n" for r in gt_rows))
    (root / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=10\nseqLength={length}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n")
    return root


def write_video(path: Path, frames: int, size_wh=(64, 48), fps: float = 10.0) -> Path:
    """An mp4v video whose frame k is filled with grey level 10 * k."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size_wh)
    for k in range(frames):
        writer.write(np.full((size_wh[1], size_wh[0], 3), 10 * k, np.uint8))
    writer.release()
    return path


def count_video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count
