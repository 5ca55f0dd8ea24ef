"""Export a FairMOT network (``task=jde`` checkpoint) to ONNX, verified against PyTorch.

The graph (:class:`JDEInference`): input ``images`` float32 (batch, 3, H, W), letterboxed RGB,
``(pixel / 255 - mean) / std``; four outputs at stride 4, each (batch, c, H/4, W/4):

* ``heatmap``: centre PROBABILITIES: the sigmoid is applied in the graph, as in FairMOT's
  inference (``output['hm'].sigmoid_()``), so every consumer of the file reads scores directly;
  the 3x3 max-pool peak picking and top-K stay in NumPy (:mod:`reidsort.jde.decode`), which is
  the same code for the ONNX and the checkpoint path;
* ``size`` (2 | 4) and ``offset`` (2): raw, output-map units;
* ``embedding`` (D): raw; only the top-K vectors are L2-normalised, in NumPy (normalising the
  whole map in the graph would cost H/4 x W/4 x D for the few hundred cells that are read).

Batch is dynamic, H x W fixed to the training input (the letterbox target). Metadata
(:meth:`JDEModelInfo.to_props`): ``kind=fairmot``, input_hw, mean, std, stride, size_mode,
embedding_dim, num_classes, backbone, reidsort_version, source. The file is written atomically,
only once ``onnx.checker`` and the comparison with PyTorch (every output, at the full batch and
at batch 1) passed. Exporters and opsets are those of the Re-ID export
(:mod:`reidsort.export.onnx`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor, nn

import reidsort
from reidsort.export.onnx import (
    BATCH_DIM_NAME,
    DEFAULT_OPSET,
    INPUT_NAME,
    _verification_session,
    simplify_model,
    to_onnx_model,
)
from reidsort.export.verify import DEFAULT_MIN_COSINE, compare_features
from reidsort.jde.checkpoint import JDEModelInfo, load_jde_model
from reidsort.jde.model import JDENet
from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

#: the graph's outputs, in order
OUTPUT_NAMES: tuple[str, ...] = ("heatmap", "size", "offset", "embedding")
#: images in the verification batch (not 1: the dynamic batch axis is exercised; batch 1 too)
VERIFY_BATCH = 2


class JDEInference(nn.Module):
    """A :class:`JDENet` as deployed: ``(sigmoid(heatmap), size, offset, embedding)``."""

    def __init__(self, net: JDENet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.net(images)
        return torch.sigmoid(out.heatmap), out.size, out.offset, out.embedding


@dataclass(frozen=True)
class OutputCheck:
    """ONNX Runtime vs PyTorch on the verification batch, over all four outputs."""

    max_abs_diff: float
    min_cosine: float
    per_output: dict[str, float]  # output name -> max |diff|
    num_images: int

    def summary(self) -> str:
        worst = ", ".join(f"{name} {diff:.3g}" for name, diff in self.per_output.items())
        return (f"max |diff| {self.max_abs_diff:.3g} ({worst}), min cosine "
                f"{self.min_cosine:.7f} over {self.num_images} random images")


@dataclass(frozen=True)
class JDEExportResult:
    path: Path
    info: JDEModelInfo
    verification: OutputCheck | None
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def export_jde_onnx(
    source: str | Path | tuple[JDENet, JDEModelInfo],
    out_path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    simplify: bool = True,
    verify: bool = True,
    min_cosine: float = DEFAULT_MIN_COSINE,
    seed: int = 0,
    input_hw: Sequence[int] | None = None,
    source_name: str | None = None,
) -> JDEExportResult:
    """Export ``source`` (a ``task=jde`` checkpoint path, or a net with its info) to ONNX at
    ``out_path``; see the module docstring. ``input_hw`` exports at another input size than the
    training one (multiples of 32); ``source_name`` is recorded as the metadata ``source`` (default:
the checkpoint's file name). Raises ReidsortError (nothing written) when an output of
    ONNX Runtime differs from PyTorch's by a cosine similarity below ``min_cosine``."""
    started = time.perf_counter()
    if isinstance(source, (str, Path)):
        net, info = load_jde_model(source)
        source_name = source_name or Path(source).name
    else:
        net, info = source
    if input_hw is not None:
        info = replace(info, input_hw=tuple(input_hw))
    model_net = JDEInference(net.eval()).eval()
    model = to_onnx_model(model_net, info.input_hw, opset=opset, exporter=exporter,
                          output_names=OUTPUT_NAMES)
    if simplify:
        model = simplify_model(model)
    onnx.helper.set_model_props(model, info.to_props(reidsort_version=reidsort.__version__,
                                                     source=source_name or ""))
    model.doc_string = (
        f"reidsort FairMOT ({info.backbone}): input {INPUT_NAME} float32 [{BATCH_DIM_NAME}, 3, "
        f"{info.input_hw[0]}, {info.input_hw[1]}] letterboxed RGB, (pixel/255 - mean)/std; "
        f"outputs {', '.join(OUTPUT_NAMES)} at stride {info.stride} (heatmap after sigmoid, "
        "the others raw)")
    check_jde_onnx(model)
    data = model.SerializeToString()
    verification = None
    if verify:
        verification = verify_jde_onnx(model_net, data, info, min_cosine=min_cosine, seed=seed)
        log.info("ONNX Runtime vs PyTorch: %s", verification.summary())
    path = atomic_write_bytes(out_path, data)
    return JDEExportResult(path, info, verification, time.perf_counter() - started)


def check_jde_onnx(model: onnx.ModelProto) -> None:
    """``onnx.checker`` plus the contract: a (batch, 3, H, W) input and the four named
    outputs, each 4-d with a dynamic batch axis."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ReidsortError(f"exported ONNX model is invalid: {str(exc).splitlines()[0]}") from exc
    (graph_input,) = model.graph.input
    in_dims = graph_input.type.tensor_type.shape.dim
    if len(in_dims) != 4 or in_dims[0].dim_param == "" or in_dims[1].dim_value != 3:
        raise ReidsortError(f"exported ONNX input is not (batch, 3, H, W): {in_dims}")
    names = [output.name for output in model.graph.output]
    if names != list(OUTPUT_NAMES):
        raise ReidsortError(f"exported FairMOT outputs are {names}, expected {list(OUTPUT_NAMES)}")
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) != 4 or dims[0].dim_param == "":
            raise ReidsortError(f"exported output {output.name} is not (batch, c, h, w) with a "
                                f"dynamic batch: {dims}")


def verification_images(info: JDEModelInfo, batch: int = VERIFY_BATCH, seed: int = 0
                        ) -> np.ndarray:
    """Random RGB images in [0, 1], normalised like the network's input: (batch, 3, H, W)."""
    rng = np.random.default_rng(seed)
    pixels = rng.random((batch, 3, *info.input_hw), dtype=np.float32)
    mean = np.asarray(info.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(info.std, dtype=np.float32)[:, None, None]
    return ((pixels - mean) / std).astype(np.float32)


def verify_jde_onnx(net: nn.Module, data: bytes, info: JDEModelInfo, *,
                    min_cosine: float = DEFAULT_MIN_COSINE, seed: int = 0) -> OutputCheck:
    """Compare every output of ONNX Runtime with PyTorch's, per image (flattened map), at the
    full batch and at batch 1. ReidsortError below ``min_cosine``."""
    images = verification_images(info, seed=seed)
    with torch.no_grad():
        expected = [t.numpy() for t in net(torch.from_numpy(images))]
    maps_hw = expected[0].shape[-2:]
    if tuple(maps_hw) != (info.input_hw[0] // info.stride, info.input_hw[1] // info.stride):
        raise ReidsortError(f"the network's maps are {tuple(maps_hw)} for a {info.input_hw} "
                            f"input, not stride {info.stride}")
    session = _verification_session(data)
    per_output: dict[str, float] = {}
    min_cos = 1.0
    for batch in (images, images[:1]):
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        for name, reference, candidate in zip(OUTPUT_NAMES, expected, got):
            reference = reference[:len(batch)]
            if reference.shape != candidate.shape:
                raise ReidsortError(f"exported output {name} has shape {candidate.shape}, "
                                    f"PyTorch {reference.shape}")
            check = compare_features(reference.reshape(len(batch), -1),
                                     candidate.reshape(len(batch), -1))
            per_output[name] = max(per_output.get(name, 0.0), check.max_abs_diff)
            min_cos = min(min_cos, check.min_cosine)
    result = OutputCheck(max(per_output.values()), min_cos, per_output, len(images))
    if not result.min_cosine >= min_cosine:
        raise ReidsortError(f"ONNX Runtime differs from PyTorch: {result.summary()} (needs min "
                            f"cosine >= {min_cosine})")
    return result


__all__ = ["OUTPUT_NAMES", "JDEExportResult", "JDEInference", "OutputCheck", "check_jde_onnx",
           "export_jde_onnx", "verify_jde_onnx"]
