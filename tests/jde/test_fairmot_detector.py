"""detector=fairmot: preprocessing and decoding back to frame pixels (stub maps), checkpoint and
ONNX giving the same detections and unit embeddings, the torch-free ONNX path, clear errors, and
``task=track detector=fairmot`` end to end (no embedder, embeddings cached per model file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import REPO_ROOT, compose_config
from jde_samples import TINY_INPUT_HW, export_tiny_onnx, tiny_net, write_jde_checkpoint
from onnx import TensorProto, helper

from reidsort.data.synthetic.mot import ensure_synthetic_mot
from reidsort.detection.base import Detections, PixelDetector
from reidsort.detection.fairmot import FairMOTDetector
from reidsort.pipeline import CacheSpec, FeatureCache, Lazy, RunOptions, track_source
from reidsort.tasks.track import track
from reidsort.utils.errors import ReidsortError
from reidsort.video.sources import MotSequenceSource

torch.set_num_threads(1)
#: every cell scores sigmoid(2) (exact ties: kept in flat-index order), boxes 4 x 8 map units
HEAT_LOGIT, SIZE = 2.0, (4.0, 8.0)
FRAME_HW = (120, 160)
SYNTHETIC = {"name": "FMOT", "num_frames": 12, "width": 320, "height": 240, "num_people": 4,
             "num_pillars": 1, "frame_rate": 10.0, "seed": 5}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fairmot")
    net = tiny_net(seed=4, heat_bias=HEAT_LOGIT, size_bias=SIZE)
    return {"ckpt": write_jde_checkpoint(net, folder / "checkpoints" / "last.ckpt"),
            "onnx": export_tiny_onnx(net, folder / "fairmot.onnx")}


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)


class StubMaps:
    """A backend returning hand-made maps for a 64 x 96 input (maps 16 x 24) and recording the
    input batch it got."""

    fixed_batch = None

    def __init__(self, info, embedding_dim: int = 16) -> None:
        self.info = info
        h, w = TINY_INPUT_HW[0] // 4, TINY_INPUT_HW[1] // 4
        self.heatmap = np.zeros((1, 1, h, w), np.float32)
        self.heatmap[0, 0, 5, 7] = 0.9   # the detection
        self.heatmap[0, 0, 5, 8] = 0.8   # its neighbour: not a 3x3 maximum
        self.heatmap[0, 0, 2, 2] = 0.6   # a second detection
        self.heatmap[0, 0, 12, 20] = 0.35  # a peak at most conf_thres 0.4: dropped
        self.size = np.zeros((1, 2, h, w), np.float32)
        self.size[0, :, 5, 7] = (4.0, 8.0)
        self.size[0, :, 2, 2] = (2.0, 2.0)
        self.offset = np.zeros((1, 2, h, w), np.float32)
        self.offset[0, :, 5, 7] = (0.5, 0.25)
        self.embedding = np.random.default_rng(0).normal(size=(1, embedding_dim, h, w)).astype(
            np.float32)
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch)
        n = len(batch)
        return [np.repeat(m, n, axis=0) for m in (self.heatmap, self.size, self.offset,
                                                  self.embedding)]


def test_decoded_boxes_are_in_frame_pixels_and_the_input_is_letterboxed_like_training(models):
    detector = FairMOTDetector(models["onnx"])
    stub = detector.backend = StubMaps(detector.info)
    bgr = np.empty((*FRAME_HW, 3), np.uint8)
    bgr[:] = (10, 100, 200)
    (dets,) = detector.detect_images([bgr])

    # letterbox 120x160 -> 64x96: scale 64/120, resized width round(160 * 64/120) = 85,
    # centred: 5 grey columns on the left
    scale, pad_x = 64 / 120, 5
    batch = stub.batches[0]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(batch[0, :, 30, 50], (np.array([200, 100, 10]) / 255 - mean) / std,
                               atol=1e-5)  # RGB, /255, ImageNet mean/std
    np.testing.assert_allclose(batch[0, :, 30, 2], (127.5 / 255 - mean) / std, atol=1e-5)

    # peak (5, 7): centre ((7 + 0.5) * 4, (5 + 0.25) * 4) = (30, 21), size 16 x 32 input pixels;
    # peak (2, 2): centre (8, 8), size 8 x 8
    expected_input = np.array([[22.0, 5.0, 38.0, 37.0], [4.0, 4.0, 12.0, 12.0]])
    expected = expected_input.copy()
    expected[:, 0::2] = (expected[:, 0::2] - pad_x) / scale
    expected[:, 1::2] = expected[:, 1::2] / scale
    np.testing.assert_allclose(dets.xyxy, expected, atol=1e-4)
    np.testing.assert_allclose(dets.scores, [0.9, 0.6], atol=1e-6)
    assert dets.class_ids.tolist() == [0, 0]
    vector = stub.embedding[0, :, 5, 7]
    np.testing.assert_allclose(dets.embeddings[0], vector / np.linalg.norm(vector), atol=1e-6)


def test_checkpoint_and_onnx_give_the_same_detections_and_unit_embeddings(models):
    frames = [_frame(0), _frame(1), _frame(2)]
    results = {}
    for kind in ("ckpt", "onnx"):
        detector = FairMOTDetector(models[kind], top_k=6, batch_size=2, device="cpu")
        results[kind] = detector.detect_images(frames)
        assert detector.produces_embeddings and isinstance(detector, PixelDetector)
    for from_ckpt, from_onnx in zip(results["ckpt"], results["onnx"]):
        assert isinstance(from_onnx, Detections)
        assert from_onnx.tracker_input().shape == (6, 6) and from_onnx.embeddings.shape == (6, 16)
        np.testing.assert_allclose(np.linalg.norm(from_onnx.embeddings, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(from_onnx.scores, 1 / (1 + np.exp(-HEAT_LOGIT)), atol=1e-6)
        np.testing.assert_allclose(from_onnx.xyxy, from_ckpt.xyxy, atol=1e-3)
        np.testing.assert_allclose(from_onnx.embeddings, from_ckpt.embeddings, atol=1e-4)
        # the size head says 4 x 8 map units = 16 x 32 input pixels = 30 x 60 frame pixels
        sides = from_onnx.xyxy[:, 2:] - from_onnx.xyxy[:, :2]
        np.testing.assert_allclose(sides, np.tile([16 / (64 / 120), 32 / (64 / 120)], (6, 1)),
                                   atol=1e-3)
    # above every score: nothing, with (0, D) embeddings
    (empty,) = FairMOTDetector(models["onnx"], conf_thres=0.9).detect_images([_frame()])
    assert len(empty) == 0 and empty.embeddings.shape == (0, 16)


def test_the_onnx_path_never_imports_torch(models):
    code = (
        "import sys, numpy as np\n"
        "from reidsort.detection.fairmot import FairMOTDetector\n"
        f"detector = FairMOTDetector({str(models['onnx'])!r}, top_k=6)\n"
        f"(dets,) = detector.detect_images([np.full({FRAME_HW + (3,)}, 90, np.uint8)])\n"
        "assert dets.xyxy.shape == (6, 4) and dets.embeddings.shape == (6, 16), dets\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('torch-free')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120, check=False)
    assert done.returncode == 0 and "torch-free" in done.stdout, done.stderr[-2000:]


def _onnx_with(path: Path, props: dict[str, str], output_shape) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, output_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])],
                                                "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def test_other_models_are_one_line_errors(tmp_path):
    reid = _onnx_with(tmp_path / "osnet.onnx", {"input_size": "[256, 128]", "feature_dim": "512"},
                      [1, 512])
    with pytest.raises(ReidsortError, match="is a Re-ID embedder export.*embedder=onnx"):
        FairMOTDetector(reid)
    yolo = _onnx_with(tmp_path / "yolox.onnx", {}, [1, 3549, 85])
    with pytest.raises(ReidsortError, match="looks like a YOLO detector.*detector=yolo_onnx"):
        FairMOTDetector(yolo)
    other = _onnx_with(tmp_path / "other.onnx", {}, [1, 4])
    with pytest.raises(ReidsortError, match="not a reidsort FairMOT export.*task=export"):
        FairMOTDetector(other)
    npz = tmp_path / "features.npz"
    np.savez(npz, a=np.zeros(1))
    with pytest.raises(ReidsortError, match="is a NumPy .npz archive, not a FairMOT model"):
        FairMOTDetector(npz)
    with pytest.raises(ReidsortError, match="needs detector.ckpt_path"):
        FairMOTDetector(None)
    with pytest.raises(ReidsortError, match="FairMOT model not found"):
        FairMOTDetector(tmp_path / "missing.onnx")


class _SpyTracker:
    """Records what the runner hands the tracker."""

    def __init__(self):
        self.embeddings = []

    def reset(self):
        self.embeddings = []

    def update(self, dets, embeddings=None, **_):
        self.embeddings.append((dets.copy(), None if embeddings is None else embeddings.copy()))
        return np.zeros((0, 8))


class _EmbeddingDetector(PixelDetector):
    """Two boxes per frame, one of them outside the frame; embedding column 0 = the box's x1."""

    produces_embeddings = True

    def detect_images(self, images):
        out = []
        for _ in images:
            xyxy = np.array([[10.0, 10.0, 40.0, 80.0], [-90.0, 10.0, -50.0, 80.0]])
            embeddings = np.zeros((2, 4), np.float32)
            embeddings[:, 0] = xyxy[:, 0]
            out.append(Detections(xyxy, [0.9, 0.8], [0, 0], embeddings=embeddings))
        return out


def test_the_runner_hands_detector_embeddings_to_the_tracker_clipped_and_cached(tmp_path):
    source = MotSequenceSource(ensure_synthetic_mot(tmp_path / "data", **{**SYNTHETIC,
                                                                          "num_frames": 4}))
    cache = CacheSpec(FeatureCache(tmp_path / "cache"), "det-key", "emb-key")
    options = RunOptions(progress=False, video=False, clip_boxes=True)
    runs = []
    for _ in range(2):
        tracker = _SpyTracker()
        result = track_source(source, Lazy(_EmbeddingDetector), None, tracker, tmp_path / "out",
                              options, cache, detector_embeddings=True)
        runs.append((result, tracker.embeddings))
    for result, seen in runs:
        assert len(seen) == 4
        for dets, embeddings in seen:  # the box outside the frame went, with its embedding
            assert len(dets) == 1 and embeddings.shape == (1, 4) and embeddings[0, 0] == 10.0
    assert runs[0][0].cache_hits == {"detections": False, "embeddings": False}
    assert runs[1][0].cache_hits == {"detections": True, "embeddings": True}
    with pytest.raises(ValueError, match="takes no embedder"):
        track_source(source, Lazy(_EmbeddingDetector), Lazy(_EmbeddingDetector), _SpyTracker(),
                     tmp_path / "out", options, None, detector_embeddings=True)


def test_track_task_with_the_onnx_runs_no_embedder_and_caches_per_model(models, tmp_path,
                                                                        monkeypatch, capsys):
    def no_embedder(*args, **kwargs):
        raise AssertionError("task=track built an embedder for detector=fairmot")

    monkeypatch.setattr("reidsort.embedders.histogram.HistogramEmbedder.__init__", no_embedder)
    overrides = ["task=track", "detector=fairmot", "detector.top_k=5", "task.progress=false",
                 "task.video=false", f"paths.data_dir={tmp_path / 'data'}",
                 *(f"task.synthetic.{k}={v}" for k, v in SYNTHETIC.items())]
    cfg = compose_config([*overrides, f"detector.ckpt_path={models['onnx']}"], tmp_path / "run")
    metrics = track(cfg)
    out = capsys.readouterr().out
    assert "embeddings from the detector (fairmot): embedder=histogram is not used" in out
    # no source: the synthetic sequence, motion only and with FairMOT's embeddings
    assert metrics["track/frames"] == metrics["none/track/frames"] == 12
    assert metrics["track/detections"] == 12 * 5
    results = tmp_path / "run" / "fairmot" / "FMOT" / "FMOT.txt"
    assert results.is_file() and results.read_text().strip()
    assert "| embedder=fairmot |" in (tmp_path / "run" / "embedder_comparison.md").read_text()
    cache = tmp_path / "data" / "track_cache"
    assert len(list(cache.glob("FMOT-det-*.npz"))) == 1
    assert len(list(cache.glob("FMOT-emb-*.npz"))) == 1

    # same model again: detections and embeddings from the cache
    track(compose_config([*overrides, f"detector.ckpt_path={models['onnx']}"], tmp_path / "r2"))
    assert "(detections and embeddings from cache)" in capsys.readouterr().out
    # the checkpoint (another model file): its own cache entries, never the ONNX file's
    track(compose_config([*overrides, f"detector.ckpt_path={models['ckpt']}",
                          "task.compare_without_embedder=false"], tmp_path / "r3"))
    assert "from cache" not in capsys.readouterr().out
    assert len(list(cache.glob("FMOT-det-*.npz"))) == 2
    assert len(list(cache.glob("FMOT-emb-*.npz"))) == 2
