"""A user error is one line on the console, printed once, and recorded in the run's log file."""

from __future__ import annotations

import subprocess
import sys

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
