"""Embeddings of query and gallery images for ``task=eval``, from one of four sources.

* a Lightning checkpoint (``.ckpt``, full or weights-only): the :class:`ReIDModule` rebuilt from
  its hyper-parameters, images through :func:`reidsort.data.transforms.eval_transform` (the
  training preprocessing) at the training image size (``config.yaml`` beside the checkpoint, or
  the data config recorded inside it) unless one is given;
* an exported ONNX model (``.onnx``): :class:`reidsort.embedders.onnx.OnnxEmbedder`, whose
  metadata carries the input size, mean/std and channel order;
* an exported TorchScript archive (``.pt`` of ``task=export format=torchscript``):
  :class:`reidsort.embedders.torch.TorchEmbedder`, metadata from ``reidsort_metadata.json``;
* precomputed features (``.npz``, as ``task.save_features`` writes them): arrays
  ``query_features``, ``gallery_features``, ``query_pids``, ``gallery_pids`` and optionally
  ``query_camids``, ``gallery_camids``, ``query_paths``, ``gallery_paths``.

Optional horizontal-flip test-time augmentation averages the embeddings of the image and its
mirror image, then L2-normalises. Images that cannot be decoded are skipped with a warning and
counted; their records are dropped from the evaluation.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from reidsort.data.datasets import ImageRecord
from reidsort.data.image_io import read_image_rgb
from reidsort.data.transforms import eval_transform
from reidsort.export.file_kind import ONNX_MODEL, TORCH_CHECKPOINT, TORCHSCRIPT, sniff_model_file
from reidsort.reid.checkpoints import load_checkpoint
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

CHECKPOINT, ONNX, TORCHSCRIPT_MODEL, FEATURES = "checkpoint", "onnx", "torchscript", "features"
#: what a file's bytes say it is -> the source kind (a .pt may be a checkpoint or an export)
SNIFFED_KIND = {TORCH_CHECKPOINT: CHECKPOINT, TORCHSCRIPT: TORCHSCRIPT_MODEL, ONNX_MODEL: ONNX}
SUFFIX_KIND = {".ckpt": CHECKPOINT, ".pt": CHECKPOINT, ".pth": CHECKPOINT, ".onnx": ONNX,
               ".npz": FEATURES}
#: unreadable paths named in the warning (the rest are only counted)
SHOWN_BAD_PATHS = 3


def source_kind(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_KIND:
        raise ReidsortError(
            f"ckpt_path={path}: expected a Lightning checkpoint (.ckpt), a TorchScript export "
            "(.pt), an ONNX model (.onnx) or saved features (.npz)"
        )
    kind = SUFFIX_KIND[suffix]
    if kind == FEATURES:
        return kind
    # the file's bytes decide between the model kinds
    return SNIFFED_KIND.get(sniff_model_file(path), kind)


@dataclass(frozen=True)
class Embeddings:
    features: np.ndarray
    """(N, D) float32, L2-normalised (model sources)"""
    kept: np.ndarray
    """(num_records,) bool: the image was readable and has a row in ``features``"""

    @property
    def skipped(self) -> int:
        return int((~self.kept).sum())


class _Images(Dataset):
    """Decoded images (uint8 RGB, HWC) or their preprocessed tensors; None when unreadable."""

    def __init__(self, paths: Sequence[str],
                 transform: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = read_image_rgb(self.paths[index])
        if image is None:
            return None, index
        if self.transform is None:
            return image, index
        return self.transform(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)), \
            index


def _collate(items: list[tuple[Any, int]]) -> tuple[Any, list[int], list[int]]:
    good = [(image, index) for image, index in items if image is not None]
    bad = [index for image, index in items if image is None]
    images = [image for image, _ in good]
    if images and isinstance(images[0], torch.Tensor):
        images = torch.stack(images)
    return images, [index for _, index in good], bad


def _l2_normalize(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


class ImageEmbedder:
    """Turns image records into L2-normalised embeddings with one model."""

    def __init__(self, embed_batch: Callable[[Any, bool], np.ndarray], feature_dim: int,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None, description: str,
                 batch_size: int, num_workers: int) -> None:
        self._embed_batch = embed_batch
        self.feature_dim = feature_dim
        self.transform = transform
        self.description = description
        self.batch_size = batch_size
        self.num_workers = num_workers

    def embed_records(self, records: Sequence[ImageRecord], flip: bool) -> Embeddings:
        loader = DataLoader(_Images([r.path for r in records], self.transform),
                            batch_size=self.batch_size, num_workers=self.num_workers,
                            collate_fn=_collate, shuffle=False)
        features = np.zeros((len(records), self.feature_dim), dtype=np.float32)
        kept = np.zeros(len(records), dtype=bool)
        bad: list[int] = []
        for images, indices, unreadable in loader:
            bad.extend(unreadable)
            if not indices:
                continue
            embedded = self._embed_batch(images, False)
            if flip:
                embedded = _l2_normalize(embedded + self._embed_batch(images, True))
            features[indices] = embedded
            kept[indices] = True
        if bad:
            shown = ", ".join(records[i].path for i in bad[:SHOWN_BAD_PATHS])
            warnings.warn(f"skipped {len(bad)} unreadable image(s): {shown}"
                          + (" ..." if len(bad) > SHOWN_BAD_PATHS else ""),
                          RuntimeWarning, stacklevel=2)
        return Embeddings(features[kept], kept)


def _training_image_size(ckpt_path: Path,
                         checkpoint: dict[str, Any]) -> tuple[int, int] | None:
    from reidsort.export.model import read_training_config, recorded_training_config

    config = read_training_config(ckpt_path) or recorded_training_config(checkpoint) or {}
    size = (config.get("data") or {}).get("image_size")
    return (int(size[0]), int(size[1])) if size else None


def checkpoint_embedder(ckpt_path: str | Path, image_size: Sequence[int] | None,
                        fallback_image_size: Sequence[int], device: str,
                        eval_feature: str | None, batch_size: int,
                        num_workers: int, checkpoint: dict[str, Any] | None = None
                        ) -> ImageEmbedder:
    """A :class:`ReIDModule` from a ``task=train`` checkpoint, on ``device`` ("auto" = CUDA
    when present); ``checkpoint``: its contents when already loaded."""
    from reidsort.reid.module import ReIDModule

    path = Path(ckpt_path)
    if checkpoint is None:
        checkpoint = load_checkpoint(path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "model" not in hparams or "num_classes" not in hparams:
        raise ReidsortError(f"{path}: not a reidsort Re-ID checkpoint (no model hyper-parameters)")
    if eval_feature:
        hparams["eval_feature"] = eval_feature
    try:
        module = ReIDModule(**hparams)
        module.load_state_dict(checkpoint["state_dict"])
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ReidsortError(f"{path}: cannot rebuild the model ({type(exc).__name__}: "
                            f"{first_line})") from exc
    target = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                          else ("cpu" if device == "auto" else device))
    module = module.to(target).eval()
    size = tuple(image_size) if image_size else (_training_image_size(path, checkpoint)
                                                 or tuple(fallback_image_size))

    @torch.no_grad()
    def embed(images: torch.Tensor, mirrored: bool) -> np.ndarray:
        batch = images.to(target)
        if mirrored:
            batch = batch.flip(dims=(3,))
        return module(batch).embedding.float().cpu().numpy()

    backbone = hparams["model"]["backbone"]["_target_"].rsplit(".", 1)[-1]
    description = (f"checkpoint {path} ({backbone}, {module.hparams.eval_feature} feature, "
                   f"input {size[0]}x{size[1]}, {target})")
    return ImageEmbedder(embed, module.feature_dim, eval_transform(size), description,
                         batch_size, num_workers)


def onnx_embedder(model_path: str | Path, batch_size: int, num_workers: int,
                  num_threads: int | None) -> ImageEmbedder:
    """An exported model through ONNX Runtime; preprocessing comes from its metadata."""
    from reidsort.embedders.onnx import OnnxEmbedder

    embedder = OnnxEmbedder(str(model_path), max_batch=batch_size, num_threads=num_threads)
    return _crop_embedder(embedder, f"ONNX model {model_path}", batch_size, num_workers)


def torchscript_embedder(model_path: str | Path, device: str, batch_size: int,
                         num_workers: int) -> ImageEmbedder:
    """A ``task=export format=torchscript`` archive; preprocessing comes from its metadata."""
    from reidsort.embedders.torch import TorchEmbedder

    embedder = TorchEmbedder(str(model_path), max_batch=batch_size, device=device)
    return _crop_embedder(embedder, f"TorchScript model {model_path}", batch_size, num_workers,
                          str(embedder.device))


def _crop_embedder(embedder: Any, what: str, batch_size: int, num_workers: int,
                   device: str | None = None) -> ImageEmbedder:
    """An embedder of the tracker (BGR crops, its own preprocessing) over decoded RGB images."""

    def embed(images: list[np.ndarray], mirrored: bool) -> np.ndarray:
        # the embedder takes BGR crops (what tracking cuts from video frames)
        crops = [np.ascontiguousarray(image[:, ::-1, ::-1] if mirrored else image[:, :, ::-1])
                 for image in images]
        return np.asarray(embedder.embed_crops(crops), dtype=np.float32)

    size = embedder.spec.size_hw if hasattr(embedder, "spec") else None
    details = [f"input {size[0]}x{size[1]}"] if size else []
    details += [device] if device else []
    description = what + (f" ({', '.join(details)})" if details else "")
    return ImageEmbedder(embed, int(embedder.feature_dim), None, description, batch_size,
                         num_workers)


@dataclass(frozen=True)
class SavedFeatures:
    query_features: np.ndarray
    gallery_features: np.ndarray
    query: list[ImageRecord]
    gallery: list[ImageRecord]


def load_saved_features(path: str | Path) -> SavedFeatures:
    """Features saved by ``task.save_features`` (or made elsewhere), with their ids."""
    path = Path(path)
    if not path.is_file():
        raise ReidsortError(f"features file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:
        raise ReidsortError(f"{path}: not a readable .npz features file ({exc})") from exc
    required = ("query_features", "gallery_features", "query_pids", "gallery_pids")
    missing = [key for key in required if key not in arrays]
    if missing:
        raise ReidsortError(f"{path}: missing arrays {missing} (expected {list(required)})")

    def records(role: str) -> list[ImageRecord]:
        pids = arrays[f"{role}_pids"].astype(np.int64).ravel()
        camids = arrays.get(f"{role}_camids", np.full(pids.shape, -1)).astype(np.int64).ravel()
        paths = arrays.get(f"{role}_paths", np.array([""] * pids.size)).astype(str).ravel()
        if not len(camids) == len(paths) == len(pids) == len(arrays[f"{role}_features"]):
            raise ReidsortError(f"{path}: {role} features, pids, camids and paths differ in "
                                "length")
        return [ImageRecord(str(p), int(i), int(c)) for p, i, c in zip(paths, pids, camids)]

    query, gallery = records("query"), records("gallery")
    return SavedFeatures(np.asarray(arrays["query_features"], dtype=np.float32),
                         np.asarray(arrays["gallery_features"], dtype=np.float32), query, gallery)
