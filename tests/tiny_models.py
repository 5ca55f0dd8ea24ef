"""Tiny Re-ID models and Lightning checkpoints for tests (CPU, under a second to build).

``write_checkpoint`` saves through Lightning's own ``Trainer.save_checkpoint`` (the file layout
``task=train`` writes) and puts a minimal training ``config.yaml`` beside it, like ``task=train``.
Shared by tests/export and tests/embedders; other tests may use it to get an exported model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

#: small input so that tests run fast; OSNets are fully convolutional
TINY_IMAGE_SIZE = (64, 32)
#: the DeepSORT CNN's fixed input (height, width)
DEEPSORT_IMAGE_SIZE = (128, 64)

BACKBONE_TARGETS = {
    "osnet_x0_25": "reidsort.reid.backbones.osnet_x0_25",
    "deepsort_cnn": "reidsort.reid.backbones.deepsort_cnn",
}


class TinyBackbone(nn.Module):
    """Two conv-BN-ReLU stages and global pooling: a backbone-shaped network with few ops, for
    tests about the export machinery rather than about an architecture."""

    def __init__(self, feature_dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.feature_dim = feature_dim
        self.layers = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, feature_dim, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(feature_dim), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        randomise_batch_norm(self, seed)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class NormFreeBackbone(nn.Module):
    """Two convolutions, ReLU and pooling, no normalisation: its features do not depend on
    which other images share the batch, so one process and n DDP ranks can be compared exactly
    on CPU (SyncBatchNorm, which would give BatchNorm that property, needs a GPU)."""

    def __init__(self, feature_dim: int = 16, weights: Any = None,
                 pretrained: Any = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.feature_dim = feature_dim
        self.layers = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, feature_dim, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def tiny_module(backbone: str = "osnet_x0_25", num_classes: int = 4, seed: int = 0,
                **backbone_kwargs: Any):
    """A ReIDModule with random weights and non-trivial BatchNorm statistics, in eval mode."""
    from reidsort.reid.module import ReIDModule

    torch.manual_seed(seed)
    module = ReIDModule(
        num_classes=num_classes,
        model={"backbone": {"_target_": BACKBONE_TARGETS[backbone], "weights": None,
                            **backbone_kwargs},
               "head": {"_target_": "reidsort.reid.head.BNNeckHead"}},
        loss={"_target_": "reidsort.reid.objective.ReIDObjective"},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    )
    randomise_batch_norm(module, seed)
    return module.eval()


def randomise_batch_norm(module: torch.nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters away from their (0, 1) defaults, so that a
    model that forgot a BN layer, or its running stats, gives different features."""
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            size = layer.num_features
            with torch.no_grad():
                layer.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
                layer.running_var.copy_(0.5 + torch.rand(size, generator=generator))
                if layer.weight is not None:
                    layer.weight.copy_(0.5 + torch.rand(size, generator=generator))


def write_checkpoint(module, ckpt_path: Path, image_size=TINY_IMAGE_SIZE,
                     with_config: bool = True) -> Path:
    """Save ``module`` like ``task=train`` does: Lightning checkpoint + config.yaml beside it."""
    import lightning as L

    ckpt_path = Path(ckpt_path)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(ckpt_path)
    if with_config:
        config = {"data": {"image_size": list(image_size)},
                  "model": dict(module.hparams.model), "seed": 0}
        (ckpt_path.parent / "config.yaml").write_text(yaml.safe_dump(config))
    return ckpt_path
