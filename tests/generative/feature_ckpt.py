"""A tiny Re-ID checkpoint to score GAN samples with (``gan.quality.network=reid``) in tests
that must run without ../shared/data (whose ImageNet MobileNetV2 is the default)."""

from __future__ import annotations

from pathlib import Path

from tiny_models import tiny_module, write_checkpoint


def write_feature_checkpoint(folder: Path) -> Path:
    """An OSNet-x0.25 (random weights, non-trivial BatchNorm statistics) at 64x32."""
    path = Path(folder) / "reid_features" / "last.ckpt"
    if not path.is_file():
        write_checkpoint(tiny_module(), path)
    return path
