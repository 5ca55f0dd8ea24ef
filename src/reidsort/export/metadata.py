"""What an exported model says about itself: architecture, input, normalisation, feature.

Stored as ONNX ``metadata_props`` (string key/value pairs; visible in Netron and to any ONNX
runtime) and as ``reidsort_metadata.json`` inside TorchScript archives, with the same keys. An
embedder reads the input size, mean/std and channel order from here, so a user passes only the
model file. Torch-free on purpose (the ONNX embedder imports it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PIXEL_SCALE, PreprocessSpec

#: Bumped when keys change meaning; readers accept the versions they know.
METADATA_VERSION = "1"
#: The keys a model needs for an embedder to preprocess crops for it.
REQUIRED_KEYS: tuple[str, ...] = ("input_size", "mean", "std", "channel_order")
#: File name of the metadata inside a TorchScript archive (``torch.jit.save(_extra_files=...)``).
TORCHSCRIPT_METADATA_FILE = "reidsort_metadata.json"
#: Hex digits kept from SHA-256 digests (64 bits: enough to tell configs apart).
HASH_HEX_DIGITS = 16


@dataclass(frozen=True)
class ModelMetadata:
    """Metadata of an exported Re-ID model; ``to_props``/``from_props`` (de)serialise it."""

    input_size: tuple[int, int]  # (height, width) of the fixed model input
    feature_dim: int
    architecture: str = "unknown"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    # input = (pixel / pixel_scale - mean) / std
    pixel_scale: float = PIXEL_SCALE
    # which feature the model returns: after_bn / before_bn (BNNeck) or backbone (pooled)
    feature: str = "after_bn"
    l2_normalized: bool = True
    reidsort_version: str = ""
    training_config_sha256: str = ""
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(size_hw=self.input_size, mean=self.mean, std=self.std,
                              channel_order=self.channel_order, pixel_scale=self.pixel_scale)

    def to_props(self) -> dict[str, str]:
        """String key/value pairs (lists as JSON) for ONNX ``metadata_props``."""
        props = {
            "metadata_version": METADATA_VERSION,
            "architecture": self.architecture,
            "input_size": json.dumps([int(v) for v in self.input_size]),
            "input_layout": "NCHW",
            "mean": json.dumps([float(v) for v in self.mean]),
            "std": json.dumps([float(v) for v in self.std]),
            "channel_order": self.channel_order,
            "pixel_scale": repr(float(self.pixel_scale)),
            "feature": self.feature,
            "feature_dim": str(int(self.feature_dim)),
            "l2_normalized": "true" if self.l2_normalized else "false",
            "reidsort_version": self.reidsort_version,
            "training_config_sha256": self.training_config_sha256,
            "source": self.source,
        }
        props.update({str(k): str(v) for k, v in self.extra.items()})
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "model") -> ModelMetadata:
        """Parse ``to_props`` output; ValueError naming ``where`` and the bad or missing keys."""
        missing = [key for key in REQUIRED_KEYS if key not in props]
        if missing:
            raise ValueError(
                f"{where}: no reidsort metadata (missing {', '.join(missing)}); export it with "
                "task=export, or pass input_size/mean/std/channel_order to the embedder"
            )
        try:
            known = {
                "input_size": tuple(int(v) for v in json.loads(props["input_size"])),
                "mean": tuple(float(v) for v in json.loads(props["mean"])),
                "std": tuple(float(v) for v in json.loads(props["std"])),
                "channel_order": props["channel_order"].upper(),
                "pixel_scale": float(props.get("pixel_scale", PIXEL_SCALE)),
                "feature_dim": int(props.get("feature_dim", "0")),
                "architecture": props.get("architecture", "unknown"),
                "feature": props.get("feature", ""),
                "l2_normalized": props.get("l2_normalized", "false").lower() == "true",
                "reidsort_version": props.get("reidsort_version", ""),
                "training_config_sha256": props.get("training_config_sha256", ""),
                "source": props.get("source", ""),
            }
        except (TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{where}: unreadable reidsort metadata ({exc})") from exc
        if len(known["input_size"]) != 2:
            raise ValueError(f"{where}: metadata input_size must be [height, width], "
                             f"got {props['input_size']}")
        extra = {k: v for k, v in props.items() if k not in known and k not in _FIXED_KEYS}
        metadata = cls(**known, extra=extra)
        metadata.preprocess_spec()  # validates mean/std/order/size with one clear message
        return metadata


#: Keys written by ``to_props`` that are not fields (constant or derived).
_FIXED_KEYS = frozenset({"metadata_version", "input_layout"})


def config_sha256(config: Any) -> str:
    """A short, formatting-independent SHA-256 of a (plain) config: canonical JSON, sorted keys."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_HEX_DIGITS]
