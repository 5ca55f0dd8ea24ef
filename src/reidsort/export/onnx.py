"""Export to ONNX: dynamic batch, fixed H x W, L2 normalisation in the graph, metadata, checks.

Pipeline (all in memory; the file is written only once everything passed, atomically):
PyTorch -> ONNX (``torch.onnx.export``) -> optional simplification (onnxslim) -> metadata ->
``onnx.checker`` -> ONNX Runtime vs PyTorch on real-looking crops -> file.

Choices:

* **opset 18** (``DEFAULT_OPSET``): the lowest opset torch's current (torch.export-based)
  exporter emits natively (asking it for less runs the ONNX version converter, a known source of
  breakage), and every op of these networks exists there. Runtimes: ONNX Runtime >= 1.14,
  TensorRT >= 8.6, OpenVINO >= 2023.0. A newer opset would add nothing these CNNs use and only
  shut out older runtimes.
* **exporter**: ``dynamo`` (torch.export-based, torch's maintained exporter; needs the onnxscript
  package) by default; ``legacy`` is the TorchScript-based one, deprecated since torch 2.9 but
  about 10x faster to run, kept as a fallback.
* **onnxslim** over onnxsim for simplification: a pure-Python wheel (installs wherever onnx does,
  no compiled extension tied to particular Python/onnx/protobuf versions), released often, and
  the default simplifier of large projects (e.g. Ultralytics); onnxsim is a C++ extension whose
  wheels have historically lagged new Python and onnx releases.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from reidsort.export.metadata import ModelMetadata
from reidsort.export.model import LoadedNet, resolve_source
from reidsort.export.result import ExportResult
from reidsort.export.verify import (
    DEFAULT_MIN_COSINE,
    DEFAULT_NUM_CROPS,
    Verification,
    verification_batch,
    verify_runtime,
)
from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
#: Opsets the exporters and ONNX Runtime (>= 1.17, our floor) both handle.
MIN_OPSET, MAX_OPSET = 13, 20
EXPORTERS: tuple[str, ...] = ("dynamo", "legacy")
INPUT_NAME = "images"
OUTPUT_NAME = "features"
BATCH_DIM_NAME = "batch"
#: Batch of the example input: not 1, so no exporter can specialise the batch axis to 1.
EXAMPLE_BATCH = 2
#: Loggers of the ONNX exporter stack. Their INFO notes ("Removed 191 unused nodes", "Applied
#: 42 of general pattern rewrite rules", ...) are progress chatter: the run's log file keeps
#: them, the console does not (see :func:`exporter_notes_to_log_file`).
EXPORTER_LOGGERS: tuple[str, ...] = ("torch.onnx", "onnxscript", "onnx_ir", "onnxslim")


def export_onnx(source: str | Path | nn.Module | LoadedNet, out_path: str | Path,
                **options: Any) -> Path:
    """Export ``source`` (a ``task=train`` checkpoint path, a ReIDModule, an EmbeddingNet or a
    bare backbone) to ``out_path`` and return the path. See :func:`export_onnx_verified`.

    ``options`` are the keyword arguments of :func:`export_onnx_verified`.
    """
    return export_onnx_verified(source, out_path, **options).path


def export_onnx_verified(
    source: str | Path | nn.Module | LoadedNet,
    out_path: str | Path,
    *,
    image_size: Sequence[int] | None = None,
    metadata: ModelMetadata | None = None,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    simplify: bool = True,
    verify: bool = True,
    min_cosine: float = DEFAULT_MIN_COSINE,
    num_crops: int = DEFAULT_NUM_CROPS,
    seed: int = 0,
) -> ExportResult:
    """Export, simplify, annotate, check and verify; write ``out_path`` only if all passed.

    Raises ReidsortError (nothing written) when the ONNX Runtime features differ from PyTorch's
    by a cosine similarity below ``min_cosine`` on any verification crop.
    """
    started = time.perf_counter()
    loaded = resolve_source(source, image_size, metadata)
    net, meta = loaded.net.eval(), loaded.metadata
    model = to_onnx_model(net, meta.input_size, opset=opset, exporter=exporter)
    if simplify:
        model = simplify_model(model)
    attach_metadata(model, meta)
    check_onnx_model(model)
    data = model.SerializeToString()
    verification: Verification | None = None
    if verify:
        batch = verification_batch(meta.preprocess_spec(), num_crops=num_crops, seed=seed)
        session = _verification_session(data)
        verification = verify_runtime(
            reference=lambda x: _torch_features(net, x),
            candidate=lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0],
            batch=batch, min_cosine=min_cosine, what="ONNX Runtime",
        )
        log.info("ONNX Runtime vs PyTorch: %s", verification.summary())
    path = atomic_write_bytes(out_path, data)
    return ExportResult(path, "onnx", meta, verification, time.perf_counter() - started)


def to_onnx_model(
    net: nn.Module, input_size: Sequence[int], *, opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo", output_names: Sequence[str] = (OUTPUT_NAME,),
) -> onnx.ModelProto:
    """The ONNX graph of ``net`` for (batch, 3, H, W) float32 input, batch dynamic; one output
    per name of ``output_names`` (a network returning a tuple, e.g. FairMOT's four maps), each
    with a dynamic batch axis."""
    if exporter not in EXPORTERS:
        raise ReidsortError(f"onnx exporter must be one of {EXPORTERS}, got {exporter!r}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ReidsortError(f"opset {opset} is outside the supported {MIN_OPSET}..{MAX_OPSET}")
    example = torch.zeros(EXAMPLE_BATCH, 3, int(input_size[0]), int(input_size[1]))
    chatter = io.StringIO()  # the exporters print progress; keep it for the debug log
    with torch.no_grad(), contextlib.redirect_stdout(chatter), quiet_tracing(), \
            exporter_notes_to_log_file():
        try:
            if exporter == "dynamo":
                model = _export_dynamo(net, example, int(opset), output_names)
            else:
                model = _export_legacy(net, example, int(opset), output_names)
        except ReidsortError:
            raise
        except Exception as exc:  # noqa: BLE001 - unsupported code in a user's module
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ReidsortError(f"ONNX export ({exporter}) failed: {type(exc).__name__}: "
                                f"{first}") from exc
    if chatter.getvalue().strip():
        log.debug("torch.onnx.export said:\n%s", chatter.getvalue().strip())
    return model


@contextlib.contextmanager
def quiet_tracing():
    """Silence deprecation notices and TracerWarnings of the exporters (logged at debug level).

    TracerWarnings flag Python-side decisions baked into a trace; the verification against
    eager PyTorch on real crops is what catches any that matter.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        log.debug("%s: %s", warning.category.__name__, warning.message)


def _is_exporter_logger(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in EXPORTER_LOGGERS)


class _ExporterNotesFilter(logging.Filter):
    """Lets through everything but the exporter stack's records below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _is_exporter_logger(record.name)


@contextlib.contextmanager
def exporter_notes_to_log_file() -> Iterator[None]:
    """Keep the exporters' INFO / DEBUG notes off the console while the block runs.

    Console handlers (any handler but a FileHandler) of the root logger and of the exporter
    loggers get a filter for the duration; file handlers, i.e. the run's ``<task>.log``, still
    receive every note, and warnings and errors still reach the console.
    """
    loggers = [logging.getLogger()]
    loggers += [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)
                if _is_exporter_logger(name)]
    console = {handler for logger in loggers for handler in logger.handlers
               if not isinstance(handler, logging.FileHandler)}
    notes_filter = _ExporterNotesFilter()
    for handler in console:
        handler.addFilter(notes_filter)
    try:
        yield
    finally:
        for handler in console:
            handler.removeFilter(notes_filter)


def _export_dynamo(net: nn.Module, example: torch.Tensor, opset: int,
                   output_names: Sequence[str] = (OUTPUT_NAME,)) -> onnx.ModelProto:
    if importlib.util.find_spec("onnxscript") is None:  # the dynamo exporter's dependency
        raise ReidsortError(
            "the dynamo ONNX exporter needs the onnxscript package (pip install onnxscript), "
            "or use task.exporter=legacy"
        )
    batch = torch.export.Dim(BATCH_DIM_NAME, min=1)
    program = torch.onnx.export(
        net, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
        output_names=list(output_names), dynamic_shapes=({0: batch},), optimize=True,
        verbose=False, report=False,
    )
    return program.model_proto


def _export_legacy(net: nn.Module, example: torch.Tensor, opset: int,
                   output_names: Sequence[str] = (OUTPUT_NAME,)) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        net, (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
        output_names=list(output_names), do_constant_folding=True,
        dynamic_axes={name: {0: BATCH_DIM_NAME} for name in (INPUT_NAME, *output_names)},
    )
    return onnx.load_from_string(buffer.getvalue())


def simplify_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding, dead-node removal and fusions by onnxslim (see module docstring)."""
    import onnxslim

    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), \
            exporter_notes_to_log_file():
        warnings.simplefilter("ignore")
        slimmed = onnxslim.slim(model)
    if not isinstance(slimmed, onnx.ModelProto):
        raise ReidsortError("onnxslim failed to simplify the model (task.simplify=false skips it)")
    return slimmed


def attach_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Write ``metadata`` into ``model.metadata_props`` (replacing what was there)."""
    onnx.helper.set_model_props(model, metadata.to_props())
    model.doc_string = (
        f"reidsort Re-ID embedder {metadata.architecture}: input {INPUT_NAME} float32 "
        f"[{BATCH_DIM_NAME}, 3, {metadata.input_size[0]}, {metadata.input_size[1]}] "
        f"{metadata.channel_order}, (pixel/{metadata.pixel_scale:g} - mean)/std; output "
        f"{OUTPUT_NAME} [{BATCH_DIM_NAME}, {metadata.feature_dim}] L2-normalised"
    )


def check_onnx_model(model: onnx.ModelProto) -> None:
    """``onnx.checker`` plus our contract: one (batch, 3, H, W) input, one (batch, D) output."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ReidsortError(f"exported ONNX model is invalid: {str(exc).splitlines()[0]}") from exc
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    in_dims = graph_input.type.tensor_type.shape.dim
    out_dims = graph_output.type.tensor_type.shape.dim
    if len(in_dims) != 4 or in_dims[0].dim_param == "" or in_dims[1].dim_value != 3:
        raise ReidsortError(f"exported ONNX input is not (batch, 3, H, W): {in_dims}")
    if len(out_dims) != 2 or out_dims[0].dim_param == "":
        raise ReidsortError(f"exported ONNX output is not (batch, D): {out_dims}")


def _verification_session(data: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's info lines are noise here
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _torch_features(net: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(batch)).numpy()
