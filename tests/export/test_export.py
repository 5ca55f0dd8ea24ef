"""ONNX / TorchScript export: graph contract, metadata, verification, failure leaves no file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from torch import nn

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from reidsort.export.metadata import ModelMetadata, config_sha256
from reidsort.export.model import EmbeddingNet, load_checkpoint_net
from reidsort.export.onnx import (
    DEFAULT_OPSET,
    INPUT_NAME,
    OUTPUT_NAME,
    export_onnx,
    export_onnx_verified,
)
from reidsort.export.torchscript import export_torchscript, load_torchscript
from reidsort.export.verify import compare_features, verification_batch
from reidsort.utils.errors import ReidsortError
from tiny_models import (
    DEEPSORT_IMAGE_SIZE,
    TINY_IMAGE_SIZE,
    TinyBackbone,
    tiny_module,
    write_checkpoint,
)

torch.set_num_threads(1)
#: verification crops per export in these tests (the task's default is 16)
FEW_CROPS = 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train") / "checkpoints"
    return write_checkpoint(tiny_module("deepsort_cnn"), folder / "last.ckpt",
                            image_size=DEEPSORT_IMAGE_SIZE)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _torch_features(net: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(batch)).numpy()


def test_onnx_from_checkpoint_has_the_contract_and_the_metadata(checkpoint, tmp_path):
    out = export_onnx(checkpoint, tmp_path / "model.onnx", exporter="legacy", num_crops=FEW_CROPS)
    assert out == tmp_path / "model.onnx" and out.is_file()
    model = onnx.load(out)
    assert {o.domain: o.version for o in model.opset_import}[""] == DEFAULT_OPSET
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert graph_input.name == INPUT_NAME and dims == ["batch", 3, *DEEPSORT_IMAGE_SIZE]
    assert graph_output.name == OUTPUT_NAME

    props = {p.key: p.value for p in model.metadata_props}
    config = yaml.safe_load((checkpoint.parent / "config.yaml").read_text())
    assert props["architecture"] == "deepsort_cnn"
    assert json.loads(props["input_size"]) == list(DEEPSORT_IMAGE_SIZE)
    assert json.loads(props["mean"]) == list(IMAGENET_MEAN)
    assert json.loads(props["std"]) == list(IMAGENET_STD)
    assert props["channel_order"] == "RGB"
    assert props["feature_dim"] == "128" and props["feature"] == "after_bn"
    assert props["reidsort_version"] == "0.1.0"
    assert props["training_config_sha256"] == config_sha256(config)
    assert ModelMetadata.from_props(props).input_size == DEEPSORT_IMAGE_SIZE

    # dynamic batch, L2-normalised rows, the module's own retrieval embedding
    module = tiny_module("deepsort_cnn")
    session = _session(out)
    for batch_size in (1, 3):
        batch = np.random.default_rng(batch_size).normal(
            size=(batch_size, 3, *DEEPSORT_IMAGE_SIZE)).astype(np.float32)
        features = session.run(None, {INPUT_NAME: batch})[0]
        assert features.shape == (batch_size, 128)
        np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
        expected = module.embed(torch.from_numpy(batch)).numpy()
        assert compare_features(expected, features).min_cosine > 0.99999


def test_osnet_exports_and_matches_pytorch(tmp_path):
    module = tiny_module("osnet_x0_25")
    result = export_onnx_verified(module, tmp_path / "osnet.onnx", image_size=TINY_IMAGE_SIZE,
                                  exporter="legacy", num_crops=FEW_CROPS)
    assert result.verification is not None and result.verification.min_cosine >= 0.9999
    assert result.metadata.architecture == "OSNet" and result.metadata.feature_dim == 512
    session = _session(result.path)
    assert session.get_inputs()[0].shape == ["batch", 3, *TINY_IMAGE_SIZE]
    batch = verification_batch(result.metadata.preprocess_spec(), 3, seed=4)
    expected = module.embed(torch.from_numpy(batch)).numpy()
    assert compare_features(expected, session.run(None, {INPUT_NAME: batch})[0]).min_cosine \
        > 0.99999


def test_default_dynamo_exporter_gives_a_dynamic_batch(tmp_path):
    pytest.importorskip("onnxscript")
    result = export_onnx_verified(EmbeddingNet(TinyBackbone()), tmp_path / "tiny.onnx",
                                  image_size=TINY_IMAGE_SIZE, num_crops=FEW_CROPS)
    assert result.verification is not None and result.verification.min_cosine >= 0.9999
    session = _session(result.path)
    assert session.get_inputs()[0].shape == ["batch", 3, *TINY_IMAGE_SIZE]
    for batch_size in (1, 7):
        batch = np.zeros((batch_size, 3, *TINY_IMAGE_SIZE), np.float32)
        assert session.run(None, {INPUT_NAME: batch})[0].shape == (batch_size, 16)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("REIDSORT_SLOW_TESTS"), reason="slow: REIDSORT_SLOW_TESTS=1")
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize(("name", "kwargs", "size"), [
    ("osnet_x0_25", {}, TINY_IMAGE_SIZE),
    ("osnet_x0_25", {"ibn": True}, TINY_IMAGE_SIZE),
    ("resnet18", {}, TINY_IMAGE_SIZE),
    ("deepsort_cnn", {}, DEEPSORT_IMAGE_SIZE),
    ("deepsort_cnn", {"variant": "zqpei"}, DEEPSORT_IMAGE_SIZE),
])
def test_every_backbone_family_exports_with_both_exporters(name, kwargs, size, exporter,
                                                           tmp_path):
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    from reidsort.reid.backbones import build_backbone

    net = EmbeddingNet(build_backbone(name, **kwargs))
    result = export_onnx_verified(net, tmp_path / "m.onnx", image_size=size, exporter=exporter,
                                  num_crops=FEW_CROPS)
    assert result.verification is not None and result.verification.min_cosine >= 0.9999


def test_simplification_shrinks_the_graph_and_keeps_the_numbers(tmp_path):
    net = EmbeddingNet(TinyBackbone())
    kwargs = {"image_size": TINY_IMAGE_SIZE, "exporter": "legacy", "num_crops": FEW_CROPS}
    plain = export_onnx(net, tmp_path / "plain.onnx", simplify=False, **kwargs)
    slim = export_onnx(net, tmp_path / "slim.onnx", simplify=True, **kwargs)
    ops = [node.op_type for node in onnx.load(plain).graph.node]
    slim_ops = [node.op_type for node in onnx.load(slim).graph.node]
    assert "Constant" in ops and "Constant" not in slim_ops  # folded into initialisers
    assert len(slim_ops) < len(ops)
    batch = verification_batch(
        ModelMetadata(input_size=TINY_IMAGE_SIZE, feature_dim=16).preprocess_spec(), 4)
    a = _session(plain).run(None, {INPUT_NAME: batch})[0]
    b = _session(slim).run(None, {INPUT_NAME: batch})[0]
    assert compare_features(a, b).min_cosine > 0.99999


class _TraceTrap(nn.Module):
    """Data-dependent Python control flow: tracing bakes in the branch of the example input
    (zeros), so the exported graph silently differs from eager PyTorch on real crops."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = TinyBackbone()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        if bool(images.abs().sum() > 0):
            features = features.flip(1)
        return features


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_that_differs_from_pytorch_fails_and_leaves_no_file(fmt, tmp_path):
    out = tmp_path / f"trap.{fmt}"
    export = export_onnx if fmt == "onnx" else export_torchscript
    kwargs = {"exporter": "legacy"} if fmt == "onnx" else {}
    with pytest.raises(ReidsortError, match=r"differs from PyTorch: .*min cosine"):
        export(_TraceTrap().eval(), out, image_size=TINY_IMAGE_SIZE, num_crops=FEW_CROPS,
               **kwargs)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_verification_threshold_is_enforced(tmp_path):
    net = EmbeddingNet(TinyBackbone())
    with pytest.raises(ReidsortError, match=r"needs min cosine >= 1.01"):
        export_onnx(net, tmp_path / "m.onnx", image_size=TINY_IMAGE_SIZE, exporter="legacy",
                    min_cosine=1.01, num_crops=FEW_CROPS)
    assert list(tmp_path.iterdir()) == []


def test_torchscript_round_trip_with_metadata(checkpoint, tmp_path):
    out = export_torchscript(checkpoint, tmp_path / "model.pt", num_crops=FEW_CROPS)
    scripted, metadata = load_torchscript(out)
    assert metadata.architecture == "deepsort_cnn" and metadata.input_size == DEEPSORT_IMAGE_SIZE
    batch = verification_batch(metadata.preprocess_spec(), num_crops=3, seed=1)
    with torch.no_grad():
        features = scripted(torch.from_numpy(batch)).numpy()
    expected = tiny_module("deepsort_cnn").embed(torch.from_numpy(batch)).numpy()
    assert features.shape == (3, 128)
    assert compare_features(expected, features).min_cosine > 0.99999


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_loading_errors(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint_net(tmp_path / "nope.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(ValueError, match=r"corrupt.ckpt: not a readable PyTorch weights file"):
        load_checkpoint_net(corrupt)
    weights_only = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, weights_only)
    with pytest.raises(ReidsortError, match=r"weights.pth: not a Lightning checkpoint"):
        load_checkpoint_net(weights_only)

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    unknown = tmp_path / "unknown" / "last.ckpt"
    unknown.parent.mkdir()
    state["hyper_parameters"]["model"]["backbone"]["_target_"] = "mylib.models.SuperNet"
    torch.save(state, unknown)
    with pytest.raises(ReidsortError, match=r"unknown architecture 'mylib.models.SuperNet'"):
        load_checkpoint_net(unknown)

    # another architecture's weights under a known name: the keys are listed
    swapped = tmp_path / "swapped" / "last.ckpt"
    swapped.parent.mkdir()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["hyper_parameters"]["model"]["backbone"]["variant"] = "zqpei"
    torch.save(state, swapped)
    with pytest.raises(ReidsortError, match=r"weights do not fit its architecture: \d+ missing"):
        load_checkpoint_net(swapped, image_size=DEEPSORT_IMAGE_SIZE)

    # no config.yaml beside it: the input size must be given
    bare = tmp_path / "bare" / "last.ckpt"
    bare.parent.mkdir()
    bare.write_bytes(checkpoint.read_bytes())
    with pytest.raises(ReidsortError, match=r"no training config .* task.image_size"):
        load_checkpoint_net(bare)
    assert load_checkpoint_net(bare, image_size=(96, 48)).metadata.input_size == (96, 48)


def test_before_bn_checkpoints_export_the_pooled_feature(tmp_path):
    module = tiny_module("deepsort_cnn")
    module.hparams.eval_feature = "before_bn"
    path = write_checkpoint(module, tmp_path / "ckpt" / "last.ckpt",
                            image_size=DEEPSORT_IMAGE_SIZE)
    loaded = load_checkpoint_net(path)
    assert loaded.metadata.feature == "before_bn"
    assert isinstance(loaded.net.neck, nn.Identity)
    images = torch.rand(2, 3, *DEEPSORT_IMAGE_SIZE)
    assert torch.allclose(loaded.net(images), module.embed(images), atol=1e-6)
