"""``task=train`` with ``data.generated_root``: a tiny CPU run mixes generated images in with
LSRO, logs ``train/lsro``, and its summary, metrics and checkpoint count real identities only."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN

from reidsort.reid.training_data import TRAINING_DATA_KEY
from reidsort.tasks.train import train
from reidsort.utils.errors import ReidsortError

NUM_GENERATED = 6


def _write_generated(folder: Path) -> None:
    """A few 64 x 32 (upright) random PNGs, standing in for a GAN's output folder."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(NUM_GENERATED):
        cv2.imwrite(str(folder / f"{i:06d}.png"),
                    rng.integers(0, 256, (64, 32, 3), dtype=np.uint8))


def test_training_with_generated_images_logs_lsro(make_config, tmp_path, capsys):
    root = tmp_path / "generated"
    _write_generated(root)
    cfg = make_config([*TINY_TRAIN, f"data.generated_root={root}", "data.batches_per_epoch=2"])
    metrics = train(cfg)

    # LSRO of untrained logits over 8 identities sits near its minimum log 8, never below
    assert metrics["train/lsro"] > 0
    assert metrics["train/lsro"] >= math.log(8) - 1e-4
    assert 0.0 <= metrics["val/mAP"] <= 1.0 and 0.0 <= metrics["test/mAP"] <= 1.0
    assert metrics["data/generated_images"] == NUM_GENERATED
    assert metrics["data/unreadable_generated_images"] == 0
    assert metrics["data/train_identities"] == 8  # 12 - 4 held out: no class for generated
    assert "reidsort train summary" in capsys.readouterr().out

    out = Path(cfg.paths.output_dir)
    logged = next(out.rglob("metrics.csv"))
    with logged.open() as f:
        rows = [row for row in csv.DictReader(f) if row.get("train/lsro")]
    assert rows and all(float(row["train/lsro"]) > 0 for row in rows)

    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu")
    assert checkpoint["hyper_parameters"]["num_classes"] == 8
    assert checkpoint["hyper_parameters"]["loss"]["lsro_weight"] == 1.0
    record = checkpoint[TRAINING_DATA_KEY]
    assert record["sizes"]["train_identities"] == 8
    assert record["config"]["generated_root"] == str(root)


def test_training_with_a_missing_generated_folder_stops_with_its_name(make_config, tmp_path):
    missing = tmp_path / "nothing_here"
    cfg = make_config([*TINY_TRAIN, f"data.generated_root={missing}"])
    with pytest.raises(ReidsortError, match=f"data.generated_root={missing}: folder not found"):
        train(cfg)
