"""Hydra sweeper plugin: hydra-optuna-sweeper's Optuna study with the config's own values as the
first trial, so every tuning run reports what it gained over the defaults.

Hydra instantiates sweepers only from the ``hydra_plugins`` namespace, hence this package. Hydra
imports it in every run while scanning for plugins, so Optuna is imported only when it sweeps.
Selected by ``_target_: hydra_plugins.reidsort_optuna.BaselineFirstOptunaSweeper`` over the
``hydra/sweeper: optuna`` config (conf/hparams_search/tracker_optuna.yaml); same options.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from reidsort.utils.errors import ReidsortError, user_errors
from reidsort.utils.sweep import BASELINE_FILE

log = logging.getLogger(__name__)

_NOT_IN_CONFIG = object()


def baseline_params(config: DictConfig, distributions: dict[str, Any]) -> dict[str, Any]:
    """The config's value of every searched parameter, checked against its distribution
    (Optuna would silently sample an out-of-range enqueued value instead)."""
    params: dict[str, Any] = {}
    for name, distribution in distributions.items():
        value = OmegaConf.select(config, name, default=_NOT_IN_CONFIG)
        if value is _NOT_IN_CONFIG:
            raise ReidsortError(
                f"search space: {name} is not in the config, so the first (baseline) trial has "
                "no value for it")
        if _outside(distribution, value):
            raise ReidsortError(
                f"search space: {name}={value} (the config's value, which the first trial "
                f"evaluates) is outside {distribution}; widen the range or change the value")
        params[name] = value
    return params


def _outside(distribution: Any, value: Any) -> bool:
    try:
        # the check Optuna applies to enqueued values (optuna.trial.Trial._is_fixed_param)
        return not distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):  # a categorical value that is not among the choices
        return True


class BaselineFirstOptunaSweeper(Sweeper):
    """``OptunaSweeper`` (same arguments) whose first trial evaluates the config's values of the
    searched parameters. With a persistent ``storage`` a resumed study gets it only once."""

    def __init__(self, **optuna_options: Any) -> None:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

        self.optuna_sweeper = OptunaSweeper(**optuna_options)
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.optuna_sweeper.setup(hydra_context=hydra_context, task_function=task_function,
                                  config=config)

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

        assert self.config is not None
        impl = self.optuna_sweeper.sweeper
        if isinstance(impl.sampler, functools.partial):
            # GridSampler (configured as a partial) only visits its grid: no baseline trial
            log.info("grid sampler: no baseline trial")
            return impl.sweep(arguments)
        # the search space as the plugin builds it: sweeper params, then command-line sweeps
        distributions, fixed = create_params_from_overrides(
            [*impl._parse_sweeper_params_config(), *arguments])
        for name in fixed:
            distributions.pop(name, None)
        with user_errors():  # the sweep runs outside any job: say it in one line here too
            baseline = baseline_params(self.config, distributions)
        # the plugin creates its study with load_if_exists=True: one created here first, in the
        # same storage (an in-memory one passed on as an object), is the one it runs
        storage = optuna.storages.get_storage(impl.storage)
        study = optuna.create_study(study_name=impl.study_name, storage=storage,
                                    sampler=impl.sampler, directions=impl._get_directions(),
                                    load_if_exists=True)
        if not any(_is_baseline(trial, baseline) for trial in study.trials):
            with warnings.catch_warnings():
                # Optuna 2 marks the add_trial behind enqueue_trial experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.enqueue_trial(baseline)
            log.info("first trial: the config's values %s", baseline)
        if impl.storage is None:
            impl.storage = storage
        # without a name Optuna would make up a new one, i.e. a second study
        impl.study_name = study.study_name
        impl.sweep(arguments)
        self._save_baseline(study, baseline)

    def _save_baseline(self, study: Any, baseline: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        from reidsort.utils.io import atomic_write_text

        assert self.config is not None
        done = [t for t in study.trials if _is_baseline(t, baseline)
                and t.state == TrialState.COMPLETE]
        if not done:
            log.warning("the baseline trial did not complete: no %s", BASELINE_FILE)
            return
        trial = done[0]
        record = {"trial": trial.number, "params": baseline,
                  "values": [float(v) for v in trial.values]}
        if len(trial.values) == 1:
            record["value"] = float(trial.values[0])
        atomic_write_text(Path(self.config.hydra.sweep.dir) / BASELINE_FILE,
                          OmegaConf.to_yaml(OmegaConf.create(record)))


def _is_baseline(trial: Any, baseline: dict[str, Any]) -> bool:
    return trial.system_attrs.get("fixed_params") == baseline
