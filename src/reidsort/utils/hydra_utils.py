"""Hydra glue: run-root resolver, config location, and small instantiation helpers."""

from __future__ import annotations

import os
import socket
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from reidsort.utils.errors import ReidsortError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT = PACKAGE_DIR.parents[1]
#: the configs inside an installed wheel (setup.py maps conf/ to ``reidsort.conf``)
PACKAGED_CONFIG = "reidsort.conf"


def checkout_config_dir() -> Path | None:
    """``<checkout>/conf`` when this code runs from a source checkout (src/ layout, editable
    install or ``python main.py``), else None: an installed wheel reads its packaged copy."""
    conf = PROJECT_ROOT / "conf"
    from_checkout = PACKAGE_DIR.parent.name == "src" and (conf / "config.yaml").is_file()
    return conf if from_checkout else None


def config_path() -> str:
    """What ``hydra.main`` reads: the checkout's conf/, else ``pkg://reidsort.conf``. Users add
    their own folders on top with Hydra's ``--config-dir`` (or replace it with ``--config-path``)."""
    conf = checkout_config_dir()
    return str(conf) if conf is not None else f"pkg://{PACKAGED_CONFIG}"


def _packaged_config() -> Traversable:
    try:
        return resources.files(PACKAGED_CONFIG)
    except ModuleNotFoundError:
        raise ReidsortError(f"reidsort's configs are missing: no conf/ beside the code and no "
                            f"{PACKAGED_CONFIG} package (reinstall reidsort)") from None


def config_dir() -> Path:
    """The primary config folder on disk (for the compose API): the checkout's or the wheel's."""
    conf = checkout_config_dir()
    if conf is not None:
        return conf
    packaged = _packaged_config()
    if not isinstance(packaged, Path):
        raise ReidsortError(f"reidsort's packaged configs are not a folder on disk: {packaged}")
    return packaged


def config_groups(extra_dirs: list[str] | tuple[str, ...] = ()) -> set[str]:
    """Names of the config groups (sub-folders) of the primary config and of ``extra_dirs``
    (the folders given with ``--config-dir``), read from disk or from the installed package."""
    primary = checkout_config_dir() or _packaged_config()
    folders = [primary, *(Path(folder).expanduser() for folder in extra_dirs)]
    return {entry.name for folder in folders if folder.is_dir()
            for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("__")}


def _run_root() -> str:
    """``$REIDSORT_ROOT`` or the folder the command was started from (Hydra's runtime.cwd,
    which stays put under ``hydra.job.chdir=true``; os.getcwd() before a multirun's first job)."""
    from hydra.core.hydra_config import HydraConfig

    if "REIDSORT_ROOT" in os.environ:
        return os.environ["REIDSORT_ROOT"]
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


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
        OmegaConf.register_new_resolver("reidsort_root", _run_root)
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
