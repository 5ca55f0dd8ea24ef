"""Install and run from anywhere: the wheel carries conf/ (as ``reidsort.conf``), an installed
``reidsort`` reads it through ``pkg://reidsort.conf``, and runs land under the folder the command
was started from (``./outputs``), whatever the install location."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT, compose_config

from reidsort.cli import config_dir_arguments
from reidsort.utils.hydra_utils import config_groups, config_path

#: what a wheel is built from (a copy, so the build leaves no build/ or egg-info in the checkout)
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "src", "conf"]
SEQUENCE = "MOT17-02-FRCNN"
SEQUENCE_LENGTH = 6
BOX = "100.00,50.00,40.00,100.00"


def test_paths_follow_the_launch_folder_unless_reidsort_root_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("REIDSORT_ROOT", raising=False)
    monkeypatch.delenv("REIDSORT_SHARED_DATA", raising=False)
    launch = tmp_path / "launch"
    launch.mkdir()
    monkeypatch.chdir(launch)
    cfg = compose_config([], tmp_path / "run")
    assert Path(cfg.paths.root_dir) == launch
    assert Path(cfg.paths.data_dir) == launch / "data"
    assert Path(cfg.paths.shared_data_dir) == launch / ".." / "shared" / "data"
    monkeypatch.setenv("REIDSORT_ROOT", str(tmp_path / "fixed"))
    cfg = compose_config([], tmp_path / "run")
    assert Path(cfg.paths.root_dir) == tmp_path / "fixed"
    assert Path(cfg.paths.data_dir) == tmp_path / "fixed" / "data"


def test_a_checkout_reads_its_own_conf_and_lists_groups_of_config_dirs(tmp_path):
    assert config_path() == str(REPO_ROOT / "conf")
    (tmp_path / "my_group").mkdir()
    groups = config_groups([str(tmp_path), str(tmp_path / "missing")])
    assert {"experiment", "task", "tracker", "my_group"} <= groups
    assert not any(name.startswith("__") for name in groups)
    assert config_dir_arguments(["--config-dir", "a", "-cd", "b", "--config-dir=c", "x=1"]) == [
        "a", "b", "c"]


def _write_mot_sample(root: Path) -> tuple[Path, Path]:
    """One pedestrian in every frame; the results miss frame 3 (one FN)."""
    gt_dir = root / "gt_split"
    (gt_dir / SEQUENCE / "gt").mkdir(parents=True)
    frames = range(1, SEQUENCE_LENGTH + 1)
    (gt_dir / SEQUENCE / "gt" / "gt.txt").write_text(
        "".join(f"{frame},1,{BOX},1,1,1.00\n" for frame in frames))
    (gt_dir / SEQUENCE / "seqinfo.ini").write_text(
        f"[Sequence]\nname={SEQUENCE}\nimDir=img1\nframeRate=30\nseqLength={SEQUENCE_LENGTH}\n"
        "imWidth=640\nimHeight=480\nimExt=.jpg\n")
    results = root / "results"
    results.mkdir()
    (results / f"{SEQUENCE}.txt").write_text(
        "".join(f"{frame},5,{BOX},1,-1,-1,-1\n" for frame in frames if frame != 3))
    return results, gt_dir


def _isolated_env() -> dict[str, str]:
    """The environment minus what would point the installed copy at the checkout."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "REIDSORT_ROOT", "PYTHONHOME"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, venv): the project's wheel, installed without dependencies into a fresh venv
    that reuses this interpreter's site-packages for them."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    source.mkdir()
    skip_build_output = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in BUILD_INPUTS:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=skip_build_output)
        else:
            shutil.copy2(origin, source / name)
    wheels = work / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(wheels), str(source)],
        check=False, capture_output=True, text=True, timeout=300, env=_isolated_env(), cwd=work)
    found = sorted(wheels.glob("reidsort-*.whl"))
    if built.returncode != 0 or not found:
        pytest.skip(f"cannot build a wheel on this machine: {built.stderr.strip()[-300:]}")
    environment = work / "venv"
    # no pip in the venv (saves seconds): this interpreter's pip installs into it
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(environment)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(environment / "bin" / "python"), "install",
         "--no-deps", "--no-index", "-q", str(found[0])],
        check=False, capture_output=True, text=True, timeout=300, env=_isolated_env(), cwd=work)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return found[0], environment


def test_the_wheel_ships_every_module_and_config_file(installed_wheel):
    wheel, _ = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    # namespace packages included (src/hydra_plugins has no __init__.py)
    modules = {path.relative_to(REPO_ROOT / "src").as_posix()
               for path in (REPO_ROOT / "src").rglob("*.py") if "egg-info" not in str(path)}
    assert modules <= names, sorted(modules - names)
    assert "reidsort/conf/config.yaml" in names
    assert "reidsort/conf/__init__.py" in names  # Hydra's pkg:// source needs it
    shipped = {name.removeprefix("reidsort/conf/") for name in names
               if name.startswith("reidsort/conf/") and name.endswith(".yaml")}
    in_checkout = {path.relative_to(REPO_ROOT / "conf").as_posix()
                   for path in (REPO_ROOT / "conf").rglob("*.yaml")}
    assert shipped == in_checkout


def test_the_installed_console_script_runs_from_an_empty_folder(installed_wheel, tmp_path):
    _, environment = installed_wheel
    env = _isolated_env()
    where = subprocess.run(
        [str(environment / "bin" / "python"), "-c",
         "import reidsort.utils.hydra_utils as h; print(h.__file__); print(h.config_path())"],
        check=False, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    module_file, search_path = where.stdout.split()
    # the venv's copy, not the checkout's editable install that its system site-packages holds
    assert Path(module_file).resolve().is_relative_to(environment.resolve()), module_file
    assert search_path == "pkg://reidsort.conf"

    results, gt_dir = _write_mot_sample(tmp_path / "inputs")
    launch = tmp_path / "empty"
    launch.mkdir()
    reidsort = str(environment / "bin" / "reidsort")
    done = subprocess.run(
        [reidsort, "task=evaluate", f"results={results}", f"gt_root={gt_dir}", "experiment=null"],
        check=False, capture_output=True, text=True, timeout=300, env=env, cwd=launch)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics_files = list((launch / "outputs" / "evaluate" / "runs").glob("*/mot_metrics.csv"))
    assert len(metrics_files) == 1
    combined = metrics_files[0].read_text().splitlines()[-1].split(",")
    assert combined[0] == "COMBINED"
    hydra_yaml = (metrics_files[0].parent / ".hydra" / "hydra.yaml").read_text()
    assert "path: reidsort.conf" in hydra_yaml  # read through pkg://, not a checkout
    assert sorted(p.name for p in launch.iterdir()) == ["outputs"]

    # a user's config folder on top of the packaged one (Hydra's --config-dir)
    user_conf = tmp_path / "my_conf"
    (user_conf / "experiment").mkdir(parents=True)
    (user_conf / "experiment" / "my_eval.yaml").write_text(
        "# @package _global_\ntask:\n  split: val_half\n")
    shown = subprocess.run(
        [reidsort, "--config-dir", str(user_conf), "task=evaluate", "experiment=my_eval",
         "debug=null", "--cfg", "job"],
        check=False, capture_output=True, text=True, timeout=120, env=env, cwd=launch)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "split: val_half" in shown.stdout
