"""``task=eval ckpt_path=<TorchScript .pt>``: an export of ``task=export format=torchscript``
scores like the checkpoint it came from; a detector given as the model is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_eval_task import TINY_DATA, _random_checkpoint

from reidsort.export.torchscript import export_torchscript
from reidsort.tasks.eval import eval as run_eval
from reidsort.utils.errors import ReidsortError

torch.set_num_threads(1)


def test_torchscript_export_scores_like_its_checkpoint(tmp_path, synthetic_data_dir,
                                                       make_config, capsys):
    checkpoint = _random_checkpoint(tmp_path / "model", synthetic_data_dir)
    scripted = export_torchscript(checkpoint, tmp_path / "model.pt", num_crops=4)
    results = {}
    for source in (checkpoint, scripted):
        cfg = make_config([*TINY_DATA, "task=eval", f"ckpt_path={source}", "task.plots=false",
                           "task.flip=true", "task.save_features=true"])
        results[source.suffix] = run_eval(cfg)
        features = np.load(tmp_path / "run" / "features.npz")["query_features"]
        results[source.suffix]["features"] = features
    assert "reidsort eval  (TorchScript model" in capsys.readouterr().out
    assert results[".pt"]["eval/mAP"] == pytest.approx(results[".ckpt"]["eval/mAP"], abs=1e-4)
    assert results[".pt"]["eval/num_queries"] == results[".ckpt"]["eval/num_queries"]
    cosine = np.sum(results[".pt"]["features"] * results[".ckpt"]["features"], axis=1)
    assert cosine.min() >= 0.9999


def test_a_detector_as_the_eval_model_fails_before_reading_the_data(tmp_path, make_config):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # a YOLO-shaped output (batch, candidate boxes, 4 + 1 + classes)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["flat"]),
         helper.make_node("Transpose", ["flat"], ["output"], perm=[0, 2, 1])], "det",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1024, 3])],
        [numpy_helper.from_array(np.array([1, 3, 1024], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "detector.onnx"
    onnx.save(model, path)
    cfg = make_config(["task=eval", f"ckpt_path={path}", "data=folder",
                       f"data.root={tmp_path / 'no_such_folder'}"])
    with pytest.raises(ReidsortError, match=r"detector.onnx: looks like an object detector "
                                            r"\(output \[1, 1024, 3\]"):
        run_eval(cfg)
