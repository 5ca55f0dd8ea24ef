"""The one entry point: ``python main.py task=<name> ...`` and the ``reidsort`` console script."""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from reidsort.utils.errors import ReidsortError, user_errors
from reidsort.utils.hydra_utils import config_groups, config_path, register_resolvers
from reidsort.utils.sweep import save_job_metrics

log = logging.getLogger("reidsort")


def _drop_lightning_console_duplicate() -> None:
    """``import lightning`` gives its logger a console handler of its own; under Hydra, whose
    root handlers already print (and file) every record, that shows each line twice."""
    if "lightning" not in sys.modules or not logging.getLogger().handlers:
        return
    lightning_logger = logging.getLogger("lightning")
    for handler in list(lightning_logger.handlers):
        if type(handler) is logging.StreamHandler and lightning_logger.propagate:
            lightning_logger.removeHandler(handler)


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """Dispatch ``cfg.task`` to its function in ``reidsort.tasks`` and return its metrics."""
    task_fn = hydra.utils.get_method(cfg.task._target_)
    _drop_lightning_console_duplicate()
    return task_fn(cfg)


def select_optimized_metric(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """Return the metric named by ``optimized_metric`` (what a Hydra sweeper optimises)."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise ReidsortError(
            f"optimized_metric={name!r} is not among the task's metrics: {sorted(metrics)}"
        )
    return float(metrics[name])


@hydra.main(config_path=config_path(), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    with user_errors():
        metrics = run_task(cfg)
        # a sweep's jobs keep all their metrics (its summary table reads them)
        save_job_metrics(metrics)
        return select_optimized_metric(cfg, metrics)


def null_groups_as_deletions(arguments: list[str], groups: set[str]) -> list[str]:
    """``experiment=null`` (any config group ``=null``) means "none of this group", which Hydra
    spells ``~experiment``; its own parser rejects the null."""
    return [f"~{arg.split('=', 1)[0]}" if arg.endswith("=null") and "." not in arg
            and arg.split("=", 1)[0] in groups else arg for arg in arguments]


def config_dir_arguments(arguments: list[str]) -> list[str]:
    """The folders of Hydra's ``--config-dir DIR`` / ``--config-dir=DIR`` / ``-cd DIR``."""
    folders = []
    for index, argument in enumerate(arguments):
        flag, equals, value = argument.partition("=")
        if flag not in ("--config-dir", "-cd"):
            continue
        if equals:
            folders.append(value)
        elif index + 1 < len(arguments):
            folders.append(arguments[index + 1])
    return folders


def main() -> None:
    register_resolvers()
    with user_errors():
        groups = config_groups(config_dir_arguments(sys.argv[1:]))
    sys.argv[1:] = null_groups_as_deletions(sys.argv[1:], groups)
    hydra_main()


if __name__ == "__main__":
    sys.exit(main())
