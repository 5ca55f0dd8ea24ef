"""``task=export`` end to end: checkpoints, weights trained elsewhere, formats, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import REPO_ROOT, compose_config
from reidsort.export.metadata import ModelMetadata
from reidsort.export.onnx import INPUT_NAME
from reidsort.export.torchscript import load_torchscript
from reidsort.export.verify import compare_features, verification_batch
from reidsort.reid.backbones import build_backbone, deepsort_cnn
from reidsort.tasks.export import export
from reidsort.utils.errors import ReidsortError
from tiny_models import DEEPSORT_IMAGE_SIZE, randomise_batch_norm, tiny_module, write_checkpoint

torch.set_num_threads(1)
FAST = ["task=export", "task.exporter=legacy", "task.verify_crops=4"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train") / "checkpoints"
    return write_checkpoint(tiny_module("deepsort_cnn"), folder / "last.ckpt",
                            image_size=DEEPSORT_IMAGE_SIZE)


def _features(net: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = net(torch.from_numpy(batch))
    return (out / out.norm(dim=1, keepdim=True)).numpy()


def test_export_task_writes_onnx_into_the_run_dir_and_prints_the_path(checkpoint, tmp_path,
                                                                      capsys):
    cfg = compose_config([*FAST, f"ckpt_path={checkpoint}"], tmp_path / "run")
    metrics = export(cfg)
    out = tmp_path / "run" / "deepsort_cnn_128x64.onnx"
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert metrics["export/min_cosine"] >= 0.9999 and metrics["export/max_abs_diff"] < 1e-4
    assert metrics["export/size_mb"] == pytest.approx(out.stat().st_size / 2**20)
    assert sorted(p.name for p in out.parent.iterdir() if p.is_file()) == [out.name]


def test_export_task_torchscript_format(checkpoint, tmp_path):
    cfg = compose_config([*FAST, f"ckpt_path={checkpoint}", "format=torchscript",
                          "task.output=tracker_model"], tmp_path / "run")
    export(cfg)
    module, metadata = load_torchscript(tmp_path / "run" / "tracker_model.pt")
    assert metadata.architecture == "deepsort_cnn" and metadata.feature_dim == 128


def test_zqpei_ckpt_t7_exports_for_the_tracker(tmp_path):
    """deep_sort_pytorch's ckpt.t7 (net_dict + classifier + NumPy accuracy) -> ONNX."""
    source = deepsort_cnn(variant="zqpei").eval()
    randomise_batch_norm(source, seed=4)
    net_dict = dict(source.state_dict())
    net_dict.update({"classifier.0.weight": torch.zeros(256, 512),
                     "classifier.0.bias": torch.zeros(256),
                     "classifier.4.weight": torch.zeros(751, 256),
                     "classifier.4.bias": torch.zeros(751)})
    t7 = tmp_path / "ckpt.t7"
    torch.save({"net_dict": net_dict, "acc": np.float64(87.5), "epoch": 39}, t7)
    cfg = compose_config([*FAST, "model=deepsort_cnn", "model.backbone.variant=zqpei",
                          f"model.backbone.weights={t7}", "task.image_size=[128,64]"],
                         tmp_path / "run")
    export(cfg)
    out = tmp_path / "run" / "deepsort_cnn_128x64.onnx"
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert props["feature"] == "backbone" and props["source"] == "ckpt.t7"
    assert props["feature_dim"] == "512" and '"variant": "zqpei"' in props["backbone_config"]
    spec = ModelMetadata(input_size=DEEPSORT_IMAGE_SIZE, feature_dim=512).preprocess_spec()
    batch = verification_batch(spec, 3, seed=2)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert compare_features(_features(source, batch),
                            session.run(None, {INPUT_NAME: batch})[0]).min_cosine > 0.99999


def test_torchreid_osnet_weights_export_with_torchreid_features(tmp_path):
    pytest.importorskip("torchreid")
    try:  # the PyPI package nests the library under torchreid.reid
        from torchreid.reid.models import osnet
    except ImportError:
        from torchreid.models import osnet
    reference = osnet.osnet_x0_25(num_classes=7, pretrained=False)
    randomise_batch_norm(reference, seed=5)
    reference.eval()
    weights = tmp_path / "osnet_x0_25_market.pth"
    # torchreid's save_checkpoint layout: DataParallel prefix, classifier, training state
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()},
                "epoch": 60, "rank1": 0.9}, weights)
    cfg = compose_config([*FAST, "model=osnet_x0_25", f"model.backbone.weights={weights}",
                          "task.image_size=[64,32]"], tmp_path / "run")
    export(cfg)
    out = tmp_path / "run" / "osnet_x0_25_64x32.onnx"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).normal(size=(3, 3, 64, 32)).astype(np.float32)
    assert compare_features(_features(reference, batch),
                            session.run(None, {INPUT_NAME: batch})[0]).min_cosine > 0.99999


def test_bad_inputs_are_one_line_errors(checkpoint, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ReidsortError, match="nothing to export: pass ckpt_path="):
        export(compose_config(FAST, run))
    with pytest.raises(ReidsortError, match=r"task.image_size=\[height,width\] is required"):
        export(compose_config([*FAST, f"model.backbone.weights={checkpoint}"], run))
    with pytest.raises(ReidsortError, match="format='onnnx': expected one of"):
        export(compose_config([*FAST, f"ckpt_path={checkpoint}", "format=onnnx"], run))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        export(compose_config([*FAST, f"ckpt_path={tmp_path / 'missing.ckpt'}"], run))
    # an OSNet-x0.25 file for an OSNet-x0.5 model: the mismatched keys are listed
    weights = tmp_path / "x0_25.pth"
    torch.save(build_backbone("osnet_x0_25").state_dict(), weights)
    with pytest.raises(ValueError, match=r"x0_25.pth: weights do not fit OSNet: .*mismatched"):
        export(compose_config([*FAST, "model=osnet_x0_5", f"model.backbone.weights={weights}",
                               "task.image_size=[64,32]"], run))
    assert not run.exists() or not any(run.glob("*.onnx"))


def test_cli_failed_verification_exits_non_zero_and_leaves_no_file(checkpoint, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), REIDSORT_ROOT=str(tmp_path))
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), *FAST, f"ckpt_path={checkpoint}",
         "task.min_cosine=1.01", f"hydra.run.dir={run_dir}", "torch_threads=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 1
    assert "error: ONNX Runtime differs from PyTorch: max |diff|" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert [p.name for p in run_dir.iterdir() if p.is_file() and p.suffix != ".log"] == []


def test_cli_dynamo_export_keeps_exporter_notes_off_the_console(checkpoint, tmp_path):
    """onnxscript / onnx_ir INFO notes and torch.onnx's progress prints go to the run's log
    file only; reidsort's own lines still reach the console."""
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), REIDSORT_ROOT=str(tmp_path))
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "task=export", "task.exporter=dynamo",
         "task.verify_crops=4", f"ckpt_path={checkpoint}", f"hydra.run.dir={run_dir}",
         "torch_threads=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    console = completed.stdout + completed.stderr
    for chatter in ("[torch.onnx]", "onnxscript", "onnx_ir", "Obtain model graph"):
        assert chatter not in console
    assert "ONNX Runtime vs PyTorch" in console and "deepsort_cnn_128x64.onnx" in console
    log_text = (run_dir / "export.log").read_text()
    assert "[onnx_ir." in log_text or "[onnxscript." in log_text


def test_exporter_warnings_still_reach_the_console():
    import io
    import logging

    from reidsort.export.onnx import exporter_notes_to_log_file

    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(console)
    root.setLevel(logging.INFO)
    try:
        with exporter_notes_to_log_file():
            logging.getLogger("onnxscript.rewriter").info("Applied 42 rewrite rules")
            logging.getLogger("onnx_ir.passes").warning("a real problem")
            logging.getLogger("reidsort.export.onnx").info("our own line")
        logging.getLogger("onnxscript.rewriter").info("after the export")
    finally:
        root.removeHandler(console)
        root.setLevel(previous_level)
    assert stream.getvalue().splitlines() == ["a real problem", "our own line",
                                              "after the export"]
