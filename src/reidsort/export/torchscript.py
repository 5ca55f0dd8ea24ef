"""Export to TorchScript (``task.format=torchscript``): a traced archive, verified like ONNX.

The archive runs with ``torch.jit.load`` alone (no reidsort, no Python class definitions) on any
device; the metadata travels inside it as ``reidsort_metadata.json`` (same keys as the ONNX
``metadata_props``). TorchScript is deprecated in recent PyTorch releases in favour of
``torch.export``; ONNX is the format the project's tracker uses.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reidsort.export.metadata import TORCHSCRIPT_METADATA_FILE, ModelMetadata
from reidsort.export.model import LoadedNet, resolve_source
from reidsort.export.onnx import EXAMPLE_BATCH, quiet_tracing
from reidsort.export.result import ExportResult
from reidsort.export.verify import (
    DEFAULT_MIN_COSINE,
    DEFAULT_NUM_CROPS,
    Verification,
    verification_batch,
    verify_runtime,
)
from reidsort.utils.io import atomic_write_bytes


def export_torchscript(source: str | Path | nn.Module | LoadedNet, out_path: str | Path,
                       **options: Any) -> Path:
    """Trace ``source`` to a TorchScript archive at ``out_path``; returns the path.

    ``options`` are the keyword arguments of :func:`export_torchscript_verified`.
    """
    return export_torchscript_verified(source, out_path, **options).path


def export_torchscript_verified(
    source: str | Path | nn.Module | LoadedNet,
    out_path: str | Path,
    *,
    image_size: Sequence[int] | None = None,
    metadata: ModelMetadata | None = None,
    verify: bool = True,
    min_cosine: float = DEFAULT_MIN_COSINE,
    num_crops: int = DEFAULT_NUM_CROPS,
    seed: int = 0,
) -> ExportResult:
    """Trace, reload the saved bytes and compare them with eager PyTorch; then write the file."""
    started = time.perf_counter()
    loaded = resolve_source(source, image_size, metadata)
    net, meta = loaded.net.eval(), loaded.metadata
    example = torch.zeros(EXAMPLE_BATCH, 3, *meta.input_size)
    buffer = io.BytesIO()
    with torch.no_grad(), quiet_tracing():  # torch.jit is deprecated: FutureWarnings
        traced = torch.jit.trace(net, example, check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={
            TORCHSCRIPT_METADATA_FILE: json.dumps(meta.to_props(), indent=1, sort_keys=True),
        })
    data = buffer.getvalue()
    verification: Verification | None = None
    if verify:
        reloaded = load_torchscript(io.BytesIO(data))[0]
        batch = verification_batch(meta.preprocess_spec(), num_crops=num_crops, seed=seed)
        verification = verify_runtime(
            reference=lambda x: _features(net, x), candidate=lambda x: _features(reloaded, x),
            batch=batch, min_cosine=min_cosine, what="TorchScript",
        )
    path = atomic_write_bytes(out_path, data)
    return ExportResult(path, "torchscript", meta, verification, time.perf_counter() - started)


def load_torchscript(
    file: str | Path | io.BytesIO, map_location: str = "cpu"
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load an archive written by :func:`export_torchscript` and its metadata."""
    extra = {TORCHSCRIPT_METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        module = torch.jit.load(file, map_location=map_location, _extra_files=extra)
    where = str(file) if isinstance(file, (str, Path)) else "TorchScript archive"
    if not extra[TORCHSCRIPT_METADATA_FILE]:
        raise ValueError(f"{where}: no {TORCHSCRIPT_METADATA_FILE} inside (not a reidsort export)")
    props = json.loads(extra[TORCHSCRIPT_METADATA_FILE])
    return module.eval(), ModelMetadata.from_props(props, where=where)


def _features(net: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(batch)).numpy()
