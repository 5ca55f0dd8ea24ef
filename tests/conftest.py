"""Shared pytest fixtures.

Real third-party data (MOT sequences, Re-ID crops, an ONNX detector) lives beside the project at
``../shared/data`` and is never copied into the repository. Tests reach it only through the
``shared_data`` fixture, which skips cleanly when it is absent (a user's fresh clone).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """Where the shared real data is expected: ``$REIDSORT_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("REIDSORT_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only with ``REIDSORT_SLOW_TESTS=1`` (keeps CI under 10 minutes)."""
    if os.environ.get("REIDSORT_SLOW_TESTS", "") not in ("", "0"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: set REIDSORT_SLOW_TESTS=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


#: skip reasons that are summed up as one line each (the others are listed as they are)
SKIP_GROUPS = {
    "shared real data not found": "real-data tests: shared data not found at {root} "
                                  "(set REIDSORT_SHARED_DATA)",
    "REIDSORT_SLOW_TESTS": "slow tests: set REIDSORT_SLOW_TESTS=1 to run them",
}


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line per kind of skip with its count, e.g. every real-data test of a clean clone."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    counts: dict[str, int] = {}
    for report in skipped:
        reason = _skip_reason(report)
        line = next((text.format(root=shared_data_root()) for key, text in SKIP_GROUPS.items()
                     if key in reason), reason)
        counts[line] = counts.get(line, 0) + 1
    terminalreporter.section(f"{len(skipped)} skipped", sep="-")
    for line, count in sorted(counts.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{count:4d} skipped  {line}")


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty ``$TORCH_HOME`` (returned) for tests of the ImageNet-weights path; any download
    attempt raises, since nothing in the tests may reach the network."""
    import torch

    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def refuse(url, *args, **kwargs):
        raise OSError(f"network disabled in tests: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_root()
    if not (root / "README.md").is_file():
        pytest.skip(f"shared real data not found at {root} (set REIDSORT_SHARED_DATA)")
    return root


def compose_config(overrides: list[str], output_dir: Path, data_dir: Path | None = None):
    """Compose the project config like ``python main.py <overrides>`` would, for tests.

    Paths go to ``output_dir`` (and generated data to ``data_dir``), never the working directory.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from reidsort.utils.hydra_utils import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.paths.log_dir = str(output_dir / "logs")
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def make_config(tmp_path: Path, synthetic_data_dir: Path):
    """``make_config(overrides)`` → composed config writing under tmp_path, shared data cache."""

    def _make(overrides: list[str] | None = None):
        return compose_config(list(overrides or []), tmp_path / "run", synthetic_data_dir)

    return _make


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder per test session, so synthetic data is generated once and reused."""
    return tmp_path_factory.mktemp("data")


#: tiny synthetic data + model settings for fast CPU tests
TINY_TRAIN = [
    "model=osnet_x0_25",
    "data.synthetic.num_identities=24",
    "data.synthetic.num_cameras=4",
    "data.synthetic.images_per_identity_camera=2",
    "data.p=4",
    "data.k=2",
    "data.num_workers=0",
    "data.batches_per_epoch=3",
    "data.val_identities=4",
    "data.eval_batch_size=32",
    "trainer.max_epochs=1",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
    "logger=csv",
    "task.histogram_baseline=false",
]
