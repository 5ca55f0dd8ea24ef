"""PyTorch embedder: features from a ``task=train`` Lightning checkpoint or from a TorchScript
archive of ``task=export format=torchscript``.

The same network as the export (backbone + BNNeck + L2 normalisation) and the same shared
preprocessing as the ONNX embedder, so ``embedder=torch`` and ``embedder=onnx`` agree to float
precision. A TorchScript archive carries its input size, mean/std and channel order in
``reidsort_metadata.json``. Needs torch; the tracker's torch-free path is ``embedder=onnx``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from reidsort.data.preprocess import PreprocessSpec
from reidsort.embedders.base import DEFAULT_MAX_BATCH, NetworkEmbedder, check_max_batch
from reidsort.export.file_kind import (
    ONNX_MODEL,
    TORCHSCRIPT,
    detector_hint,
    looks_like_detector,
    onnx_output_shapes,
    sniff_model_file,
)
from reidsort.export.metadata import ModelMetadata
from reidsort.export.model import load_checkpoint_net, to_device
from reidsort.utils.errors import ReidsortError


class TorchEmbedder(NetworkEmbedder):
    """Appearance features from a Lightning checkpoint or an exported TorchScript archive.

    ``image_size`` overrides the training config's input size of a checkpoint (needed when it
    has no ``config.yaml`` beside it); a TorchScript archive runs at its exported size.
    ``device`` is "auto" (CUDA when available), "cpu", "cuda:0", ...; ``num_threads`` sets
    torch's CPU threads (None: leave torch's setting).
    """

    def __init__(
        self,
        ckpt_path: str | os.PathLike,
        max_batch: int = DEFAULT_MAX_BATCH,
        device: str = "auto",
        num_threads: int | None = None,
        image_size: Sequence[int] | None = None,
    ) -> None:
        if ckpt_path is None or str(ckpt_path) == "":
            raise ReidsortError("embedder.ckpt_path is not set: pass a task=train checkpoint "
                                "or a task=export format=torchscript .pt")
        kind = sniff_model_file(ckpt_path)
        if kind == ONNX_MODEL:
            raise ReidsortError(_onnx_given_message(ckpt_path))
        if kind == TORCHSCRIPT:
            net, metadata = _load_torchscript(ckpt_path, image_size)
            self._setup(net, metadata, max_batch, device, num_threads)
            return
        loaded = load_checkpoint_net(ckpt_path, image_size)
        self._setup(loaded.net, loaded.metadata, max_batch, device, num_threads)

    @classmethod
    def from_module(
        cls,
        net: nn.Module,
        spec: PreprocessSpec,
        max_batch: int = DEFAULT_MAX_BATCH,
        device: str = "cpu",
    ) -> TorchEmbedder:
        """An embedder around an in-memory network returning (N, D) features for ``spec``."""
        embedder = cls.__new__(cls)
        with torch.no_grad():
            was_training = net.training
            feature_dim = int(net.eval()(torch.zeros(1, 3, *spec.size_hw)).shape[1])
            net.train(was_training)
        metadata = ModelMetadata(input_size=spec.size_hw, feature_dim=feature_dim, mean=spec.mean,
                                 std=spec.std, channel_order=spec.channel_order,
                                 pixel_scale=spec.pixel_scale,
                                 architecture=type(net).__name__)
        embedder._setup(net, metadata, max_batch, device, None)
        return embedder

    def _setup(self, net: nn.Module, metadata: ModelMetadata, max_batch: int, device: str,
               num_threads: int | None) -> None:
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.max_batch = check_max_batch(max_batch)
        self.net = to_device(net, device).eval()
        self.device = next(self.net.parameters()).device
        self.metadata = metadata
        self.spec = metadata.preprocess_spec()
        self.feature_dim = int(metadata.feature_dim)

    def _infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            features = self.net(torch.from_numpy(batch_nchw).to(self.device))
        return features.float().cpu().numpy()


def _onnx_given_message(path: str | os.PathLike) -> str:
    shapes = onnx_output_shapes(path)
    if shapes and looks_like_detector(shapes):
        return detector_hint(path, shapes, "a task=train checkpoint or a task=export "
                                           "format=torchscript .pt as embedder.ckpt_path")
    return (f"{path}: is an ONNX model, not a PyTorch checkpoint; pass it as embedder=onnx "
            f"embedder.model_path={path}")


def _load_torchscript(path: str | os.PathLike,
                      image_size: Sequence[int] | None) -> tuple[nn.Module, ModelMetadata]:
    from reidsort.export.torchscript import load_torchscript

    try:
        net, metadata = load_torchscript(str(path))
    except ValueError as exc:  # no or unreadable reidsort_metadata.json
        raise ReidsortError(str(exc)) from None
    except RuntimeError as exc:  # a damaged archive
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReidsortError(f"{path}: not a loadable TorchScript archive ({first})") from exc
    if image_size is not None and tuple(int(v) for v in image_size) != metadata.input_size:
        # traced at one size (the DeepSORT CNN's fc layer cannot take another one)
        raise ReidsortError(
            f"{path}: a TorchScript archive runs at its exported input size "
            f"{list(metadata.input_size)}, not {[int(v) for v in image_size]}; leave "
            "image_size null (or export again with task.image_size)")
    return net, metadata
