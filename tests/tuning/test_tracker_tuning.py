"""Tracker tuning: `task=track ... hparams_search=tracker_optuna -m` and its best-override line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reidsort.utils.sweep import BEST_OVERRIDES_FILE, best_override_line

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
                  "ocsort": "ocsort_optuna", "botsort": "botsort_optuna"}


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


def test_optuna_sweep_over_a_sequence_prints_the_best_config(shared_data: Path,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sequence = shared_data / "mot" / "MOT15-text" / "KITTI-17"
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, str(REPO_ROOT / "main.py"), "task=track", f"source={sequence}",
               "embedder=none", "hparams_search=tracker_optuna", "hydra.sweeper.n_trials=2",
               f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep_dir}", "-m"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
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
