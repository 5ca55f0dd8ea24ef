"""What an export produced: the file, its metadata and how it compared with PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reidsort.export.metadata import ModelMetadata
from reidsort.export.verify import Verification

#: The formats ``task=export`` writes, with their file extensions.
FORMAT_EXTENSIONS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt"}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    metadata: ModelMetadata
    verification: Verification | None
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size
