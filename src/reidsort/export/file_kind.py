"""What kind of model file a path holds, from its bytes: so that a file given where another kind
is expected (an ONNX model to ``embedder=torch``, a detector as an embedder, a TorchScript
archive as a training checkpoint) is a one-line error saying what the file is and what to pass.

Torch-free on purpose (the ONNX embedder imports it); ``onnx`` is imported only to read the
output shapes of an ONNX file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

ONNX_MODEL = "ONNX model"
TORCHSCRIPT = "TorchScript archive"
TORCH_CHECKPOINT = "PyTorch checkpoint"
NUMPY_ARCHIVE = "NumPy .npz archive"
UNKNOWN = "unknown"
#: The first bytes of a pickle (protocol 2+): a ``torch.save`` file of the pre-zip format.
PICKLE_MAGIC = b"\x80"
#: ONNX files are protobuf messages that start with field 1 (``ir_version``, a varint).
ONNX_FIRST_BYTE = b"\x08"


def sniff_model_file(path: str | Path) -> str:
    """One of the kinds above; UNKNOWN for a missing or unrecognised file."""
    path = Path(path)
    if not path.is_file():
        return UNKNOWN
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return UNKNOWN
        # torch.jit.save writes code/ and constants.pkl next to data.pkl; torch.save only data.pkl
        if any(name.endswith("/constants.pkl") for name in names):
            return TORCHSCRIPT
        if any(name.endswith("/data.pkl") for name in names):
            return TORCH_CHECKPOINT
        if names and all(name.endswith(".npy") for name in names):
            return NUMPY_ARCHIVE
        return UNKNOWN
    with path.open("rb") as handle:
        first = handle.read(1)
    if path.suffix.lower() == ".onnx" or first == ONNX_FIRST_BYTE:
        return ONNX_MODEL
    if first == PICKLE_MAGIC:
        return TORCH_CHECKPOINT
    return UNKNOWN


def onnx_output_shapes(path: str | Path) -> list[list[int | str]] | None:
    """The declared output shapes of an ONNX file (symbolic sizes as names); None if unreadable."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not parseable: the caller reports the file as it is
        return None
    return [[dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?")
             for dim in output.type.tensor_type.shape.dim] for output in model.graph.output]


def looks_like_detector(output_shapes: list[list[int | str]]) -> bool:
    """A Re-ID embedder returns one (N, D) output; YOLO-family detectors return (B, boxes, 5 + C)
    or (B, 4 + C, boxes), and SSD/Faster R-CNN-style exports several outputs of boxes."""
    return any(len(shape) >= 3 for shape in output_shapes)


def is_fairmot_onnx(path: str | Path) -> bool:
    """Whether an ONNX file is a reidsort FairMOT export (metadata ``kind=fairmot``)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - unreadable: not one
        return False
    return any(p.key == "kind" and p.value == "fairmot" for p in model.metadata_props)


def detector_hint(path: str | Path, output_shapes: list[list[int | str]], instead: str) -> str:
    """The one-line message for a detector given where a Re-ID model is expected."""
    if is_fairmot_onnx(path):
        return (f"{path}: is a FairMOT export (joint detection + embedding), not a Re-ID model; "
                f"pass it as detector=fairmot detector.ckpt_path={path}, which needs no embedder")
    shapes = ", ".join(str(shape) for shape in output_shapes)
    return (f"{path}: looks like an object detector (output {shapes}: one row per candidate "
            f"box), not a Re-ID model; pass it as detector=yolo_onnx detector.model_path={path} "
            f"and {instead}")
