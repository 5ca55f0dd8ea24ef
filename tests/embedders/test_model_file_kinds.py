"""A TorchScript export works wherever a model is expected (``embedder=torch``), and a file of the
wrong kind (an ONNX model to ``embedder=torch``, a detector as an embedder, a TorchScript archive
to ``embedder=onnx`` or ``task=export``) is a one-line error saying what it is and what to pass."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, compose_config
from omegaconf import OmegaConf
from tiny_models import DEEPSORT_IMAGE_SIZE, tiny_module, write_checkpoint

from reidsort.embedders import build_embedder
from reidsort.embedders.onnx import OnnxEmbedder
from reidsort.embedders.torch import TorchEmbedder
from reidsort.export.file_kind import (
    ONNX_MODEL,
    TORCH_CHECKPOINT,
    TORCHSCRIPT,
    UNKNOWN,
    sniff_model_file,
)
from reidsort.export.onnx import export_onnx
from reidsort.export.torchscript import export_torchscript
from reidsort.tasks.export import export
from reidsort.utils.errors import ReidsortError

torch.set_num_threads(1)


def _yolo_models():
    """tests/detection/yolo_models.py (the tiny hand-made detectors), loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "yolo_models", REPO_ROOT / "tests" / "detection" / "yolo_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("kinds")
    ckpt = write_checkpoint(tiny_module("deepsort_cnn"), folder / "checkpoints" / "last.ckpt",
                            image_size=DEEPSORT_IMAGE_SIZE)
    # a YOLOX-shaped raw head: (1, 3549 candidate boxes, 4 + 1 + 80) at a 416 x 416 input
    detector = _yolo_models().constant_output_model(
        folder / "yolox.onnx", np.zeros((1, 3549, 85), np.float32), input_hw=(416, 416))
    return {
        "ckpt": ckpt,
        "torchscript": export_torchscript(ckpt, folder / "model.pt", num_crops=4),
        "onnx": export_onnx(ckpt, folder / "model.onnx", exporter="legacy", simplify=False,
                            num_crops=4),
        "detector": detector,
    }


def _crops(count: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (int(rng.integers(40, 200)), int(rng.integers(20, 90)), 3),
                         dtype=np.uint8) for _ in range(count)]


def test_file_kinds_are_told_from_the_bytes(models, tmp_path):
    assert sniff_model_file(models["ckpt"]) == TORCH_CHECKPOINT
    assert sniff_model_file(models["torchscript"]) == TORCHSCRIPT
    renamed = tmp_path / "model.ckpt"  # a suffix does not decide
    renamed.write_bytes(models["torchscript"].read_bytes())
    assert sniff_model_file(renamed) == TORCHSCRIPT
    assert sniff_model_file(models["onnx"]) == ONNX_MODEL
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    assert sniff_model_file(text) == UNKNOWN
    assert sniff_model_file(tmp_path / "missing.pt") == UNKNOWN


def test_torch_embedder_runs_a_torchscript_export_like_its_checkpoint(models):
    scripted = TorchEmbedder(models["torchscript"], max_batch=2, device="cpu")
    eager = TorchEmbedder(models["ckpt"], max_batch=2, device="cpu")
    assert scripted.spec == eager.spec and scripted.feature_dim == eager.feature_dim == 128
    crops = _crops()
    features = scripted.embed_crops(crops)
    assert features.shape == (5, 128)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert np.sum(features * eager.embed_crops(crops), axis=1).min() >= 0.9999
    assert np.max(features[0] @ features[1:].T) < 0.999  # distinct crops, distinct features
    # through the embedder config, as task=track builds it
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "embedder" / "torch.yaml")
    cfg.ckpt_path, cfg.device = str(models["torchscript"]), "cpu"
    np.testing.assert_allclose(build_embedder(cfg).embed_crops(crops), features, atol=1e-6)
    with pytest.raises(ReidsortError, match=r"model.pt: a TorchScript archive runs at its "
                                            r"exported input size \[128, 64\], not \[64, 32\]"):
        TorchEmbedder(models["torchscript"], image_size=[64, 32])


def test_an_onnx_model_given_to_the_torch_embedder_names_embedder_onnx(models):
    with pytest.raises(ReidsortError) as caught:
        TorchEmbedder(models["onnx"])
    message = str(caught.value)
    assert message == (f"{models['onnx']}: is an ONNX model, not a PyTorch checkpoint; pass it "
                       f"as embedder=onnx embedder.model_path={models['onnx']}")


@pytest.mark.parametrize("embedder", [OnnxEmbedder, TorchEmbedder])
def test_a_detector_given_as_an_embedder_says_so(models, embedder):
    with pytest.raises(ReidsortError, match=r"yolox.onnx: looks like an object detector "
                                            r"\(output \[1, 3549, 85\]: one row per candidate "
                                            r"box\), not a Re-ID model; pass it as "
                                            r"detector=yolo_onnx detector.model_path=") as caught:
        embedder(models["detector"])
    assert "\n" not in str(caught.value)


def test_the_real_yolox_detector_given_as_an_embedder_says_so(shared_data):
    path = shared_data / "models" / "yolox_nano.onnx"
    for embedder in (OnnxEmbedder, TorchEmbedder):
        with pytest.raises(ReidsortError, match=r"looks like an object detector \(output "
                                                r"\[1, 3549, 85\]"):
            embedder(path)


def test_pytorch_files_given_to_the_onnx_embedder_name_embedder_torch(models):
    with pytest.raises(ReidsortError, match=r"model.pt: is a TorchScript archive, not an ONNX "
                                            r"model; pass it as embedder=torch "
                                            r"embedder.ckpt_path=.*model.pt$"):
        OnnxEmbedder(models["torchscript"])
    with pytest.raises(ReidsortError, match=r"last.ckpt: is a PyTorch checkpoint, not an ONNX "
                                            r"model; pass it as embedder=torch .* \(or export "
                                            r"it: task=export ckpt_path="):
        OnnxEmbedder(models["ckpt"])


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_export_of_an_export_asks_for_the_training_checkpoint(models, kind, tmp_path):
    cfg = compose_config(["task=export", f"ckpt_path={models[kind]}"], tmp_path / "run")
    with pytest.raises(ReidsortError, match=r"is an exported (TorchScript archive|ONNX model), "
                                            r"not a task=train checkpoint; pass the .ckpt"):
        export(cfg)
