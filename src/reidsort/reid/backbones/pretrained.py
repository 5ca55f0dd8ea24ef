"""ImageNet weights for torchvision backbones through torchvision's weights API.

``pretrained=imagenet`` means torchvision's ``IMAGENET1K_V1`` weights, the ones the Re-ID
references start from (reid-strong-baseline's ``resnet50-19c8e357.pth`` is ResNet-50 V1);
any other name of the architecture's weights enum (``IMAGENET1K_V2``, ``DEFAULT``) is taken as
it is. The file is downloaded once into the torch hub cache (``$TORCH_HOME/hub/checkpoints``)
with torchvision's hash check and read from there afterwards; on a machine without internet,
put the file there by hand: the error names the file, its URL and the folder.

The tensors then go through the same exact fit as a local weights file
(:func:`reidsort.reid.backbones.weights.fit_state_dict`): every backbone tensor must be present
with its shape; the ImageNet classifier is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision import models as tv_models

from reidsort.reid.backbones.weights import extract_state_dict, fit_state_dict, read_checkpoint

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=nn.Module)

#: the generic name for "the ImageNet weights the references use"
IMAGENET = "imagenet"
#: the torchvision weights that ``pretrained=imagenet`` selects
IMAGENET_WEIGHTS_NAME = "IMAGENET1K_V1"


def torchvision_weights(arch: str, pretrained: str) -> Any:
    """The torchvision ``WeightsEnum`` member for ``arch`` that ``pretrained`` names."""
    try:
        choices = tv_models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise ValueError(f"model.backbone.pretrained={pretrained!r}: torchvision has no "
                         f"pretrained weights for {arch}; pass model.backbone.weights=<file>"
                         ) from None
    name = IMAGENET_WEIGHTS_NAME if str(pretrained).lower() == IMAGENET else str(pretrained)
    try:
        return choices[name]
    except KeyError:
        known = ", ".join([IMAGENET, *choices.__members__])
        raise ValueError(f"model.backbone.pretrained={pretrained!r}: {arch} knows {known} "
                         "(or null for random init)") from None


def hub_cache_file(weights: Any) -> Path:
    """Where torch.hub keeps (or will keep) the file of ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def load_torchvision_pretrained(
    model: ModelT, arch: str, pretrained: str,
    rename: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> ModelT:
    """Load torchvision's ``pretrained`` weights of ``arch`` into the backbone ``model``;
    ``rename`` maps torchvision's state-dict names to the backbone's where they differ."""
    weights = torchvision_weights(arch, pretrained)
    return load_hub_file(model, weights.url, f"{arch} {weights.name}", rename)


def load_hub_file(
    model: ModelT, url: str, what: str,
    rename: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> ModelT:
    """Load the weights file at ``url`` (cached by torch.hub, hash-checked on download)."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not cached.is_file():
        log.info("downloading %s weights to %s", what, cached)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # writes a temporary file and renames it; checks the hash in the file name
            torch.hub.download_url_to_file(url, str(cached), hash_prefix=_hash_prefix(
                cached.name), progress=False)
        except Exception as exc:  # noqa: BLE001 - offline, proxy, disk: one clear message
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                type(exc).__name__
            raise ValueError(
                f"{what} weights are not in the torch hub cache and could not "
                f"be downloaded ({reason}): put {cached.name} (from {url}) into "
                f"{cached.parent}, or pass model.backbone.weights=<file>, or "
                "model.backbone.pretrained=null for random init"
            ) from exc
    state = extract_state_dict(read_checkpoint(cached), cached)
    if rename is not None:
        state = rename(state)
    model.load_state_dict(fit_state_dict(model, state, cached), strict=True)
    log.info("loaded %s weights from %s", what, cached)
    return model


def no_torchvision_weights(arch: str, pretrained: str | None) -> None:
    """For backbones that torchvision does not have: only ``pretrained=null`` is valid."""
    if pretrained not in (None, "", "null", "none"):
        raise ValueError(f"model.backbone.pretrained={pretrained!r}: torchvision has no "
                         f"{arch} weights; load a local file with model.backbone.weights=<file> "
                         "(for OSNet: torchreid's ImageNet or Re-ID .pth files)")


def _hash_prefix(filename: str) -> str | None:
    """torchvision file names end in ``-<first hex digits of the sha256>.pth``."""
    match = torch.hub.HASH_REGEX.search(filename)
    return match.group(1) if match else None


__all__ = ["IMAGENET", "IMAGENET_WEIGHTS_NAME", "hub_cache_file", "load_hub_file",
           "load_torchvision_pretrained",
           "no_torchvision_weights", "torchvision_weights"]
