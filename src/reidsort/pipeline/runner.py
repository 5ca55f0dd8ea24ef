"""Track one source end to end: decode -> detect -> embed -> track -> draw -> write.

``mode="online"`` handles one frame at a time (streams, webcams: lowest latency).
``mode="offline"`` takes ``chunk_size`` frames at once: the detector gets the whole chunk (one
batched call where the model allows it) and the embedder every crop of the chunk in large
batches; then the chunk's frames are tracked in order. The tracker sees exactly the same
detections and embeddings in both modes, so both give identical tracks (tested).

In both modes a reader thread decodes ``prefetch`` frames ahead (offline: plus one chunk) and a
writer thread encodes the annotated video, so decoding and encoding overlap the models. With
``pipeline=True`` detection and embedding also get a thread each: while frame t is embedded,
frame t+1 is detected and frame t-1 is tracked and drawn, so the application's own work
(letterboxing, NMS, crop preprocessing, the tracker, drawing) overlaps the models instead of
adding to them. Frames still reach the tracker one by one and in order.

With a :class:`CacheSpec`, detections and embeddings already computed for this source and
config are loaded instead (no model runs, and no decoding unless a video is drawn or the
camera motion is estimated from the pixels), and fresh ones are saved once the source has been
read to its end.

With a camera-motion estimator (``cmc``, :mod:`reidsort.tracking.cmc`) each frame's warp from
the previous frame is estimated from the frame and its detection boxes (or read from a file by
frame number) just before tracking it, and handed to the tracker as ``update(..., warp=W)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from reidsort.detection.base import Detections, Detector
from reidsort.embedders.base import Embedder, crop_boxes
from reidsort.pipeline.cache import DetectionTable, FeatureCache, FeatureRecorder
from reidsort.pipeline.prefetch import prefetched
from reidsort.pipeline.timing import StageTimer, Timing
from reidsort.tracking.cmc import CameraMotionEstimator
from reidsort.tracking.mot_io import MotResultsBuffer
from reidsort.tracking.tracker import DeepSortTracker
from reidsort.utils.errors import ReidsortError
from reidsort.video.display import LiveWindow, check_display_available
from reidsort.video.drawing import TrackPainter
from reidsort.video.frame import Frame
from reidsort.video.sources import MotSequenceSource, Source, SourceInfo
from reidsort.video.writer import DEFAULT_CODEC, video_writer

log = logging.getLogger(__name__)

MODES = ("online", "offline")
#: Annotated frames waiting for the video writer thread.
VIDEO_QUEUE_FRAMES = 4
T = TypeVar("T")


class Lazy(Generic[T]):
    """Builds an object on first use (a detector or embedder is not loaded for cache hits)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    @property
    def built(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        if self._value is None:
            self._value = self._factory()
        return self._value


@dataclass(frozen=True)
class RunOptions:
    """How a source is processed and what is written (``conf/task/track.yaml`` documents each)."""

    mode: str = "online"
    chunk_size: int = 32
    prefetch: int = 4
    pipeline: bool = True
    video: bool = True
    display: bool = False
    max_frames: int | None = None
    trail_length: int = 30
    draw_masks: bool = True
    show_fps: bool = True
    progress: bool = True
    video_codec: str = DEFAULT_CODEC
    result_decimals: int = 2
    #: clip boxes to the frame before tracking (off: the reference trackers and MOTChallenge
    #: ground truth keep boxes that reach past the border; crops are clipped either way)
    clip_boxes: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ReidsortError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if int(self.chunk_size) < 1:
            raise ReidsortError(f"task.chunk_size must be >= 1, got {self.chunk_size}")
        if int(self.prefetch) < 0:
            raise ReidsortError(f"task.prefetch must be >= 0, got {self.prefetch}")
        if self.max_frames is not None and int(self.max_frames) < 1:
            raise ReidsortError(f"task.max_frames must be >= 1 or null, got {self.max_frames}")


@dataclass(frozen=True)
class CacheSpec:
    """Where cached features live and under which keys (see :mod:`reidsort.pipeline.cache`)."""

    cache: FeatureCache
    detection_key: str
    embedding_key: str | None  # None when there is no embedder


@dataclass
class SourceResult:
    """What tracking one source produced."""

    name: str
    rows: np.ndarray  # MOTChallenge result rows (M, 7) [frame, id, x, y, w, h, score]
    results_path: Path
    video_path: Path | None
    timing: Timing
    skipped_frames: int
    detections: int
    complete: bool  # read to the end (not stopped by q/Esc or max_frames)
    cache_hits: dict[str, bool] = field(default_factory=dict)

    @property
    def track_ids(self) -> int:
        return len(np.unique(self.rows[:, 1])) if len(self.rows) else 0


def _timed(frames: Iterator[Frame], timer: StageTimer) -> Iterator[Frame]:
    """The frames, with the time spent waiting for each counted as decode (reading and
    decoding, or, with a reader thread, what of it the models did not hide)."""
    while True:
        start = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            timer.add("decode", time.perf_counter() - start)
            return
        timer.add("decode", time.perf_counter() - start)
        yield frame


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    chunk: list[Frame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _progress(total: int | None, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="frame", disable=not enabled, dynamic_ncols=True,
                leave=False)


def embed_frames(embedder: Embedder, frames: list[Frame], dets: list[Detections],
                 mode: str) -> list[np.ndarray]:
    """Embeddings of each frame's detections: per frame (online) or one pass over all crops of
    the chunk (offline, large batches)."""
    if mode == "online":
        return [embedder.embed(f.image, d.xyxy) for f, d in zip(frames, dets)]
    crops = [crop for f, d in zip(frames, dets) for crop in crop_boxes(f.image, d.xyxy)]
    features = embedder.embed_crops(crops)
    splits = np.cumsum([len(d) for d in dets])[:-1]
    return np.split(features, splits)


@dataclass
class _Plan:
    """What a run of one source computes and what it takes from the cache."""

    cached_dets: DetectionTable | None
    cached_embeddings: np.ndarray | None
    video: bool
    drawing: bool
    need_pixels: bool

    @property
    def compute_dets(self) -> bool:
        return self.cached_dets is None


def _plan(source: Source, detector: Lazy[Detector], embedder: Lazy[Embedder] | None,
          options: RunOptions, cache: CacheSpec | None,
          cmc: CameraMotionEstimator | None = None, detector_embeddings: bool = False) -> _Plan:
    info = source.info
    cmc_needs_pixels = cmc is not None and cmc.needs_images
    if cmc_needs_pixels and isinstance(source, MotSequenceSource) and not source.has_images:
        raise ReidsortError(
            f"{info.name} ({source.folder}) has no images, but cmc={cmc.method.value} estimates "
            "the camera motion from them; use cmc=file (a gmc.txt) or cmc=none"
        )
    video = options.video
    if video and isinstance(source, MotSequenceSource) and not source.has_images:
        log.warning("%s has no images: no video is written for it", info.name)
        video = False
    drawing = video or options.display
    cached_dets, cached_embeddings = None, None
    # masks are not cached: a run that draws them recomputes the detections
    masks_wanted = drawing and options.draw_masks and detector.get().produces_masks
    if cache is not None and not masks_wanted:
        cached_dets = cache.cache.load_detections(info.name, cache.detection_key)
        wants_embeddings = embedder is not None or detector_embeddings
        if cached_dets is not None and wants_embeddings and cache.embedding_key:
            cached_embeddings = cache.cache.load_embeddings(info.name, cache.embedding_key,
                                                            len(cached_dets.xyxy))
        if detector_embeddings and cached_embeddings is None:
            cached_dets = None  # only the detector can give its embeddings: run it again
    compute_embeddings = embedder is not None and cached_embeddings is None
    need_pixels = drawing or compute_embeddings or cmc_needs_pixels or (
        cached_dets is None and detector.get().needs_pixels)
    return _Plan(cached_dets, cached_embeddings, video, drawing, need_pixels)


class _Outputs:
    """Per-frame consumers of the tracks: drawing, the video file and the live window."""

    def __init__(self, stack: ExitStack, info: SourceInfo, plan: _Plan, options: RunOptions,
                 video_path: Path | None, timer: StageTimer) -> None:
        self.timer = timer
        self.show_fps = options.show_fps
        self.painter = TrackPainter(options.trail_length, draw_masks=options.draw_masks) \
            if plan.drawing else None
        self.sink = None
        if video_path is not None:
            # encoded in a writer thread: the frame is not touched after it is handed over
            self.sink = stack.enter_context(video_writer(
                video_path, info.frame_rate, (info.width, info.height), options.video_codec,
                queue_size=VIDEO_QUEUE_FRAMES))
        self.window = None
        if options.display:
            self.window = LiveWindow(f"reidsort - {info.name}")
            stack.callback(self.window.close)

    def emit(self, frame: Frame, tracks: np.ndarray, dets: Detections) -> bool:
        """Draw, write and show one frame; False when the user asked to stop."""
        if self.painter is not None:
            with self.timer.stage("draw"):
                fps = self.timer.timing.frames / self.timer.elapsed if self.show_fps else None
                self.painter.draw(frame.image, tracks, dets.masks, fps)
        if self.sink is not None:
            with self.timer.stage("write"):
                self.sink.write(frame.image)
        if self.window is not None:
            with self.timer.stage("display"):
                return self.window.show(frame.image)
        return True


def track_source(
    source: Source,
    detector: Lazy[Detector],
    embedder: Lazy[Embedder] | None,
    tracker: DeepSortTracker,
    out_dir: Path,
    options: RunOptions,
    cache: CacheSpec | None = None,
    cmc: CameraMotionEstimator | None = None,
    detector_embeddings: bool = False,
) -> SourceResult:
    """Track ``source`` and write ``<out_dir>/<name>.txt`` (and ``<name>.mp4``); see the module
    docstring. Nothing is written if it fails (a live source stopped with Ctrl-C keeps what was
    tracked). ``cmc`` estimates the camera motion handed to the tracker (None or an identity
    estimator: the tracker gets no ``warp``, so trackers without CMC support work too).
    ``detector_embeddings``: the tracker gets the embeddings the detector returns with its boxes
    (``Detections.embeddings``: a joint detection + embedding model, FairMOT) and ``embedder``
    must be None; they are cached under ``cache.embedding_key`` like an embedder's."""
    if detector_embeddings and embedder is not None:
        raise ValueError("track_source: detector_embeddings=True takes no embedder")
    info = source.info
    out_dir = Path(out_dir)
    if options.display:
        check_display_available()  # before anything is computed or written
    if cmc is not None and cmc.is_identity:
        cmc = None
    plan = _plan(source, detector, embedder, options, cache, cmc, detector_embeddings)
    if plan.compute_dets:
        detector.get().bind(info)
    compute_embeddings = embedder is not None and plan.cached_embeddings is None
    # embeddings this run produces (an embedder's, or the detector's fresh ones) get cached
    fresh_embeddings = compute_embeddings or (detector_embeddings
                                              and plan.cached_embeddings is None)
    # with everything cached there is no model to overlap: threads would only add hand-overs
    pipelined = options.pipeline and (plan.compute_dets or compute_embeddings)
    timer = StageTimer(parallel=pipelined)
    recorder = FeatureRecorder() if cache is not None and (plan.compute_dets
                                                           or compute_embeddings) else None
    tracker.reset()
    if cmc is not None:
        cmc.reset()
    results = MotResultsBuffer()
    chunk_size = 1 if options.mode == "online" else int(options.chunk_size)
    detections = 0
    complete = True
    results_path = out_dir / f"{info.name}.txt"
    video_path = out_dir / f"{info.name}.mp4" if plan.video else None
    with ExitStack() as stack:
        outputs = _Outputs(stack, info, plan, options, video_path, timer)
        progress = stack.enter_context(_progress(
            min(filter(None, (info.length, options.max_frames)), default=None),
            info.name, options.progress))
        # offline, the reader also fills the next chunk while this one is processed
        depth = int(options.prefetch) + (chunk_size if options.prefetch and chunk_size > 1 else 0)
        decoded = stack.enter_context(closing(prefetched(
            source.frames(decode=plan.need_pixels), depth, f"read {info.name}")))
        frames: Iterator[Frame] = _timed(decoded, timer)
        if plan.cached_dets is not None:  # frames unreadable when cached stay skipped
            frames = (f for f in frames if plan.cached_dets.has_frame(f.index))
        budget = _FrameBudget(options.max_frames)
        # entered after the reader: on exit the stage threads stop before the reader is closed
        features = stack.enter_context(closing(_features(
            _chunks(budget.take(frames), chunk_size), plan, detector,
            embedder if compute_embeddings else None, timer, info, options.mode,
            options.clip_boxes, pipelined, detector_embeddings)))
        try:
            for chunk, chunk_dets, chunk_embeddings in features:
                for frame, dets, embeddings in zip(chunk, chunk_dets, chunk_embeddings):
                    warp = None
                    if cmc is not None:
                        with timer.stage("cmc"):
                            # frame.index, not a count: frames skipped or cut stay aligned
                            warp = cmc.estimate(frame.image, frame.index, dets.xyxy)
                    with timer.stage("track"):
                        tracks = (tracker.update(dets.tracker_input(), embeddings) if warp is None
                                  else tracker.update(dets.tracker_input(), embeddings, warp=warp))
                        results.add(frame.index, tracks)
                    detections += len(dets)
                    if recorder is not None:
                        recorder.add(frame.index, dets, embeddings)
                    timer.count_frame()
                    progress.update(1)
                    if not outputs.emit(frame, tracks, dets):
                        log.info("%s: stopped by the user at frame %d", info.name, frame.index)
                        complete = False
                        break
                if not complete:
                    break
            complete = complete and not budget.cut
        except KeyboardInterrupt:
            if not source.live:
                raise  # an interrupted file run writes nothing
            # Ctrl-C is how a camera run ends: keep what was tracked so far
            log.info("%s: interrupted, writing what was tracked", info.name)
            complete = False
        results.write(results_path, options.result_decimals)
    timing = timer.stop()
    if cmc is not None:
        cmc.report(info.name)  # frames whose motion could not be estimated, once per source
    if recorder is not None and complete:
        if plan.compute_dets:
            cache.cache.save_detections(info.name, cache.detection_key, recorder.detections())
        embeddings_table = recorder.embeddings()
        if fresh_embeddings and cache.embedding_key and embeddings_table is not None:
            cache.cache.save_embeddings(info.name, cache.embedding_key, embeddings_table)
    return SourceResult(
        name=info.name, rows=results.rows(), results_path=results_path, video_path=video_path,
        timing=timing, skipped_frames=source.skipped_frames, detections=detections,
        complete=complete,
        cache_hits={"detections": not plan.compute_dets,
                    "embeddings": (embedder is not None or detector_embeddings)
                    and not fresh_embeddings},
    )


class _FrameBudget:
    """Passes at most ``max_frames`` frames on; ``cut`` tells whether the source had more."""

    def __init__(self, max_frames: int | None) -> None:
        self.max_frames = None if max_frames is None else int(max_frames)
        self.cut = False

    def take(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        if self.max_frames is None:
            yield from frames
            return
        for taken, frame in enumerate(frames):
            if taken == self.max_frames:
                self.cut = True
                return
            yield frame


def _stage(items: Iterator, step: Callable) -> Iterator:
    """``step`` applied to each item; closing this closes ``items`` too, in the same thread
    (a generator must not be closed by a thread other than the one running it)."""
    with closing(items):
        for item in items:
            yield step(item)


def _features(chunks: Iterator[list[Frame]], plan: _Plan, detector: Lazy[Detector],
              embedder: Lazy[Embedder] | None, timer: StageTimer, info: SourceInfo,
              mode: str, clip_boxes: bool, pipelined: bool, detector_embeddings: bool = False
              ) -> Iterator[tuple[list[Frame], list[Detections], list[np.ndarray | None]]]:
    """Each chunk with its detections and embeddings, computed or cached: in line, or
    ``pipelined`` in a detection thread and an embedding thread, one chunk apart
    (``detector_embeddings``: those the detector returned with the boxes)."""
    # one chunk in flight between threads is enough to keep both models busy
    depth = 1 if pipelined else 0

    def detect(chunk: list[Frame]) -> tuple[list[Frame], list[Detections]]:
        if plan.compute_dets:
            with timer.stage("detect"):
                dets = detector.get().detect(chunk)
        else:
            dets = [plan.cached_dets.for_frame(f.index) for f in chunk]
        if clip_boxes:
            dets = [_clip(d, f, info) for d, f in zip(dets, chunk)]
        return chunk, dets

    def embed(item: tuple[list[Frame], list[Detections]]):
        chunk, dets = item
        if embedder is not None:
            with timer.stage("embed"):
                embeddings = embed_frames(embedder.get(), chunk, dets, mode)
            timer.count_embedded(sum(len(d) for d in dets))
            return chunk, dets, embeddings
        if plan.cached_embeddings is not None:
            table = plan.cached_dets
            return chunk, dets, [plan.cached_embeddings[table.rows(f.index)] for f in chunk]
        if detector_embeddings:
            return chunk, dets, [d.embeddings for d in dets]
        return chunk, dets, [None] * len(chunk)

    detected = prefetched(_stage(chunks, detect), depth, f"detect {info.name}")
    return prefetched(_stage(detected, embed), depth, f"embed {info.name}")


def _clip(dets: Detections, frame: Frame, info: SourceInfo) -> Detections:
    """Boxes clipped to the frame (detectors and det.txt files may reach past the border)."""
    size = frame.height_width or (info.height, info.width)
    if size[0] is None:
        return dets
    return dets.clipped(*size)
