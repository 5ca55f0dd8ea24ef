"""Embedders: ONNX == PyTorch through the training eval transform, torch-free ONNX path,
known answers on model-free graphs, batching, box clipping, configs and bad models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from onnx import TensorProto, helper

from conftest import REPO_ROOT
from reidsort.data.preprocess import PreprocessSpec, preprocess_crops
from reidsort.data.synthetic import CameraStyle, Facing, PersonAppearance, draw_person
from reidsort.data.synthetic.scene import render_background
from reidsort.data.transforms import eval_transform
from reidsort.embedders import build_embedder
from reidsort.embedders.base import Embedder, clip_boxes_xyxy, crop_boxes
from reidsort.embedders.histogram import HistogramEmbedder
from reidsort.embedders.onnx import CPU_PROVIDER, CUDA_PROVIDER, OnnxEmbedder, auto_providers
from reidsort.embedders.torch import TorchEmbedder
from reidsort.export.metadata import ModelMetadata
from reidsort.export.onnx import export_onnx
from reidsort.reid.histogram import color_histogram_features
from reidsort.utils.errors import ReidsortError
from tiny_models import DEEPSORT_IMAGE_SIZE, tiny_module, write_checkpoint

torch.set_num_threads(1)

FRAME_HW = (360, 480)
#: integer boxes (x1, y1, x2, y2); the last two stick out of the frame on the right / top
BOXES_XYXY = np.array([[40, 60, 100, 230], [150, 40, 230, 300], [300, 100, 350, 220],
                       [430, 150, 520, 340], [200, -30, 260, 120]], dtype=np.float64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    module = tiny_module("deepsort_cnn")
    ckpt = write_checkpoint(module, folder / "checkpoints" / "last.ckpt",
                            image_size=DEEPSORT_IMAGE_SIZE)
    onnx_path = export_onnx(ckpt, folder / "model.onnx", exporter="legacy", num_crops=4)
    return module, ckpt, onnx_path


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = render_background(CameraStyle.sample(1), rng, *FRAME_HW)
    for identity, box in enumerate(BOXES_XYXY):
        draw_person(image, PersonAppearance.sample(identity), box, phase=0.3 * identity,
                    facing=Facing(identity % 4))
    return image


def _expected_crops(frame: np.ndarray) -> list[np.ndarray]:
    """The crops by hand: the boxes clipped to the 480 x 360 frame."""
    clipped = [(40, 60, 100, 230), (150, 40, 230, 300), (300, 100, 350, 220),
               (430, 150, 480, 340), (200, 0, 260, 120)]
    return [frame[y1:y2, x1:x2] for x1, y1, x2, y2 in clipped]


def test_onnx_embedder_equals_pytorch_through_the_training_eval_transform(exported, frame):
    module, _, onnx_path = exported
    embedder = OnnxEmbedder(onnx_path, max_batch=4, num_threads=1)
    assert isinstance(embedder, Embedder)
    features = embedder.embed(frame, BOXES_XYXY)
    assert features.shape == (5, 128) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)

    # the training side: RGB uint8 tensors through eval_transform, then the LightningModule
    transform = eval_transform(DEEPSORT_IMAGE_SIZE)
    batch = torch.stack([
        transform(torch.from_numpy(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)).permute(2, 0, 1))
        for crop in _expected_crops(frame)
    ])
    reference = module.embed(batch).numpy()
    cosine = np.sum(features * reference, axis=1)
    assert cosine.min() >= 0.9999
    # distinct people get distinct features (the comparison is not trivially satisfied)
    assert np.max(features[0] @ features[1:].T) < 0.999


def test_torch_embedder_agrees_with_onnx(exported, frame):
    _, ckpt, onnx_path = exported
    torch_features = TorchEmbedder(ckpt, max_batch=3, device="cpu").embed(frame, BOXES_XYXY)
    onnx_features = OnnxEmbedder(onnx_path).embed(frame, BOXES_XYXY)
    assert np.sum(torch_features * onnx_features, axis=1).min() >= 0.9999


def test_batching_and_empty_input(exported, frame):
    _, _, onnx_path = exported
    one_by_one = OnnxEmbedder(onnx_path, max_batch=1).embed(frame, BOXES_XYXY)
    together = OnnxEmbedder(onnx_path, max_batch=64).embed(frame, BOXES_XYXY)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    embedder = OnnxEmbedder(onnx_path)
    for empty in (np.zeros((0, 4)), np.zeros(0), []):
        out = embedder.embed(frame, empty)
        assert out.shape == (0, 128) and out.dtype == np.float32
    assert embedder.embed_crops([]).shape == (0, 128)
    np.testing.assert_allclose(embedder.embed_crops(_expected_crops(frame)), together, atol=1e-5)


def test_onnx_embedder_imports_and_runs_without_torch(exported, frame, tmp_path):
    _, _, onnx_path = exported
    frame_path = tmp_path / "frame.npy"
    np.save(frame_path, frame)
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import numpy as np\n"
        "import reidsort.tracking\n"
        "from reidsort.embedders.onnx import OnnxEmbedder\n"
        "from reidsort.embedders.histogram import HistogramEmbedder\n"
        "frame = np.load(%r)\n"
        "features = OnnxEmbedder(%r).embed(frame, np.array([[10, 10, 60, 150]]))\n"
        "HistogramEmbedder().embed(frame, np.array([[10, 10, 60, 150]]))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'torchvision', 'lightning'))\n"
        "print(features.shape, ','.join(heavy))\n"
    ) % (str(REPO_ROOT / "src"), str(frame_path), str(onnx_path))
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True)
    assert completed.stdout.strip() == "(1, 128)"


# ------------------------------------------------------------ model-free graphs, known answers
def _pooling_model(path: Path, batch: int | str = "batch", channels: int = 3,
                   size: tuple[int, int] = (8, 4), props: dict[str, str] | None = None,
                   rank: int = 4) -> Path:
    """ONNX graph: features = per-channel mean of the input (GlobalAveragePool + Flatten)."""
    shape = [batch, channels, *size] if rank == 4 else [batch, channels * size[0] * size[1]]
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["features"])]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, channels])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if props is not None:
        helper.set_model_props(model, props)
    onnx.save(model, path)
    return path


def _metadata(size=(8, 4), **changes) -> dict[str, str]:
    return ModelMetadata(input_size=size, feature_dim=3, architecture="pool", **changes).to_props()


def test_known_answer_on_a_pooling_graph(tmp_path, frame):
    path = _pooling_model(tmp_path / "pool.onnx", props=_metadata())
    embedder = OnnxEmbedder(path, max_batch=2)
    assert embedder.feature_dim == 3 and embedder.spec.size_hw == (8, 4)
    crops = crop_boxes(frame, BOXES_XYXY)
    expected = preprocess_crops(crops, PreprocessSpec((8, 4)), "BGR").mean(axis=(2, 3))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(embedder.embed(frame, BOXES_XYXY), expected, atol=1e-5)


def test_fixed_batch_models_are_padded(tmp_path, frame):
    path = _pooling_model(tmp_path / "fixed.onnx", batch=4, props=_metadata())
    embedder = OnnxEmbedder(path, max_batch=32)
    assert embedder.max_batch == 4
    dynamic = OnnxEmbedder(_pooling_model(tmp_path / "dynamic.onnx", props=_metadata()))
    np.testing.assert_allclose(embedder.embed(frame, BOXES_XYXY),
                               dynamic.embed(frame, BOXES_XYXY), atol=1e-6)


def test_foreign_models_need_the_preprocessing_spelled_out(tmp_path, frame):
    path = _pooling_model(tmp_path / "foreign.onnx")
    with pytest.raises(ReidsortError, match=r"no reidsort metadata \(missing mean, std, "
                                            r"channel_order\)"):
        OnnxEmbedder(path)
    embedder = OnnxEmbedder(path, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5],
                            channel_order="BGR")
    assert embedder.spec.size_hw == (8, 4)  # from the graph's static input shape
    crop = np.full((20, 10, 3), (0, 255, 51), dtype=np.uint8)  # B, G, R -> -1, 1, -0.6
    expected = np.array([-1.0, 1.0, -0.6]) / np.linalg.norm([-1.0, 1.0, -0.6])
    np.testing.assert_allclose(embedder.embed_crops([crop])[0], expected, atol=1e-5)


def test_bad_models_are_clear_errors(tmp_path):
    with pytest.raises(ReidsortError, match=r"ONNX model not found: .*nope.onnx"):
        OnnxEmbedder(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ReidsortError, match=r"corrupt.onnx: not a loadable ONNX model"):
        OnnxEmbedder(corrupt)
    gray = _pooling_model(tmp_path / "gray.onnx", channels=1, props=_metadata())
    with pytest.raises(ReidsortError, match=r"expected N x 3 x H x W"):
        OnnxEmbedder(gray)
    flat = _pooling_model(tmp_path / "flat.onnx", rank=2, props=_metadata())
    with pytest.raises(ReidsortError, match=r"expected N x 3 x H x W"):
        OnnxEmbedder(flat)
    mismatch = _pooling_model(tmp_path / "mismatch.onnx", props=_metadata(size=(16, 8)))
    with pytest.raises(ReidsortError, match=r"input height is 8 in the graph but 16 in the"):
        OnnxEmbedder(mismatch)
    good = _pooling_model(tmp_path / "good.onnx", props=_metadata())
    with pytest.raises(ReidsortError, match="providers not available here"):
        OnnxEmbedder(good, providers=["NoSuchExecutionProvider"])
    with pytest.raises(ReidsortError, match="graph_optimization must be one of"):
        OnnxEmbedder(good, graph_optimization="max")
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        OnnxEmbedder(good, max_batch=0)
    with pytest.raises(ReidsortError, match="model_path is not set"):
        OnnxEmbedder(None)


def test_cuda_is_chosen_when_onnxruntime_has_it(monkeypatch):
    import onnxruntime

    assert auto_providers() == ([CUDA_PROVIDER, CPU_PROVIDER]
                                if CUDA_PROVIDER in onnxruntime.get_available_providers()
                                else [CPU_PROVIDER])
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    assert auto_providers() == [CUDA_PROVIDER, CPU_PROVIDER]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU_PROVIDER])
    assert auto_providers() == [CPU_PROVIDER]


# ------------------------------------------------------------------------- boxes, histogram
def test_box_clipping_known_answers():
    boxes = np.array([[-5.0, -5.0, 10.4, 20.6],  # partly outside, fractional
                      [95.0, 10.0, 120.0, 30.0],  # sticks out on the right
                      [200.0, 70.0, 260.0, 90.0],  # wholly outside: the nearest pixel strip
                      [3.2, 3.2, 3.4, 3.4]])  # smaller than a pixel: still one pixel
    np.testing.assert_array_equal(clip_boxes_xyxy(boxes, height=50, width=100),
                                  [[0, 0, 10, 21], [95, 10, 100, 30], [99, 49, 100, 50],
                                   [3, 3, 4, 4]])
    assert clip_boxes_xyxy(np.zeros((0, 4)), 50, 100).shape == (0, 4)
    with pytest.raises(ValueError, match="row 1 is not finite"):
        clip_boxes_xyxy(np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]]), 50, 100)
    with pytest.raises(ValueError, match="row 0 has x2 < x1"):
        clip_boxes_xyxy(np.array([[5, 0, 1, 1]]), 50, 100)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        clip_boxes_xyxy(np.zeros((2, 5)), 50, 100)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        crop_boxes(np.zeros((50, 100), np.uint8), boxes)


def test_histogram_embedder_is_the_histogram_baseline_on_clipped_crops(frame):
    embedder = HistogramEmbedder(max_batch=2)
    features = embedder.embed(frame, BOXES_XYXY)
    expected = color_histogram_features(_expected_crops(frame))
    assert embedder.feature_dim == 6 * 8 * 4 * 4 == features.shape[1]
    np.testing.assert_allclose(features, expected, atol=1e-6)
    assert embedder.embed(frame, np.zeros((0, 4))).shape == (0, embedder.feature_dim)
    with pytest.raises(ValueError, match="bins"):
        HistogramEmbedder(bins=(8, 4))


# ------------------------------------------------------------------------------------ configs
def _embedder_config(name: str, **values):
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "embedder" / f"{name}.yaml")
    for key, value in values.items():
        cfg[key] = value
    return cfg


def test_every_embedder_config_builds(exported, frame):
    _, ckpt, onnx_path = exported
    built = {
        "onnx": instantiate(_embedder_config("onnx", model_path=str(onnx_path))),
        "torch": build_embedder(_embedder_config("torch", ckpt_path=str(ckpt), device="cpu")),
        "histogram": build_embedder(_embedder_config("histogram")),
    }
    assert isinstance(built["onnx"], OnnxEmbedder) and built["onnx"].max_batch == 32
    for embedder in built.values():
        assert isinstance(embedder, Embedder)
        assert embedder.embed(frame, BOXES_XYXY[:2]).shape == (2, embedder.feature_dim)
    # build_embedder passes constructor errors through as themselves (one CLI line), where
    # a bare instantiate wraps them in Hydra's InstantiationException
    with pytest.raises(ReidsortError, match="embedder.model_path is not set"):
        build_embedder(_embedder_config("onnx"))
    with pytest.raises(ReidsortError, match="embedder.ckpt_path is not set"):
        build_embedder(_embedder_config("torch"))
    with pytest.raises(ReidsortError, match="ONNX model not found"):
        build_embedder(_embedder_config("onnx", model_path="/nonexistent/model.onnx"))
