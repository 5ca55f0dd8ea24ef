"""ONNX Runtime embedder: the tracker's appearance model without PyTorch.

``OnnxEmbedder("model.onnx")`` is all a user passes: input size, mean/std and channel order come
from the model's metadata (written by ``task=export``). The execution provider is chosen
automatically (CUDA when this onnxruntime build has it, else CPU); threads and the graph
optimisation level are configurable. Importing this module imports no torch (tested).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidsort.embedders.base import DEFAULT_MAX_BATCH, NetworkEmbedder, check_max_batch
from reidsort.export.file_kind import (
    TORCH_CHECKPOINT,
    TORCHSCRIPT,
    detector_hint,
    looks_like_detector,
    sniff_model_file,
)
from reidsort.export.metadata import ModelMetadata
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
#: ``graph_optimization`` names -> onnxruntime.GraphOptimizationLevel attribute names.
GRAPH_OPTIMIZATION_LEVELS: dict[str, str] = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
#: ONNX Runtime log level: 3 = errors only (its warnings about unused initialisers are noise).
ORT_LOG_SEVERITY = 3


def auto_providers() -> list[str]:
    """CUDA (then CPU as fallback) when this onnxruntime has it, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]


class OnnxEmbedder(NetworkEmbedder):
    """Appearance features from an exported ONNX Re-ID model (see module docstring).

    ``input_size``/``mean``/``std``/``channel_order`` override the metadata, for ONNX models not
    exported by reidsort; ``num_threads`` = ONNX Runtime intra-op threads (None: one per core).
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        max_batch: int = DEFAULT_MAX_BATCH,
        num_threads: int | None = None,
        providers: Sequence[str] | None = None,
        graph_optimization: str = "all",
        input_size: Sequence[int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channel_order: str | None = None,
        allow_spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        if model_path is None or str(model_path) == "":
            raise ReidsortError("embedder.model_path is not set: pass the exported .onnx file")
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ReidsortError(f"ONNX model not found: {self.model_path}")
        self.max_batch = check_max_batch(max_batch)
        self.allow_spinning = bool(allow_spinning)
        self.session = self._create_session(ort, num_threads, providers, graph_optimization)
        self.providers = list(self.session.get_providers())
        self._refuse_detectors()
        self.input_name, graph_hw, self._fixed_batch = self._check_input()
        self.metadata = self._read_metadata(graph_hw, input_size, mean, std, channel_order)
        self.spec = self.metadata.preprocess_spec()
        if self._fixed_batch is not None:
            self.max_batch = self._fixed_batch  # batches are padded to the fixed size
        self.output_name, self.feature_dim = self._check_output()
        log.info("ONNX embedder %s: %s input %s, %d-d features, providers %s",
                 self.model_path.name, self.metadata.architecture, list(self.spec.size_hw),
                 self.feature_dim, self.providers)

    # ------------------------------------------------------------------ setup
    def _create_session(self, ort, num_threads, providers, graph_optimization):
        level = GRAPH_OPTIMIZATION_LEVELS.get(str(graph_optimization).lower())
        if level is None:
            raise ReidsortError(f"graph_optimization must be one of "
                                f"{sorted(GRAPH_OPTIMIZATION_LEVELS)}, got {graph_optimization!r}")
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.log_severity_level = ORT_LOG_SEVERITY
        if num_threads is not None:
            if int(num_threads) < 0:
                raise ReidsortError(
                    f"num_threads must be >= 0 (0: one per core), got {num_threads}")
            options.intra_op_num_threads = int(num_threads)
        # Idle ORT threads busy-wait by default; next to a detector session that steals the
        # cores it needs (measured in task=track: 1.3-1.5 vs 4.0-5.9 FPS on 2 cores).
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        # one model, one request at a time: parallelism inside operators only
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        chosen = list(providers) if providers else auto_providers()
        unknown = [p for p in chosen if p not in ort.get_available_providers()]
        if unknown:
            raise ReidsortError(f"ONNX Runtime providers not available here: {unknown} "
                                f"(available: {ort.get_available_providers()})")
        try:
            return ort.InferenceSession(str(self.model_path), options, providers=chosen)
        except Exception as exc:  # noqa: BLE001 - protobuf/graph errors mean a bad file
            kind = sniff_model_file(self.model_path)
            if kind in (TORCHSCRIPT, TORCH_CHECKPOINT):
                export = (f" (or export it: task=export ckpt_path={self.model_path})"
                          if kind == TORCH_CHECKPOINT else "")
                raise ReidsortError(
                    f"{self.model_path}: is a {kind}, not an ONNX model; pass it as "
                    f"embedder=torch embedder.ckpt_path={self.model_path}{export}") from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReidsortError(f"{self.model_path}: not a loadable ONNX model ({first})") from exc

    def _refuse_detectors(self) -> None:
        # a YOLO file passes the N x 3 x H x W input check; its output says what it is
        shapes = [list(output.shape) for output in self.session.get_outputs()]
        if looks_like_detector(shapes):
            raise ReidsortError(detector_hint(
                self.model_path, shapes, "a Re-ID model from task=export as the embedder "
                "(embedder.model_path; task=eval: ckpt_path)"))

    def _check_input(self) -> tuple[str, tuple[int | None, int | None], int | None]:
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ReidsortError(f"{self.model_path}: expected one input (N x 3 x H x W), "
                                f"the model has {len(inputs)}")
        (graph_input,) = inputs
        shape = list(graph_input.shape)
        if len(shape) != 4 or shape[1] != 3:
            raise ReidsortError(f"{self.model_path}: input {graph_input.name!r} has shape "
                                f"{shape}, expected N x 3 x H x W")
        if graph_input.type != "tensor(float)":
            raise ReidsortError(f"{self.model_path}: input {graph_input.name!r} is "
                                f"{graph_input.type}, expected float32")
        batch, height, width = shape[0], shape[2], shape[3]
        static = (height if isinstance(height, int) else None,
                  width if isinstance(width, int) else None)
        fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        return graph_input.name, static, fixed_batch

    def _read_metadata(self, graph_hw, input_size, mean, std, channel_order) -> ModelMetadata:
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        overrides = {"mean": mean, "std": std}
        for key, value in overrides.items():
            if value is not None:
                props[key] = "[" + ", ".join(str(float(v)) for v in value) + "]"
        if channel_order is not None:
            props["channel_order"] = str(channel_order)
        if input_size is not None:
            props["input_size"] = f"[{int(input_size[0])}, {int(input_size[1])}]"
        elif "input_size" not in props and None not in graph_hw:
            props["input_size"] = f"[{graph_hw[0]}, {graph_hw[1]}]"
        try:
            metadata = ModelMetadata.from_props(props, where=str(self.model_path))
        except ValueError as exc:
            raise ReidsortError(str(exc)) from None
        for axis, graph_value, meta_value in zip(("height", "width"), graph_hw,
                                                 metadata.input_size):
            if graph_value is not None and graph_value != meta_value:
                raise ReidsortError(
                    f"{self.model_path}: input {axis} is {graph_value} in the graph but "
                    f"{meta_value} in the metadata"
                )
        return metadata

    def _check_output(self) -> tuple[str, int]:
        outputs = self.session.get_outputs()
        shape = list(outputs[0].shape)
        if len(shape) != 2:
            raise ReidsortError(f"{self.model_path}: output {outputs[0].name!r} has shape "
                                f"{shape}, expected N x D")
        dim = shape[1] if isinstance(shape[1], int) else None
        if dim is None:  # symbolic feature size: ask the model
            probe = np.zeros((self._fixed_batch or 1, 3, *self.spec.size_hw), np.float32)
            dim = int(self.session.run([outputs[0].name], {self.input_name: probe})[0].shape[1])
        if self.metadata.feature_dim and self.metadata.feature_dim != dim:
            raise ReidsortError(f"{self.model_path}: output has {dim} features but the "
                                f"metadata says {self.metadata.feature_dim}")
        return outputs[0].name, dim

    # -------------------------------------------------------------- inference
    def _infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        count = len(batch_nchw)
        if self._fixed_batch is not None and count < self._fixed_batch:
            padding = np.zeros((self._fixed_batch - count, *batch_nchw.shape[1:]), np.float32)
            batch_nchw = np.concatenate([batch_nchw, padding])
        features = self.session.run([self.output_name], {self.input_name: batch_nchw})[0]
        return features[:count]
