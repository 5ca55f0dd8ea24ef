"""FairMOT (joint detection + embedding) as the tracking app's detector: one forward pass per
frame gives the boxes, scores and identity embeddings (``Detections.embeddings``), so
``task=track detector=fairmot`` runs no separate embedder.

``ckpt_path`` is either a ``task=jde`` Lightning checkpoint (run with PyTorch) or its
``task=export`` ONNX file (run with ONNX Runtime; that path never imports torch). Both run the
same graph (:class:`reidsort.jde.export.JDEInference`: the heatmap's sigmoid is part of the
network) and the same NumPy decoding (:func:`reidsort.jde.decode.decode`: 3x3 max-pool peaks,
top-K, score threshold, L2-normalised embeddings of the kept peaks).

Preprocessing is the training one (:mod:`reidsort.jde.data`): BGR frame -> RGB float, letterbox
centred to the model's ``input_hw`` with FairMOT's grey 127.5, ``(pixel / 255 - mean) / std``
(ImageNet mean/std from the checkpoint's hyper-parameters or the ONNX metadata). Boxes are
mapped back to the original frame.

The association is the tracker's choice: ``tracker=jde`` is FairMOT's own (embedding EMA fused
with the Kalman Mahalanobis distance, then IoU); DeepSORT and the others of the family take the
same embeddings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidsort.detection.base import Detections, PixelDetector
from reidsort.export.file_kind import (
    ONNX_MODEL,
    TORCH_CHECKPOINT,
    onnx_output_shapes,
    sniff_model_file,
)
from reidsort.jde.augment import letterbox_frame
from reidsort.jde.checkpoint import FAIRMOT_KIND, KIND_KEY, JDEModelInfo
from reidsort.jde.decode import TOP_K, decode
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: FairMOT's ``opt.conf_thres``: peaks scoring at most this are not detections
CONF_THRES = 0.4
#: the graph's outputs, in order (reidsort.jde.export.OUTPUT_NAMES, repeated here: torch-free)
OUTPUT_NAMES: tuple[str, ...] = ("heatmap", "size", "offset", "embedding")
#: ONNX Runtime session option: may idle intra-op threads busy-wait?
SPINNING_KEY = "session.intra_op.allow_spinning"
DEFAULT_BATCH_SIZE = 8
#: metadata keys of a reidsort Re-ID export (reidsort.export.metadata), to name it in errors
REID_KEYS = ("feature_dim", "input_size")
#: no boxes to map with the frame (letterbox_frame maps a frame and its boxes)
NO_BOXES = np.zeros((0, 4))


class OnnxBackend:
    """A FairMOT ONNX export run with ONNX Runtime; ``info`` from the file's metadata."""

    def __init__(self, path: Path, threads: int | None, allow_spinning: bool,
                 providers: Sequence[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.add_session_config_entry(SPINNING_KEY, "1" if allow_spinning else "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types
            raise ReidsortError(f"ONNX Runtime cannot load {path}: "
                                f"{str(error).splitlines()[0]}") from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        if props.get(KIND_KEY) != FAIRMOT_KIND:
            raise ReidsortError(_not_fairmot(path, props))
        self.info = JDEModelInfo.from_props(props, str(path))
        names = [output.name for output in self.session.get_outputs()]
        if sorted(names) != sorted(OUTPUT_NAMES):
            raise ReidsortError(f"{path}: FairMOT outputs are {names}, expected "
                                f"{list(OUTPUT_NAMES)}")
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        dims = list(model_input.shape)
        if len(dims) == 4 and all(isinstance(d, int) for d in dims[2:]) \
                and tuple(dims[2:]) != self.info.input_hw:
            raise ReidsortError(f"{path}: input {dims[2:]} contradicts its metadata input_hw "
                                f"{list(self.info.input_hw)}")
        batch = dims[0] if dims else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        count = len(batch)
        if self.fixed_batch and count < self.fixed_batch:  # pad a fixed-size batch
            filler = np.zeros((self.fixed_batch - count, *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, filler])
        return [out[:count] for out in self.session.run(list(OUTPUT_NAMES),
                                                        {self.input_name: batch})]


class TorchBackend:
    """A ``task=jde`` checkpoint run with PyTorch (same graph as the export)."""

    fixed_batch = None

    def __init__(self, path: Path, device: str, threads: int | None) -> None:
        import torch

        from reidsort.jde.checkpoint import load_jde_model
        from reidsort.jde.export import JDEInference

        if threads:
            torch.set_num_threads(int(threads))
        net, self.info = load_jde_model(path)
        chosen = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.device = torch.device(chosen)
        self.net = JDEInference(net).to(self.device).eval()
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            outputs = self.net(torch.from_numpy(batch).to(self.device))
        return [t.float().cpu().numpy() for t in outputs]


class FairMOTDetector(PixelDetector):
    """FairMOT boxes, scores and embeddings (see the module docstring).

    Args:
        ckpt_path: a ``task=jde`` ``.ckpt`` or its ``task=export`` ``.onnx``.
        conf_thres: minimum heatmap score of a detection (FairMOT: 0.4; strictly above).
        top_k: peaks kept per image before the threshold (FairMOT ``K``: 500).
        batch_size: images per forward pass (offline mode gives the detector whole chunks).
        device: checkpoints only: ``auto`` (CUDA when available), ``cpu``, ``cuda:1``, ...
        threads: ONNX Runtime intra-op threads, or torch threads for a checkpoint (None = the
            runtime's default).
        allow_spinning: let idle ONNX Runtime threads busy-wait (off, as ``yolo_onnx``).
        providers: ONNX Runtime execution providers, in order of preference.
    """

    produces_embeddings = True

    def __init__(
        self,
        ckpt_path: str | os.PathLike | None,
        conf_thres: float = CONF_THRES,
        top_k: int = TOP_K,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str = "auto",
        threads: int | None = None,
        allow_spinning: bool = False,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        if ckpt_path is None:
            raise ReidsortError("detector=fairmot needs detector.ckpt_path=<task=jde last.ckpt "
                                "or its task=export .onnx>")
        self.model_path = Path(ckpt_path)
        if not self.model_path.is_file():
            raise ReidsortError(f"FairMOT model not found: {self.model_path}")
        if not 0.0 <= float(conf_thres) < 1.0:
            raise ReidsortError(f"detector.conf_thres must be in [0, 1), got {conf_thres}")
        if int(top_k) < 1 or int(batch_size) < 1:
            raise ReidsortError(f"detector.top_k and detector.batch_size must be >= 1, got "
                                f"{top_k}, {batch_size}")
        self.conf_thres, self.top_k = float(conf_thres), int(top_k)
        kind = sniff_model_file(self.model_path)
        if kind == ONNX_MODEL:
            self.backend: OnnxBackend | TorchBackend = OnnxBackend(
                self.model_path, threads, allow_spinning, providers)
        elif kind == TORCH_CHECKPOINT:
            self.backend = TorchBackend(self.model_path, str(device), threads)
        else:
            raise ReidsortError(f"{self.model_path}: is {_article(kind)}, not a FairMOT model; "
                                "pass a task=jde checkpoint (.ckpt) or its task=export .onnx")
        self.info = self.backend.info
        self.batch_size = self.backend.fixed_batch or int(batch_size)
        self._mean = np.asarray(self.info.mean, dtype=np.float32) * np.float32(255.0)
        self._inv_std = 1.0 / (np.asarray(self.info.std, dtype=np.float32) * np.float32(255.0))
        log.info("FairMOT detector %s (%s): %s, input %dx%d, %d-d embeddings",
                 self.model_path.name, "ONNX Runtime" if kind == ONNX_MODEL else "PyTorch",
                 self.info.backbone, *self.info.input_hw, self.info.embedding_dim)

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list]:
        """BGR uint8 frames -> the (N, 3, H, W) float32 network input and each letterbox."""
        batch = np.empty((len(images), 3, *self.info.input_hw), dtype=np.float32)
        transforms = []
        for i, image in enumerate(images):
            rgb = np.ascontiguousarray(image[..., ::-1])
            boxed, _, transform = letterbox_frame(rgb, NO_BOXES, self.info.input_hw)
            batch[i] = ((boxed - self._mean) * self._inv_std).transpose(2, 0, 1)
            transforms.append(transform)
        return batch, transforms

    def detect_images(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            batch, transforms = self.preprocess(chunk)
            heatmap, size, offset, embedding = self.backend(batch)
            results.extend(self.postprocess(heatmap[i], size[i], offset[i], embedding[i],
                                            transforms[i]) for i in range(len(chunk)))
        return results

    def postprocess(self, heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray,
                    embedding: np.ndarray, transform) -> Detections:
        """One image's maps (heatmap already probabilities) -> detections in frame pixels."""
        frame = decode(heatmap, size, offset, embedding, stride=self.info.stride,
                       top_k=self.top_k, score_threshold=self.conf_thres,
                       size_mode=self.info.size_mode, letterbox=transform)
        dets = frame.dets
        return Detections(dets[:, :4], dets[:, 4], dets[:, 5].astype(np.int64),
                          embeddings=frame.embeddings)


def _not_fairmot(path: Path, props: dict[str, str]) -> str:
    """The one-line error for an ONNX file that is not a FairMOT export, saying what it is."""
    if all(key in props for key in REID_KEYS):
        return (f"{path}: is a Re-ID embedder export, not a FairMOT one; use it as embedder=onnx "
                f"embedder.model_path={path} with another detector")
    shapes = onnx_output_shapes(path) or []
    if len(shapes) == 1 and len(shapes[0]) == 3:
        return (f"{path}: looks like a YOLO detector (output {shapes[0]}), not a FairMOT export; "
                f"use detector=yolo_onnx detector.model_path={path} (with an embedder)")
    return (f"{path}: not a reidsort FairMOT export (no {KIND_KEY}={FAIRMOT_KIND} metadata); "
            "export the task=jde checkpoint with task=export ckpt_path=<last.ckpt>, or pass the "
            ".ckpt itself")


def _article(kind: str) -> str:
    return "an unrecognised file" if kind == "unknown" else f"a {kind}"


__all__ = ["CONF_THRES", "FairMOTDetector"]
