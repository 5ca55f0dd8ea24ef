"""Hydra sweep callbacks: report an Optuna study's best trial as a ready-to-use command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

#: written by hydra-optuna-sweeper into the sweep folder
OPTUNA_RESULTS_FILE = "optimization_results.yaml"
BEST_OVERRIDES_FILE = "best_overrides.txt"
#: command-line overrides that configure the sweep itself, not the run being tuned
_SWEEP_ONLY_PREFIXES = ("hparams_search=", "hydra.", "hydra/", "+hydra")


def best_override_line(command_overrides: list[str], best_params: dict[str, Any]) -> str:
    """``python main.py <the run's own overrides> <best parameters>``."""
    kept = [o for o in command_overrides
            if not o.startswith(_SWEEP_ONLY_PREFIXES) and o.split("=", 1)[0] not in best_params]
    tuned = [f"{name}={_format(value)}" for name, value in sorted(best_params.items())]
    return " ".join(["python main.py", *kept, *tuned])


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class BestOverridesCallback(Callback):
    """After an Optuna sweep: print the best trial's parameters as one override line and save
    it as ``best_overrides.txt`` next to the sweeper's ``optimization_results.yaml``."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results_path = sweep_dir / OPTUNA_RESULTS_FILE
        if not results_path.is_file():
            log.warning("no %s in %s: not an Optuna sweep, nothing to report",
                        OPTUNA_RESULTS_FILE, sweep_dir)
            return
        results = OmegaConf.to_container(OmegaConf.load(results_path), resolve=True)
        best_params = dict(results.get("best_params") or {})
        if not best_params:
            log.warning("%s has no best_params", results_path)
            return
        line = best_override_line(list(config.hydra.overrides.task), best_params)
        metric = config.get("optimized_metric") or "objective"
        text = f"# best {metric} = {results.get('best_value')}\n{line}\n"
        atomic_write_text(sweep_dir / BEST_OVERRIDES_FILE, text)
        print(f"best {metric}: {results.get('best_value')}\n{line}", flush=True)
