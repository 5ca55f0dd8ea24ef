"""A user error is one line on the console, printed once, and recorded in the run's log file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def test_a_user_error_is_printed_once_and_logged_to_the_run(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "task=evaluate", "results=/nonexistent",
         f"gt_root={tmp_path / 'missing'}", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode != 0
    console = done.stdout + done.stderr
    message = f"gt_root is not a folder: {tmp_path / 'missing'}"
    assert console.count(message) == 1, console
    assert f"error: {message}" in done.stderr
    assert "Traceback" not in console
    logs = list(run_dir.glob("*.log"))
    assert logs and any(message in log.read_text() for log in logs)


#: a tiny synthetic training run: the errors below happen before its first step
TINY_TRAIN_RUN = ["task=train", "model=osnet_x0_25", "data.synthetic.num_identities=24",
                  "data.synthetic.num_cameras=4", "data.synthetic.images_per_identity_camera=2",
                  "data.p=4", "data.k=2", "data.num_workers=0", "data.val_identities=4",
                  "task.histogram_baseline=false", "logger=csv", "trainer.max_epochs=1"]


def _train_error(overrides: list[str], tmp_path, data_dir) -> str:
    """The console of a training run that must fail with one ``error:`` line (checked)."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), *TINY_TRAIN_RUN, *overrides,
         f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    console = done.stdout + done.stderr
    assert "Traceback" not in console and "Error executing job" not in console, console[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and console.count(errors[0].removeprefix("error: ")) == 1, console
    return errors[0]


def test_a_trainer_for_hardware_that_is_not_there_is_one_line(tmp_path, synthetic_data_dir):
    # Lightning's MisconfigurationException, raised while Hydra instantiates the Trainer
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert _train_error(["trainer=gpu"], tmp_path, synthetic_data_dir) == (
        "error: trainer: No supported gpu backend found!")


def test_an_unknown_trainer_key_is_one_line(tmp_path, synthetic_data_dir):
    assert _train_error(["+trainer.bogus_key=1"], tmp_path, synthetic_data_dir) == (
        "error: trainer: unknown key 'bogus_key': lightning.pytorch.trainer.trainer.Trainer has "
        "no such argument")


def test_backbone_weights_that_are_not_a_state_dict_are_one_line(tmp_path, synthetic_data_dir):
    weights = tmp_path / "notes.txt"
    weights.write_text("not a state dict\n")
    error = _train_error([f"model.backbone.weights={weights}"], tmp_path, synthetic_data_dir)
    assert error.startswith(f"error: {weights}: ")


def test_a_type_error_from_inside_a_target_stays_a_bug():
    """Only the call to the target itself (its arguments: the config's keys) is a user error;
    the same TypeError raised deeper down is a bug and keeps its traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from reidsort.utils.errors import user_error_message

    with pytest.raises(InstantiationException) as caught:
        instantiate({"_target_": f"{__name__}.target_with_a_bug", "size": 3})
    assert "_helper() got an unexpected keyword argument 'bogus'" in str(caught.value)
    assert user_error_message(caught.value) is None
    with pytest.raises(InstantiationException) as caught:
        instantiate({"_target_": f"{__name__}.target_with_a_bug", "bogus": 3})
    assert user_error_message(caught.value) == (
        f"unknown key 'bogus': {__name__}.target_with_a_bug has no such argument")


def _helper() -> None:
    pass


def target_with_a_bug(size: int) -> None:
    _helper(bogus=size)  # the bug: _helper takes no argument
