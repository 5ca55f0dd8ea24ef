"""One source through the pipeline: online == offline == one thread, the detect/embed/track
threads overlap and shut down, the feature cache, clipping, empty frames, annotated video output."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from track_samples import count_video_frames, tiny_sequence, write_mot_folder

from reidsort.detection import PublicDetector
from reidsort.embedders.histogram import HistogramEmbedder
from reidsort.pipeline import CacheSpec, FeatureCache, Lazy, RunOptions, cache_key, track_source
from reidsort.tracking import DeepSortTracker
from reidsort.utils.errors import ReidsortError
from reidsort.video.frame import Frame
from reidsort.video.sources import MotSequenceSource, Source, SourceInfo

QUIET = dict(progress=False)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    return MotSequenceSource(tiny_sequence(tmp_path_factory.mktemp("synth")))


def _run(source, out_dir, embedder=True, cache=None, **options):
    return track_source(
        source, Lazy(PublicDetector), Lazy(HistogramEmbedder) if embedder else None,
        DeepSortTracker(min_confidence=0.3), out_dir, RunOptions(**{**QUIET, **options}), cache)


def test_online_and_offline_give_identical_tracks(sequence, tmp_path):
    # one thread does everything: the reference
    online = _run(sequence, tmp_path / "online", mode="online", video=False, prefetch=0,
                  pipeline=False)
    offline = _run(sequence, tmp_path / "offline", mode="offline", chunk_size=5, video=True)
    read_ahead = _run(sequence, tmp_path / "ahead", mode="online", video=False, prefetch=3)
    offline_in_line = _run(sequence, tmp_path / "in_line", mode="offline", chunk_size=7,
                           video=False, pipeline=False)
    reference = online.results_path.read_text()
    for other in (offline, read_ahead, offline_in_line):
        assert other.results_path.read_text() == reference
    assert online.track_ids >= 3 and len(online.rows) > 30
    assert online.timing.frames == offline.timing.frames == 24
    assert {"decode", "detect", "embed", "track"} <= set(online.timing.seconds)
    # every crop embedded once, whether per frame (online) or per chunk (offline)
    assert online.timing.embedded == offline.timing.embedded == online.detections > 0
    assert {"draw", "write"} <= set(offline.timing.seconds)
    assert offline.timing.parallel and not online.timing.parallel
    assert count_video_frames(offline.video_path) == 24
    assert sorted(p.name for p in (tmp_path / "offline").iterdir()) == ["TINY.mp4", "TINY.txt"]


def test_cache_serves_detections_and_embeddings(sequence, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    det_key = cache_key("detections", sequence.fingerprint(), {"min_score": None})
    spec = CacheSpec(cache, det_key, cache_key("embeddings", det_key, {"bins": [8, 4, 4]}))
    partial = _run(sequence, tmp_path / "partial", cache=spec, video=False, max_frames=10)
    assert not partial.complete and not any((tmp_path / "cache").glob("*.npz"))
    first = _run(sequence, tmp_path / "first", cache=spec, video=False)
    assert first.cache_hits == {"detections": False, "embeddings": False}
    assert len(list((tmp_path / "cache").glob("TINY-*.npz"))) == 2

    class Unusable:  # a cache hit must not even build the models
        def __init__(self):
            raise AssertionError("built a model although everything was cached")

    second = track_source(sequence, Lazy(Unusable), Lazy(Unusable),
                          DeepSortTracker(min_confidence=0.3), tmp_path / "second",
                          RunOptions(video=False, **QUIET), spec)
    assert second.cache_hits == {"detections": True, "embeddings": True}
    assert "detect" not in second.timing.seconds and "embed" not in second.timing.seconds
    assert second.results_path.read_text() == first.results_path.read_text()
    motion_only = _run(sequence, tmp_path / "motion", embedder=False,
                       cache=CacheSpec(cache, det_key, None), video=False)
    assert motion_only.cache_hits == {"detections": True, "embeddings": False}


def test_cache_keys_follow_config_and_files(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"v1")
    key = cache_key("detections", "source", {"model_path": str(model), "score": 0.3})
    assert key == cache_key("detections", "source", {"score": 0.3, "model_path": str(model)})
    assert key != cache_key("detections", "source", {"model_path": str(model), "score": 0.4})
    model.write_bytes(b"version 2")  # same path, new content
    assert key != cache_key("detections", "source", {"model_path": str(model), "score": 0.3})


@pytest.mark.parametrize("clip_boxes", [False, True])
def test_boxes_outside_the_image_reach_the_tracker_as_given_or_clipped_and_empty_frames_are_fine(
        tmp_path, clip_boxes):
    rows = [f"{f},-1,{-20 + 2 * f},10,40,50,0.9" for f in (1, 2, 3, 6, 7, 8, 9)]
    root = write_mot_folder(tmp_path / "seq", rows, length=10)  # frames 4, 5, 10: nothing
    cache = FeatureCache(tmp_path / "cache")
    result = _run(MotSequenceSource(root), tmp_path / "out", embedder=False,
                  cache=CacheSpec(cache, "k", None), video=True, clip_boxes=clip_boxes)
    assert result.video_path is None  # no images: no video, tracking still works
    table = cache.load_detections("HAND-01", "k")
    assert table.frame_ids.tolist() == list(range(1, 11))
    if clip_boxes:
        assert (table.xyxy[:, 0] >= 0).all() and table.xyxy[0].tolist() == [0, 10, 22, 60]
    else:  # as in det.txt (and the reference trackers): past the left border
        assert table.xyxy[0].tolist() == [-18, 10, 22, 60]
    frames = result.rows[:, 0].astype(int).tolist()
    assert 4 not in frames and 10 not in frames and 3 in frames
    assert len(np.unique(result.rows[:, 1])) == 1  # one person, one id across the gap


class _Stream(Source):
    """Three frames, then Ctrl-C (how a camera run ends)."""

    def __init__(self, live: bool, det_path) -> None:
        super().__init__()
        self.live = live
        self._info = SourceInfo(name="cam", kind="webcam", path=None, frame_rate=10.0,
                                width=100, height=80, length=None, det_path=det_path)

    def frames(self, decode=True):
        for index in range(1, 4):
            yield Frame(index, np.zeros((80, 100, 3), np.uint8))
        raise KeyboardInterrupt


def test_ctrl_c_ends_a_live_run_but_aborts_a_file_run(tmp_path):
    det = tmp_path / "det.txt"
    det.write_text("".join(f"{f},-1,10,10,20,40,0.9\n" for f in (1, 2, 3)))
    live = _run(_Stream(True, det), tmp_path / "live", embedder=False, video=True)
    assert not live.complete and live.timing.frames == 3
    assert live.results_path.read_text().splitlines()[0].startswith("3,1,")
    assert count_video_frames(live.video_path) == 3
    with pytest.raises(KeyboardInterrupt):
        _run(_Stream(False, det), tmp_path / "file", embedder=False, video=True)
    assert not (tmp_path / "file").exists() or not any((tmp_path / "file").iterdir())


class _HandshakeDetector(PublicDetector):
    """Records its thread and signals once frame 2 is detected."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()
        self.second_frame_detected = threading.Event()

    def detect(self, frames):
        self.threads.add(threading.current_thread().name)
        out = super().detect(frames)
        if any(f.index == 2 for f in frames):
            self.second_frame_detected.set()
        return out


class _HandshakeEmbedder(HistogramEmbedder):
    """Embedding frame 1 waits for frame 2's detection: only a pipeline can get past it
    without the wait running out."""

    def __init__(self, detector: _HandshakeDetector) -> None:
        super().__init__()
        self.detector = detector
        self.threads: set[str] = set()
        self.overlapped: bool | None = None

    def embed(self, frame_bgr, boxes_xyxy):
        self.threads.add(threading.current_thread().name)
        if self.overlapped is None:  # the first frame
            self.overlapped = self.detector.second_frame_detected.wait(timeout=0.5)
        return super().embed(frame_bgr, boxes_xyxy)


@pytest.mark.parametrize("pipeline", [True, False])
def test_the_pipeline_detects_the_next_frame_while_this_one_is_embedded(sequence, tmp_path,
                                                                        pipeline):
    detector = _HandshakeDetector()
    embedder = _HandshakeEmbedder(detector)
    result = track_source(sequence, Lazy(lambda: detector), Lazy(lambda: embedder),
                          DeepSortTracker(min_confidence=0.3), tmp_path,
                          RunOptions(video=False, pipeline=pipeline, max_frames=6, **QUIET))
    assert result.timing.frames == 6
    assert embedder.overlapped is pipeline
    main = threading.current_thread().name
    if pipeline:
        assert detector.threads == {"detect TINY"} and embedder.threads == {"embed TINY"}
    else:
        assert detector.threads == embedder.threads == {main}


def _pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith(" TINY")]


class _FailingDetector(PublicDetector):
    def detect(self, frames):
        if any(f.index == 5 for f in frames):
            raise ReidsortError("detector broke on frame 5")
        return super().detect(frames)


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_an_error_in_a_pipeline_thread_reaches_the_caller_and_nothing_is_written(
        sequence, tmp_path, mode):
    with pytest.raises(ReidsortError, match="frame 5"):
        track_source(sequence, Lazy(_FailingDetector), Lazy(HistogramEmbedder),
                     DeepSortTracker(min_confidence=0.3), tmp_path / "out",
                     RunOptions(mode=mode, chunk_size=3, video=True, **QUIET))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert _pipeline_threads() == []


def test_stopping_early_stops_every_pipeline_thread(sequence, tmp_path):
    result = _run(sequence, tmp_path / "out", mode="offline", chunk_size=4, max_frames=6,
                  video=False)
    assert result.timing.frames == 6 and not result.complete
    assert set(result.rows[:, 0].astype(int)) <= set(range(1, 7))
    assert _pipeline_threads() == []
    whole = _run(sequence, tmp_path / "whole", max_frames=24, video=False)
    assert whole.complete and whole.timing.frames == 24
