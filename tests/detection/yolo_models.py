"""Tiny hand-made ONNX "detectors" whose raw output is a fixed tensor: known answers for the
YOLO decoding (any input gives the same output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def constant_output_model(path: Path, output: np.ndarray, input_hw=(64, 64),
                          batch: int | str = 1) -> Path:
    """An ONNX model: input ``images`` (batch, 3, H, W) -> ``output`` broadcast over the batch.

    The output is ``mean(images) * 0 + output``, so it depends (formally) on the input and
    ONNX Runtime cannot fold the graph away.
    """
    output = np.asarray(output, dtype=np.float32)
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *input_hw])
    result = helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                           [batch, *output.shape[1:]])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean4d"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4d", "shape3d"], ["mean"]),  # (B, 1, 1)
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "table"], ["output"]),
    ]
    initializers = [numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
                    numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3d"),
                    numpy_helper.from_array(output, "table")]
    graph = helper.make_graph(nodes, "constant_yolo", [images], [result], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
