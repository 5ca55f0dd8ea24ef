"""Hydra glue: project-root resolver, config location, and small instantiation helpers."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "conf"


def config_dir() -> Path:
    """The Hydra config folder: ``$REIDSORT_CONFIG_DIR`` or ``<project>/conf``."""
    return Path(os.environ.get("REIDSORT_CONFIG_DIR", CONFIG_DIR))


def _project_root() -> str:
    return os.environ.get("REIDSORT_ROOT", str(PROJECT_ROOT))


def _wandb_offline() -> bool:
    """W&B runs offline unless WANDB_MODE says otherwise or its server is reachable."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "disabled", "dryrun"}:
        return True
    if mode == "online":
        return False
    try:
        with socket.create_connection(("api.wandb.ai", 443), timeout=1.5):
            return False
    except OSError:
        return True


def register_resolvers() -> None:
    """Register the ``${reidsort_root:}`` and ``${wandb_offline:}`` resolvers (idempotent)."""
    if not OmegaConf.has_resolver("reidsort_root"):
        OmegaConf.register_new_resolver("reidsort_root", _project_root)
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", _wandb_offline, use_cache=True)


def to_plain(cfg: Any) -> Any:
    """Resolve a config node into plain Python containers (safe for ``save_hyperparameters``)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


register_resolvers()


def resolved_yaml(cfg: DictConfig) -> str:
    """The fully resolved config as YAML, without Hydra's own (runtime) node."""
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    plain = OmegaConf.create(container)
    # interpolations may point at ${hydra:...}; resolve them against the live HydraConfig
    return OmegaConf.to_yaml(plain, resolve=True)


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` (``kwargs`` override the node's), but a user error raised by
    the constructor (a missing model file, say) surfaces as itself instead of inside Hydra's
    InstantiationException, so the CLI prints it as one line."""
    import hydra
    from hydra.errors import InstantiationException

    from reidsort.utils.errors import USER_ERROR_TYPES, ReidsortError

    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, (ReidsortError, *USER_ERROR_TYPES)):
            raise cause from None
        raise
