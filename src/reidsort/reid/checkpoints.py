"""Checkpoint helpers: find, check compatibility, and load backbone weights for fine-tuning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidsort.reid.backbones.weights import read_checkpoint
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: state-dict prefixes that transfer to a model trained on other identities
TRANSFERABLE_PREFIXES = ("backbone.", "head.bn.")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` with the default safe settings (weights_only), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = read_checkpoint(path)
    except ValueError as exc:  # damaged file, or pickled objects a safe load refuses
        raise ReidsortError(f"not a readable checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ReidsortError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def find_last_checkpoint(log_dir: str | Path, task_name: str) -> Path:
    """The newest ``last.ckpt`` of ``task_name`` under ``log_dir`` (for ``resume=true``)."""
    base = Path(log_dir) / task_name
    candidates = sorted(base.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"resume=true but no last.ckpt found under {base}")
    return candidates[-1]


def check_resume_compatible(path: str | Path, model: nn.Module, num_classes: int,
                            backbone_target: str) -> None:
    """Refuse to resume from a checkpoint of another architecture or number of identities."""
    checkpoint = load_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {})
    old_target = (hparams.get("model") or {}).get("backbone", {}).get("_target_")
    if old_target and old_target != backbone_target:
        raise ReidsortError(
            f"{path}: checkpoint backbone {old_target} differs from this run's {backbone_target}"
        )
    old_classes = hparams.get("num_classes")
    if old_classes is not None and int(old_classes) != num_classes:
        raise ReidsortError(
            f"{path}: checkpoint was trained on {old_classes} identities, this dataset has "
            f"{num_classes} (use init_from=<ckpt> to fine-tune on new identities)"
        )
    mismatched = _shape_mismatches(checkpoint["state_dict"], model.state_dict())
    if mismatched:
        raise ReidsortError(f"{path}: parameters do not fit this model: {mismatched}")


def _shape_mismatches(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                      limit: int = 5) -> str:
    missing = [k for k in target if k not in source]
    unexpected = [k for k in source if k not in target]
    shapes = [f"{k} {tuple(source[k].shape)}!={tuple(target[k].shape)}"
              for k in target if k in source and source[k].shape != target[k].shape]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if keys:
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            parts.append(f"{label} {len(keys)}: {', '.join(keys[:limit])}{more}")
    return "; ".join(parts)


def load_transferable_weights(model: nn.Module, path: str | Path) -> int:
    """Load backbone and BNNeck weights from ``path``; the classifier stays freshly initialised.

    Returns the number of tensors loaded. Every backbone tensor must be present with the same
    shape, otherwise a one-line error lists the offending keys.
    """
    state = load_checkpoint(path)["state_dict"]
    source = {k: v for k, v in state.items() if k.startswith(TRANSFERABLE_PREFIXES)}
    target = {k: v for k, v in model.state_dict().items() if k.startswith(TRANSFERABLE_PREFIXES)}
    mismatched = _shape_mismatches(source, target)
    if mismatched:
        raise ReidsortError(f"init_from={path}: weights do not fit this model: {mismatched}")
    model.load_state_dict(source, strict=False)
    log.info("init_from: loaded %d backbone/neck tensors from %s", len(source), path)
    return len(source)
