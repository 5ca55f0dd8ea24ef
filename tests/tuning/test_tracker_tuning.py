"""Tracker tuning: `task=track ... hparams_search=tracker_optuna -m` and its best-override line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reidsort.utils.errors import ReidsortError
from reidsort.utils.sweep import (
    BASELINE_FILE,
    BEST_OVERRIDES_FILE,
    JOB_METRICS_FILE,
    SWEEP_SUMMARY_FILE,
    best_override_line,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_best_override_line_keeps_run_overrides_and_drops_sweep_ones() -> None:
    line = best_override_line(
        ["task=track", "source=/seqs", "hparams_search=tracker_optuna", "hydra.sweeper.n_trials=5",
         "tracker.max_age=10"],
        {"tracker.max_age": 42, "tracker.max_dist": 0.123456789},
    )
    assert line == ("python main.py task=track source=/seqs "
                    "tracker.max_age=42 tracker.max_dist=0.123457")


def test_search_space_lives_next_to_the_tracker_defaults() -> None:
    defaults = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / "deepsort.yaml")
    space = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / "search_space" / "deepsort.yaml")
    knobs = {"max_dist", "max_iou_distance", "max_age", "n_init", "nn_budget", "min_confidence"}
    assert {key.split(".", 1)[1] for key in space} == knobs
    assert knobs <= set(defaults)


TRACKER_SWEEPS = {"deepsort": "tracker_optuna", "bytetrack": "bytetrack_optuna",
                  "deepocsort": "deepocsort_optuna",
                  "strongsort": "strongsort_optuna",
                  "ocsort": "ocsort_optuna", "botsort": "botsort_optuna",
                  "jde": "jde_optuna"}


@pytest.mark.parametrize("tracker", sorted(TRACKER_SWEEPS))
def test_every_tracker_has_a_search_space_over_its_own_knobs(tracker: str) -> None:
    defaults = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / f"{tracker}.yaml")
    space = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / "search_space" / f"{tracker}.yaml")
    knobs = {key.split(".", 1)[1] for key in space}
    assert len(knobs) >= 5
    assert knobs <= set(defaults) - {"_target_"}


@pytest.mark.parametrize("tracker", sorted(TRACKER_SWEEPS))
def test_each_sweep_config_selects_its_tracker_and_search_space(tracker: str,
                                                                tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from conftest import compose_config

    cfg = compose_config(["task=track", f"hparams_search={TRACKER_SWEEPS[tracker]}"], tmp_path)
    assert cfg.hydra.runtime.choices.tracker == tracker
    params = cfg.hydra.sweeper.params
    space = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / "search_space" / f"{tracker}.yaml")
    assert dict(params) == dict(space)
    # every swept key is a knob of the selected tracker (Hydra would refuse the override)
    assert {key.split(".", 1)[1] for key in params} <= set(cfg.tracker)
    assert cfg.hydra.sweeper.study_name.startswith("reidsort_")


@pytest.mark.parametrize("tracker", sorted(TRACKER_SWEEPS))
def test_each_trackers_defaults_lie_in_its_search_space(tracker: str, tmp_path: Path) -> None:
    """Trial 0 of a tracker sweep evaluates the tracker's defaults: each must be a point of its
    search space (Optuna would sample an outside value instead)."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from conftest import compose_config
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    from hydra_plugins.reidsort_optuna import baseline_params

    cfg = compose_config(["task=track", f"hparams_search={TRACKER_SWEEPS[tracker]}"], tmp_path)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.reidsort_optuna.BaselineFirstOptunaSweeper"
    distributions, _ = create_params_from_overrides(
        [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()])
    defaults = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / f"{tracker}.yaml")
    assert baseline_params(cfg, distributions) == {
        key: defaults[key.split(".", 1)[1]] for key in distributions}


def test_a_default_outside_the_search_space_is_one_clear_line(shared_data: Path,
                                                              tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sequence = shared_data / "mot" / "MOT15-text" / "KITTI-17"
    # deepsort's max_dist default is 0.2
    command = [sys.executable, str(REPO_ROOT / "main.py"), "task=track", f"source={sequence}",
               "embedder=none", "hparams_search=tracker_optuna",
               "tracker.max_dist=interval(0.6,0.9)",
               f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          check=False)
    assert done.returncode == 1
    message = ("error: search space: tracker.max_dist=0.2 (the config's value, which the first "
               "trial evaluates) is outside UniformDistribution(high=0.9, low=0.6); widen the "
               "range or change the value")
    assert done.stderr.strip().splitlines() == [message], done.stderr
    assert not (tmp_path / "sweep" / "0").exists()


def test_baseline_params_refuse_a_parameter_the_config_lacks(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    from hydra_plugins.reidsort_optuna import baseline_params

    distributions, _ = create_params_from_overrides(["tracker.nope=interval(0, 1)"])
    with pytest.raises(ReidsortError, match="tracker.nope is not in the config"):
        baseline_params(OmegaConf.create({"tracker": {"max_age": 30}}), distributions)


def test_optuna_sweep_over_a_sequence_prints_the_best_config(shared_data: Path,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sequence = shared_data / "mot" / "MOT15-text" / "KITTI-17"
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, str(REPO_ROOT / "main.py"), "task=track", f"source={sequence}",
               "embedder=none", "hparams_search=tracker_optuna", "hydra.sweeper.n_trials=2",
               f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep_dir}", "-m"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    best = (sweep_dir / BEST_OVERRIDES_FILE).read_text().splitlines()
    assert best[0].startswith("# best mot/HOTA = ")
    assert best[1].startswith(f"python main.py task=track source={sequence} embedder=none")
    assert "tracker.max_dist=" in best[1] and "hparams_search" not in best[1]
    assert best[1] in done.stdout
    # every trial keeps its config and its scores
    for trial in ("0", "1"):
        assert (sweep_dir / trial / ".hydra" / "config.yaml").is_file()
        assert (sweep_dir / trial / "mot_metrics.csv").is_file()
    # the best value is one of the trials' HOTA
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    hotas = []
    for trial in ("0", "1"):
        header, row = (sweep_dir / trial / "mot_metrics.csv").read_text().splitlines()[:2]
        columns = header.split(",")
        hotas.append(float(row.split(",")[columns.index("HOTA")]))
    assert results.best_value == pytest.approx(max(hotas), abs=1e-9)
    # trial 0 ran the tracker's defaults, and its score stands next to the best
    defaults = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / "deepsort.yaml")
    first = OmegaConf.load(sweep_dir / "0" / ".hydra" / "overrides.yaml")
    space = OmegaConf.load(REPO_ROOT / "conf" / "tracker" / "search_space" / "deepsort.yaml")
    assert {f"{key}={defaults[key.split('.', 1)[1]]}" for key in space} <= set(first)
    baseline = OmegaConf.load(sweep_dir / BASELINE_FILE)
    assert baseline.trial == 0 and baseline.value == pytest.approx(hotas[0], abs=1e-9)
    note = f"(config values, trial 0: {hotas[0]:.6g})"
    assert best[0].endswith(note)
    assert f"best mot/HOTA: {results.best_value:.6g} {note}" in done.stdout
    # the best score was picked on the sequence it reports: one warning, with the way out
    warning = (f"warning: the best mot/HOTA was scored on the data it was tuned on "
               f"(source={sequence}), so it is optimistic")
    assert done.stdout.count(warning) == 1
    assert best[2].startswith(f"# {warning.removeprefix('warning: ')}")
    held_out = best[2].split("score the best overrides on held-out data: ", 1)[1]
    assert held_out.startswith("python main.py task=track embedder=none")
    assert "source=<other sequences with gt>" in held_out and str(sequence) not in held_out
    tuned = " ".join(o for o in best[1].split() if o.startswith("tracker."))
    assert held_out.endswith(f"source=<other sequences with gt> {tuned}")
    # every sweep ends with its table: one row per trial with its overrides and metrics
    rows = [line.split("\t") for line in (sweep_dir / SWEEP_SUMMARY_FILE).read_text().splitlines()]
    header = rows[0]
    assert [row[:3] for row in rows[1:]] == [["0", "0", "ok"], ["1", "1", "ok"]]
    assert "tracker.max_dist" in header and "mot/HOTA" in header
    column = header.index("mot/HOTA")
    assert [float(row[column]) for row in rows[1:]] == pytest.approx(hotas, abs=1e-12)
    assert rows[1][header.index("tracker.max_dist")] == str(defaults.max_dist)
    assert (sweep_dir / "1" / JOB_METRICS_FILE).is_file()
