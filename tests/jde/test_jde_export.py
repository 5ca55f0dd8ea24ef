"""FairMOT ONNX export: the graph (sigmoid heatmap, four outputs, dynamic batch), its metadata,
the verification against PyTorch, and ``task=export ckpt_path=<task=jde checkpoint>``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import compose_config
from jde_samples import TINY_INPUT_HW, tiny_info, tiny_net, write_jde_checkpoint

import reidsort
import reidsort.jde.export as jde_export
from reidsort.jde.checkpoint import JDEModelInfo
from reidsort.jde.export import OUTPUT_NAMES, JDEInference, export_jde_onnx
from reidsort.tasks.export import export
from reidsort.utils.errors import ReidsortError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("jde") / "checkpoints"
    return write_jde_checkpoint(tiny_net(seed=2), folder / "last.ckpt")


def _run(path: Path, images: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(list(OUTPUT_NAMES), {"images": images})


def test_export_matches_pytorch_at_any_batch_and_carries_the_metadata(checkpoint, tmp_path):
    result = export_jde_onnx(checkpoint, tmp_path / "fairmot.onnx", exporter="legacy")
    assert result.path.is_file() and result.verification is not None
    assert result.verification.max_abs_diff < 1e-4 and result.verification.min_cosine >= 0.9999
    assert set(result.verification.per_output) == set(OUTPUT_NAMES)

    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert props["kind"] == "fairmot" and props["source"] == "last.ckpt"
    assert props["reidsort_version"] == reidsort.__version__
    assert JDEModelInfo.from_props(props) == tiny_info(tiny_net())

    net = JDEInference(tiny_net(seed=2))
    images = np.random.default_rng(1).normal(size=(3, 3, *TINY_INPUT_HW)).astype(np.float32)
    got = _run(result.path, images)  # batch 3: not the example batch of the export
    with torch.no_grad():
        expected = [t.numpy() for t in net(torch.from_numpy(images))]
    for name, a, b in zip(OUTPUT_NAMES, expected, got):
        np.testing.assert_allclose(b, a, atol=1e-4, err_msg=name)
    heatmap = got[0]
    assert heatmap.shape == (3, 1, 16, 24) and 0 < heatmap.min() and heatmap.max() < 1  # sigmoid


def test_default_dynamo_exporter_gives_the_same_graph(tmp_path):
    net = tiny_net(seed=3)
    result = export_jde_onnx((net, tiny_info(net)), tmp_path / "d.onnx")  # dynamo, simplified
    model = onnx.load(str(result.path))
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    assert all(o.type.tensor_type.shape.dim[0].dim_param for o in model.graph.output)
    assert result.verification.min_cosine >= 0.9999


def test_a_runtime_that_disagrees_fails_and_writes_nothing(checkpoint, tmp_path, monkeypatch):
    real_session = jde_export._verification_session

    class FlippedEmbedding:
        def __init__(self, data):
            self.session = real_session(data)

        def run(self, names, feeds):
            outputs = self.session.run(names, feeds)
            outputs[OUTPUT_NAMES.index("embedding")] *= -1
            return outputs

    monkeypatch.setattr(jde_export, "_verification_session", FlippedEmbedding)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ReidsortError, match="ONNX Runtime differs from PyTorch"):
        export_jde_onnx(checkpoint, out, exporter="legacy", simplify=False)
    assert not out.exists() and not list(tmp_path.iterdir())


FAST = ["task=export", "task.exporter=legacy", "task.simplify=false"]


def test_export_task_dispatches_a_jde_checkpoint(checkpoint, tmp_path, capsys):
    cfg = compose_config([*FAST, f"ckpt_path={checkpoint}"], tmp_path / "run")
    metrics = export(cfg)
    out = tmp_path / "run" / "fairmot_resnet18_64x96.onnx"
    printed = capsys.readouterr().out
    assert out.is_file() and str(out) in printed and "detector=fairmot" in printed
    assert metrics["export/min_cosine"] >= 0.9999 and metrics["export/max_abs_diff"] < 1e-4
    assert sorted(p.name for p in out.parent.iterdir() if p.is_file()) == [out.name]
    # another input size than the training one
    cfg = compose_config([*FAST, f"ckpt_path={checkpoint}", "task.image_size=[96,128]",
                          "task.output=big"], tmp_path / "run2")
    export(cfg)
    session = ort.InferenceSession(str(tmp_path / "run2" / "big.onnx"))
    assert session.get_inputs()[0].shape[1:] == [3, 96, 128]


def test_export_task_torchscript_of_a_jde_checkpoint_is_refused(checkpoint, tmp_path):
    cfg = compose_config([*FAST, f"ckpt_path={checkpoint}", "format=torchscript"],
                         tmp_path / "run")
    with pytest.raises(ReidsortError, match="exports to ONNX only"):
        export(cfg)


def test_the_export_given_as_a_reid_embedder_points_to_detector_fairmot(checkpoint, tmp_path):
    from reidsort.embedders.onnx import OnnxEmbedder

    path = export_jde_onnx(checkpoint, tmp_path / "fairmot.onnx", exporter="legacy",
                           simplify=False, verify=False).path
    with pytest.raises(ReidsortError, match="is a FairMOT export .*detector=fairmot "
                                            f"detector.ckpt_path={path}"):
        OnnxEmbedder(path)
