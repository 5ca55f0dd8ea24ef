"""``task=eval`` of a trained checkpoint: it evaluates the data the model was trained on unless
``data=`` is given, names data / split / sizes, warns when they differ from training's; and the
weights-only best checkpoint (``save_weights_only_best``) is what eval and export can read."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, TINY_TRAIN, compose_config

from reidsort.evaluation.eval_data import command_line_data
from reidsort.reid.training_data import TRAINING_DATA_KEY
from reidsort.tasks.eval import eval as run_eval
from reidsort.tasks.export import export
from reidsort.tasks.train import train

torch.set_num_threads(1)

#: the tiny data of TINY_TRAIN: what the trained model saw (24 identities, not the default 160)
TINY_DATA = [o for o in TINY_TRAIN if o.startswith("data.")]


@dataclass(frozen=True)
class TrainedRun:
    folder: Path
    best: Path
    last: Path
    metrics: dict[str, float]
    data_dir: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedRun:
    """One short run with a weights-only best checkpoint; its data cache is its own."""
    base = tmp_path_factory.mktemp("trained")
    cfg = compose_config([*TINY_TRAIN, "callbacks.model_checkpoint.save_weights_only_best=true"],
                         base / "run", base / "data")
    metrics = train(cfg)
    folder = base / "run" / "checkpoints"
    best = Path(next(str(p) for p in folder.glob("epoch_*.ckpt")))
    return TrainedRun(folder, best, folder / "last.ckpt", metrics, base / "data")


def _eval_config(run: TrainedRun, tmp_path: Path, overrides: list[str]):
    return compose_config(["task=eval", "task.plots=false", *overrides], tmp_path / "eval",
                          run.data_dir)


def test_best_checkpoint_is_weights_only_and_last_stays_resumable(trained):
    best = torch.load(trained.best, map_location="cpu")
    last = torch.load(trained.last, map_location="cpu")
    assert "optimizer_states" not in best and "lr_schedulers" not in best
    assert last["optimizer_states"] and last["lr_schedulers"]
    assert not trained.last.is_symlink()  # a link to the weights-only best would not resume
    assert best["hyper_parameters"] == last["hyper_parameters"]
    assert best["state_dict"].keys() == last["state_dict"].keys()
    assert trained.best.stat().st_size < 0.6 * trained.last.stat().st_size
    # both carry the training data record, plain types only (read weights_only above)
    record = best[TRAINING_DATA_KEY]
    assert record == last[TRAINING_DATA_KEY]
    assert record["choice"] == "synthetic" and record["config"]["synthetic"]["num_identities"] == 24
    assert record["sizes"]["test_query_images"] == trained.metrics["data/test_query_images"]


def test_eval_defaults_to_the_training_data_and_names_it(trained, tmp_path, capsys):
    # no data= and none of the tiny data.* settings: the record decides, not the default data
    cfg = _eval_config(trained, tmp_path, [f"ckpt_path={trained.best}", "data.num_workers=0"])
    metrics = run_eval(cfg)
    sizes = torch.load(trained.best, map_location="cpu")[TRAINING_DATA_KEY]["sizes"]
    assert metrics["eval/num_queries"] == sizes["test_query_images"]
    assert metrics["eval/num_gallery"] == sizes["test_gallery_images"]
    # the weights-only best scores what training's test loop scored with it
    assert metrics["eval/mAP"] == pytest.approx(trained.metrics["test/mAP"], abs=1e-4)
    out = capsys.readouterr().out
    data_line = next(line for line in out.splitlines() if line.startswith("data     "))
    assert "synthetic" in data_line and "test split" in data_line
    assert (f"identities, {sizes['test_query_images']} query / "
            f"{sizes['test_gallery_images']} gallery images") in data_line
    assert f"from training data (recorded in {trained.best})" in out
    assert "warning" not in out


def test_command_line_data_settings_apply_on_top_and_size_changes_warn(trained, tmp_path,
                                                                       capsys, caplog):
    caplog.set_level(logging.WARNING)
    cfg = _eval_config(trained, tmp_path, [f"ckpt_path={trained.best}", "data.num_workers=0",
                                           "task.split=val", "data.val_identities=6"])
    metrics = run_eval(cfg)
    assert len({r["pid"] for r in _per_query(tmp_path)}) == 6  # the override applied
    assert metrics["eval/num_queries"] == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("but training saw 4 / " in w and "in its val split" in w for w in warnings)
    assert "warning  " in capsys.readouterr().out


def _per_query(tmp_path: Path) -> list[dict[str, str]]:
    import csv

    with (tmp_path / "eval" / "per_query_ap.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_an_explicit_data_choice_wins_and_warns_as_cross_domain(trained, tmp_path, caplog,
                                                                capsys):
    caplog.set_level(logging.WARNING)
    other = [o.replace("num_identities=24", "num_identities=20") for o in TINY_DATA]
    cfg = _eval_config(trained, tmp_path, [f"ckpt_path={trained.best}", "data=synthetic",
                                           *other])
    run_eval(cfg)
    # 10 test identities of 20 people, where training's test split had 12 of 24
    assert "(test split: its query/gallery): 10 identities" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cross-domain evaluation" in w and "was trained on data=synthetic" in w
               for w in warnings)


def test_a_checkpoint_without_a_record_falls_back_with_a_warning(trained, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    old = torch.load(trained.best, map_location="cpu")
    del old[TRAINING_DATA_KEY]
    path = tmp_path / "old" / "model.ckpt"  # and no config.yaml beside it
    path.parent.mkdir()
    torch.save(old, path)
    cfg = _eval_config(trained, tmp_path, [f"ckpt_path={path}", *TINY_DATA])
    metrics = run_eval(cfg)
    assert metrics["eval/mAP"] == pytest.approx(trained.metrics["test/mAP"], abs=1e-4)
    assert any("has no record of its training data" in r.getMessage()
               and "evaluating data=synthetic" in r.getMessage() for r in caplog.records)


def test_the_record_travels_with_the_checkpoint_for_export(trained, tmp_path):
    alone = tmp_path / "alone" / "best.ckpt"  # copied without the config.yaml beside it
    alone.parent.mkdir()
    alone.write_bytes(trained.best.read_bytes())
    cfg = compose_config(["task=export", f"ckpt_path={alone}", "task.exporter=legacy",
                          "task.verify_crops=4", "task.simplify=false"], tmp_path / "export")
    metrics = export(cfg)
    assert metrics["export/min_cosine"] >= 0.9999
    assert (tmp_path / "export" / "osnet_x0_25_64x32.onnx").is_file()  # size from the record


def test_which_data_the_command_line_chose(tmp_path):
    def parsed(overrides: list[str]):
        compose_config(overrides, tmp_path)
        return command_line_data()

    assert not parsed(["task=eval"]).chose_group
    assert parsed(["task=eval", "data.root=/x", "data.num_workers=0"]).set_keys == \
        ("data.root", "data.num_workers")
    assert not parsed(["task=eval", "data.root=/x"]).chose_group
    assert parsed(["task=eval", "data=folder", "data.root=/x"]).chose_group
    assert parsed(["task=eval", "data=synthetic"]).chose_group  # even the default, if named
    # an experiment that sets the data group chooses it too
    assert parsed(["task=eval", "experiment=mini_mars_osnet_x0_25"]).chose_group


def test_cli_eval_of_a_checkpoint_prints_its_training_data(trained, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), REIDSORT_ROOT=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "task=eval", f"ckpt_path={trained.best}",
         "task.plots=false", "data.num_workers=0", "torch_threads=1",
         f"hydra.run.dir={tmp_path / 'run'}"],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    sizes = torch.load(trained.best, map_location="cpu")[TRAINING_DATA_KEY]["sizes"]
    assert f"{sizes['test_query_images']} query / {sizes['test_gallery_images']} gallery" \
        in done.stdout
    assert "from training data" in done.stdout
    # the data it names is the training run's cache, not a fresh default under tmp_path
    assert not (tmp_path / "data" / "synthetic").exists()
