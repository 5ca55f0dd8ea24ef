"""AFLink weights out of torch: the ``.npz`` that ``postprocess=aflink`` reads (NumPy
inference) and an ONNX model, each checked against the torch forward."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reidsort.linking.model import AFLinkNet, AFLinkProbabilities
from reidsort.tracking.aflink import PAIR_COLUMNS, AFLinkNumpy

log = logging.getLogger(__name__)

#: ONNX opset 18, as task=export (conf/task/export.yaml explains the choice)
DEFAULT_OPSET = 18
INPUT_NAMES = ("former", "latter")
OUTPUT_NAME = "probabilities"
BATCH_DIM_NAME = "batch"
#: pairs of random inputs the checks compare on
CHECK_PAIRS = 64


def save_npz(net: AFLinkNet, path: str | Path) -> Path:
    """``state_dict`` (float32, BatchNorm counters left out) + ``input_length``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        key: value.detach().cpu().numpy().astype(np.float32)
        for key, value in net.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    arrays["input_length"] = np.array(net.input_length, dtype=np.int64)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return path


def example_inputs(
    net: AFLinkNet, pairs: int = CHECK_PAIRS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in the normalised range [-1, 1] that the network sees."""
    generator = torch.Generator().manual_seed(seed)
    shape = (pairs, 1, net.input_length, PAIR_COLUMNS)
    return (
        torch.rand(shape, generator=generator) * 2 - 1,
        torch.rand(shape, generator=generator) * 2 - 1,
    )


def torch_probabilities(net: AFLinkNet, former: torch.Tensor, latter: torch.Tensor) -> np.ndarray:
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = net.probabilities(former, latter).double().numpy()
    net.train(was_training)
    return out


def export_onnx(
    net: AFLinkNet, path: str | Path, opset: int = DEFAULT_OPSET, exporter: str = "dynamo"
) -> Path:
    """Probabilities (B, 2) from ``former`` and ``latter`` (B, 1, T, 3), dynamic batch."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = AFLinkProbabilities(net).eval()
    example = example_inputs(net, pairs=2)
    if exporter == "dynamo":
        batch = torch.export.Dim(BATCH_DIM_NAME, min=1)
        program = torch.onnx.export(
            wrapper,
            example,
            dynamo=True,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch}, {0: batch}),
            optimize=True,
            verbose=False,
            report=False,
        )
        program.save(str(path))
    elif exporter == "legacy":
        buffer = io.BytesIO()
        torch.onnx.export(
            wrapper,
            example,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: BATCH_DIM_NAME} for name in (*INPUT_NAMES, OUTPUT_NAME)},
        )
        path.write_bytes(buffer.getvalue())
    else:
        raise ValueError(f"aflink exporter={exporter!r}: choose dynamo | legacy")
    return path


@dataclass(frozen=True)
class ExportCheck:
    numpy_max_abs_diff: float
    onnx_max_abs_diff: float | None


def check_exports(
    net: AFLinkNet, npz_path: Path, onnx_path: Path | None, tolerance: float = 1e-5
) -> ExportCheck:
    """Both exports against the torch forward on random inputs; ValueError past ``tolerance``."""
    former, latter = example_inputs(net)
    expected = torch_probabilities(net, former, latter)
    numpy_diff = float(
        np.abs(AFLinkNumpy(npz_path)(former.numpy(), latter.numpy()) - expected).max()
    )
    onnx_diff = None
    if onnx_path is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAMES[0]: former.numpy(), INPUT_NAMES[1]: latter.numpy()})
        onnx_diff = float(np.abs(got[0] - expected).max())
    for name, diff in (("NumPy", numpy_diff), ("ONNX", onnx_diff)):
        if diff is not None and diff > tolerance:
            raise ValueError(
                f"AFLink {name} export differs from torch by {diff:.2e} (> {tolerance:g})"
            )
    return ExportCheck(numpy_diff, onnx_diff)
