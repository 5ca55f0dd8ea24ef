"""PyTorch embedder: features straight from a ``task=train`` Lightning checkpoint.

The same network as the export (backbone + BNNeck + L2 normalisation) and the same shared
preprocessing as the ONNX embedder, so ``embedder=torch`` and ``embedder=onnx`` agree to float
precision. Needs torch; the tracker's torch-free path is ``embedder=onnx``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from reidsort.data.preprocess import PreprocessSpec
from reidsort.embedders.base import DEFAULT_MAX_BATCH, NetworkEmbedder, check_max_batch
from reidsort.export.metadata import ModelMetadata
from reidsort.export.model import load_checkpoint_net, to_device
from reidsort.utils.errors import ReidsortError


class TorchEmbedder(NetworkEmbedder):
    """Appearance features from a Lightning checkpoint.

    ``image_size`` overrides the training config's input size (needed when the checkpoint has no
    ``config.yaml`` beside it); ``device`` is "auto" (CUDA when available), "cpu", "cuda:0", ...;
    ``num_threads`` sets torch's CPU threads (None: leave torch's setting).
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
            raise ReidsortError("embedder.ckpt_path is not set: pass a task=train checkpoint")
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
