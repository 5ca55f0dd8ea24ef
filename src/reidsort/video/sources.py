"""Where frames come from: video files, webcams, image folders and MOTChallenge sequences.

``resolve_sources(spec)`` turns what the user typed after ``source=`` into sources: a path or a
webcam index, a list of them, or a folder of sequences/videos (one source per entry, like a
``test_folders`` list). Every source yields :class:`~reidsort.video.frame.Frame` objects with
1-based frame numbers; unreadable frames are skipped with a warning and counted (their numbers
are not reused, so frame numbers keep matching the file/sequence).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from omegaconf import ListConfig

from reidsort.tracking.mot_io import read_seqinfo
from reidsort.utils.errors import ReidsortError
from reidsort.video.frame import Frame

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
)
#: Used when a container or camera reports no usable frame rate.
DEFAULT_FRAME_RATE = 30.0
#: A video is abandoned after this many unreadable frames in a row (a broken file, not a glitch).
MAX_CONSECUTIVE_READ_FAILURES = 25
SEQINFO = "seqinfo.ini"
GT_RELATIVE = Path("gt") / "gt.txt"
DET_RELATIVE = Path("det") / "det.txt"


def natural_key(name: str) -> list:
    """Sort key under which ``frame2.png`` comes before ``frame10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


@dataclass(frozen=True)
class SourceInfo:
    """What detectors and outputs need to know about a source before its frames arrive."""

    name: str
    kind: str
    path: Path | None
    frame_rate: float
    width: int | None
    height: int | None
    length: int | None  # None: unknown (webcam)
    frame_names: tuple[str, ...] | None = None  # image file names, in frame order
    gt_path: Path | None = None
    det_path: Path | None = None


class Source(abc.ABC):
    """A stream of frames; ``frames()`` may be called more than once for file sources."""

    live: bool = False

    def __init__(self) -> None:
        self.skipped_frames = 0
        # (first, last, reason) of the run of unreadable frames not yet reported
        self._skip_run: tuple[int, int, str, str | None, str | None] | None = None

    _info: SourceInfo

    @property
    def info(self) -> SourceInfo:
        """Name, size, frame rate and companion files of the source."""
        return self._info

    @abc.abstractmethod
    def frames(self, decode: bool = True) -> Iterator[Frame]:
        """Frames in order; ``decode=False`` yields frames without pixels (``image=None``)."""

    def fingerprint(self) -> str | None:
        """Identity of the source's content for caches (None: not cacheable, e.g. a webcam)."""
        return None

    @property
    def name(self) -> str:
        return self.info.name

    def _skip(self, index: int, reason: str, name: str | None = None) -> None:
        """Count an unreadable frame; a run of consecutive ones becomes one warning (at the
        next good frame or the end: :meth:`_flush_skipped`), not one line per frame."""
        self.skipped_frames += 1
        run = self._skip_run
        if run is not None and run[1] == index - 1 and run[2] == reason:
            self._skip_run = (run[0], index, reason, run[3], name)
            return
        self._flush_skipped()
        self._skip_run = (index, index, reason, name, name)

    def _flush_skipped(self) -> None:
        if self._skip_run is None:
            return
        first, last, reason, first_name, last_name = self._skip_run
        self._skip_run = None
        if first == last:
            where = f"frame {first}" + (f" ({first_name})" if first_name else "")
            log.warning("%s: %s %s (skipped)", self.name, where, reason)
            return
        names = f" ({first_name} .. {last_name})" if first_name else ""
        log.warning("%s: frames %d-%d%s %s (%d skipped)", self.name, first, last, names,
                    reason.replace("is ", "are ", 1), last - first + 1)


class VideoFileSource(Source):
    """A video file read with OpenCV."""

    def __init__(self, path: str | os.PathLike, name: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise ReidsortError(f"video not found: {self.path}")
        capture = _open_capture(str(self.path))
        if capture is None:
            raise ReidsortError(
                f"cannot read video {self.path}: not a video, or no decoder for its codec"
            )
        try:
            ok, first = capture.read()
            if not ok or first is None:
                raise ReidsortError(f"cannot read video {self.path}: no decodable frame")
            frame_rate = capture.get(cv2.CAP_PROP_FPS)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        self._info = SourceInfo(
            name=name or self.path.stem,
            kind="video",
            path=self.path,
            frame_rate=_usable_rate(frame_rate),
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            length=count if count > 0 else None,
        )

    def frames(self, decode: bool = True) -> Iterator[Frame]:
        capture = _open_capture(str(self.path))
        if capture is None:
            raise ReidsortError(f"cannot read video {self.path}")
        try:
            yield from _read_capture(self, capture, decode, self._info.length)
        finally:
            capture.release()

    def fingerprint(self) -> str | None:
        return _file_fingerprint(self.path)


class WebcamSource(Source):
    """A camera by OpenCV device index; live (never cached, no length)."""

    live = True

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = int(index)
        capture = _open_capture(self.index)
        if capture is None:
            raise ReidsortError(
                f"webcam {self.index} is not available (no camera at that index, it is in use, "
                "or this process may not access it)"
            )
        try:
            ok, first = capture.read()
            if not ok or first is None:
                raise ReidsortError(f"webcam {self.index} opened but delivers no frames")
            rate = capture.get(cv2.CAP_PROP_FPS)
        finally:
            capture.release()
        self._info = SourceInfo(
            name=f"webcam{self.index}", kind="webcam", path=None, frame_rate=_usable_rate(rate),
            width=int(first.shape[1]), height=int(first.shape[0]), length=None,
        )

    def frames(self, decode: bool = True) -> Iterator[Frame]:
        capture = _open_capture(self.index)
        if capture is None:
            raise ReidsortError(f"webcam {self.index} is no longer available")
        try:
            # a camera always decodes: there is nothing to skip pixels for
            yield from _read_capture(self, capture, True, None)
        finally:
            capture.release()


class ImageFolderSource(Source):
    """A folder of ``.jpg``/``.jpeg``/``.png`` frames in natural order (``2.png`` < ``10.png``)."""

    def __init__(self, folder: str | os.PathLike, name: str | None = None,
                 frame_rate: float = DEFAULT_FRAME_RATE) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.files = list_images(self.folder)
        if not self.files:
            raise ReidsortError(
                f"no {'/'.join(IMAGE_EXTENSIONS)} images in {self.folder}"
            )
        size = _first_readable_size(self.files)
        if size is None:
            raise ReidsortError(
                f"none of the {len(self.files)} images in {self.folder} can be read")
        self._info = SourceInfo(
            name=name or self.folder.name, kind="images", path=self.folder,
            frame_rate=float(frame_rate), width=size[1], height=size[0], length=len(self.files),
            frame_names=tuple(f.name for f in self.files),
        )

    def frames(self, decode: bool = True) -> Iterator[Frame]:
        yield from _read_files(self, self.files, decode)

    def fingerprint(self) -> str | None:
        return _files_fingerprint(self.folder, self.files)


class MotSequenceSource(Source):
    """A MOTChallenge sequence folder: ``seqinfo.ini``, ``img1/``, optional ``gt/`` and ``det/``.

    Frame ``i`` is ``<imDir>/<i:06d><imExt>`` as in MOTChallenge. The images may be absent
    (e.g. text-only MOT15 copies): such a sequence can still be tracked from its ``det.txt`` with
    no appearance model and no video output, which never asks for pixels.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        super().__init__()
        self.folder = Path(folder)
        try:
            seq = read_seqinfo(self.folder / SEQINFO)
        except (FileNotFoundError, ValueError) as error:
            raise ReidsortError(str(error)) from None
        self.image_dir = self.folder / seq.image_dir
        self.files = [self.image_dir / f"{i:06d}{seq.image_ext}" for i in range(1, seq.length + 1)]
        gt, det = self.folder / GT_RELATIVE, self.folder / DET_RELATIVE
        self._info = SourceInfo(
            name=seq.name or self.folder.name, kind="mot", path=self.folder,
            frame_rate=seq.frame_rate, width=seq.width, height=seq.height, length=seq.length,
            frame_names=tuple(f.name for f in self.files),
            gt_path=gt if gt.is_file() else None, det_path=det if det.is_file() else None,
        )

    @property
    def has_images(self) -> bool:
        return self.image_dir.is_dir()

    def frames(self, decode: bool = True) -> Iterator[Frame]:
        if decode and not self.has_images:
            raise ReidsortError(
                f"{self.folder} has no {self.image_dir.name}/ images; without images it can only "
                "be tracked with detector=public, embedder=none and task.video=false"
            )
        yield from _read_files(self, self.files, decode)

    def fingerprint(self) -> str | None:
        parts = [_file_fingerprint(self.folder / SEQINFO)]
        if self._info.det_path is not None:  # public detections come from it
            parts.append(_file_fingerprint(self._info.det_path))
        if self.has_images:
            parts.append(_files_fingerprint(self.image_dir, self.files))
        return "|".join(parts)


# -- reading helpers -------------------------------------------------------------------------
def list_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def _files_fingerprint(folder: Path, files: Sequence[Path]) -> str:
    """Names, sizes and modification times of the frames (cheap: no pixel is read)."""
    digest = hashlib.sha256()
    for path in files:
        try:
            stat = path.stat()
        except FileNotFoundError:
            digest.update(f"{path.name}:missing\n".encode())
            continue
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"{folder.resolve()}:{digest.hexdigest()}"


def _first_readable_size(files: Sequence[Path]) -> tuple[int, int] | None:
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            return int(image.shape[0]), int(image.shape[1])
    return None


def _read_files(source: Source, files: Sequence[Path], decode: bool) -> Iterator[Frame]:
    source.skipped_frames = 0
    try:
        for index, path in enumerate(files, start=1):
            if not decode:
                yield Frame(index, None, path.name)
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
            if image is None:
                source._skip(index, "is missing or unreadable", path.name)
                continue
            source._flush_skipped()
            yield Frame(index, image, path.name)
    finally:
        source._flush_skipped()


def _open_capture(target: str | int) -> cv2.VideoCapture | None:
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        return None
    return capture


def _read_capture(
    source: Source, capture: cv2.VideoCapture, decode: bool, length: int | None
) -> Iterator[Frame]:
    """Frames of a capture; a failed read before the reported end is a corrupt frame (skipped)."""
    source.skipped_frames = 0
    index = 0
    failures = 0
    while True:
        ok = capture.grab()
        image: np.ndarray | None = None
        if ok and decode:
            ok, image = capture.retrieve()
            ok = ok and image is not None
        index += 1
        if ok:
            failures = 0
            source._flush_skipped()
            yield Frame(index, image)
            continue
        if length is None or index > length:
            source._flush_skipped()
            return  # end of stream
        failures += 1
        if failures > MAX_CONSECUTIVE_READ_FAILURES:
            source._flush_skipped()
            log.warning(
                "%s: stopped after %d unreadable frames in a row (at frame %d of %d)",
                source.name, failures, index, length,
            )
            return
        source._skip(index, "cannot be decoded")


def _usable_rate(rate: float) -> float:
    return float(rate) if np.isfinite(rate) and 0 < rate < 1000 else DEFAULT_FRAME_RATE


# -- what the user typed ---------------------------------------------------------------------
def _is_webcam_index(item: object) -> bool:
    if isinstance(item, bool):
        return False
    if isinstance(item, int):
        return True
    return isinstance(item, str) and item.strip().isdigit() and not Path(item).exists()


def _entries_of_folder(folder: Path, image_frame_rate: float,
                       skipped: list[str] | None = None) -> list[Source]:
    """The sources a folder holds: itself (a sequence or image folder) or its entries. With a
    ``skipped`` list, a video of the folder that cannot be opened is skipped with a warning and
    its error appended, so one bad file does not stop the good ones."""
    if (folder / SEQINFO).is_file():
        return [MotSequenceSource(folder)]
    if list_images(folder):
        return [ImageFolderSource(folder, frame_rate=image_frame_rate)]
    children = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    sources: list[Source] = []
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_dir() and ((child / SEQINFO).is_file() or list_images(child)):
            sources.extend(_entries_of_folder(child, image_frame_rate, skipped))
        elif child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS:
            try:
                sources.append(VideoFileSource(child))
            except ReidsortError as error:
                if skipped is None:
                    raise
                log.warning("skipping %s", error)
                skipped.append(str(error))
    if not sources and skipped:
        raise ReidsortError(f"{folder}: no readable source ({len(skipped)} unreadable video(s), "
                            f"first: {skipped[0]})")
    if not sources:
        raise ReidsortError(
            f"{folder} holds no frames, no MOT sequence (seqinfo.ini) and no video: "
            "nothing to track"
        )
    return sources


def open_source(item: object, image_frame_rate: float = DEFAULT_FRAME_RATE,
                skipped: list[str] | None = None) -> list[Source]:
    """The source(s) one ``source=`` entry names (a folder of sequences gives several).

    ``image_frame_rate`` is the frame rate of image folders, which carry none; ``skipped``: see
    :func:`_entries_of_folder` (a video named directly still fails)."""
    if _is_webcam_index(item):
        return [WebcamSource(int(item))]  # type: ignore[arg-type]
    path = Path(str(item)).expanduser()
    if not path.exists():
        raise ReidsortError(f"source not found: {path}")
    if path.is_dir():
        return _entries_of_folder(path, image_frame_rate, skipped)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ReidsortError(
            f"source {path} is a single image; pass its folder to track a sequence of images"
        )
    return [VideoFileSource(path)]


def resolve_sources(spec: object, image_frame_rate: float = DEFAULT_FRAME_RATE,
                    skipped: list[str] | None = None) -> list[Source]:
    """All sources of a ``source=`` value (None, one entry or a list), with unique names
    (``skipped``: unreadable videos inside folders are listed there instead of failing)."""
    if spec is None:
        return []
    items = list(spec) if isinstance(spec, (list, tuple, ListConfig)) else [spec]
    sources = [source for item in items
               for source in open_source(item, image_frame_rate, skipped)]
    seen: dict[str, int] = {}
    for source in sources:
        base = source.name
        if base in seen:
            seen[base] += 1
            source._info = replace(source.info, name=f"{base}-{seen[base]}")
        else:
            seen[base] = 1
    return sources


