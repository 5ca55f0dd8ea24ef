"""task=gan and task=generate end to end on tiny synthetic data (a real Trainer, a few steps):
checkpoints (best by gan/FID + last), grids, quality.csv / .png, resume, every GAN kind, a -m
sweep; generate writes N upright uint8 images deterministically with a manifest written last;
bad input is a one-line error."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, compose_config
from feature_ckpt import write_feature_checkpoint
from PIL import Image

from reidsort.generative.callbacks import GAN_DATA_KEY
from reidsort.tasks.gan import gan
from reidsort.tasks.generate import MANIFEST_NAME, generate
from reidsort.utils.errors import ReidsortError

HEIGHT, WIDTH = 32, 16
#: 24 rendered people: half of them the test split, 4 of the rest held out for validation,
#: the other 8 (about 50 images) train the GAN
TINY_DATA = [
    "data.synthetic.num_identities=24",
    "data.synthetic.num_cameras=4",
    "data.synthetic.images_per_identity_camera=2",
    "data.val_identities=4",
    "data.num_workers=0",
]
TINY_GAN = [
    "task=gan",
    f"gan.image_size=[{HEIGHT},{WIDTH}]",
    "gan.data.batch_size=8",
    "gan.data.num_workers=0",
    "gan.module.base_channels=8",
    "gan.module.latent_dim=16",
    "gan.max_epochs=2",
    "+trainer.limit_train_batches=2",
    "gan.grid.rows=2",
    "gan.grid.columns=3",
    "gan.quality.network=reid",
    "gan.quality.input_size=null",
    "gan.quality.num_samples=16",
    "gan.quality.max_real_images=32",
    "gan.quality.kid_subsets=3",
    "gan.quality.kid_subset_size=8",
    "gan.quality.batch_size=16",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=csv",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gan_task_data")


@pytest.fixture(scope="module")
def features_ckpt(tmp_path_factory) -> Path:
    return write_feature_checkpoint(tmp_path_factory.mktemp("gan_features"))


def _config(overrides: list[str], out: Path, data_dir: Path, features: Path,
            data: tuple[str, ...] | list[str] = tuple(TINY_DATA)):
    return compose_config([*TINY_GAN, *data, f"gan.quality.weights={features}", *overrides],
                          out, data_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir, features_ckpt) -> tuple[Path, dict[str, float], str]:
    """One conditional DCGAN run of 2 epochs, shared by the generate tests."""
    out = tmp_path_factory.mktemp("gan_run") / "run"
    cfg = _config(["gan.module.conditional=true"], out, data_dir, features_ckpt)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        metrics = gan(cfg)
    return out, metrics, printed.getvalue()


# ------------------------------------------------------------------------- task=gan
def test_training_writes_checkpoints_grids_and_quality(trained):
    out, metrics, printed = trained
    assert metrics["data/train_identities"] == 8 and metrics["data/train_images"] > 16
    assert np.isfinite(metrics["gan/FID"]) and np.isfinite(metrics["gan/KID"])
    assert metrics["gan/best_epoch"] in (1.0, 2.0)
    assert metrics["gan/FID"] <= metrics["gan/FID_final"]
    for key in ("train/loss_d_epoch", "train/loss_g_epoch"):
        assert np.isfinite(metrics[key]), key
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "last.ckpt" in names and "config.yaml" in names
    assert f"epoch_{int(metrics['gan/best_epoch']) - 1:03d}.ckpt" in names
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["epoch_000.png",
                                                                "epoch_001.png"]
    with Image.open(out / "grids" / "epoch_001.png") as grid:
        assert grid.size == (3 * (WIDTH + 2) + 2, 2 * (HEIGHT + 2) + 2)
    with open(out / "quality.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[int(metrics["gan/best_epoch"]) - 1]["fid"]) == pytest.approx(
        metrics["gan/FID"])
    assert (out / "quality.png").is_file() and (out / "csv" / "metrics.csv").is_file()
    # plain hyper-parameters (Lightning 2.6 loads weights_only) and the data record
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["kind"] == "dcgan" and list(hparams["image_size"]) == [HEIGHT, WIDTH]
    assert hparams["conditional"] is True and hparams["num_classes"] == 8
    assert checkpoint["global_step"] > 0 and checkpoint["epoch"] == 1
    record = checkpoint[GAN_DATA_KEY]
    assert record["train_images"] == metrics["data/train_images"]
    assert len(record["pid_of_label"]) == 8
    assert "reidsort gan summary" in printed and "FID (reid:last.ckpt)" in printed
    assert "task=generate ckpt_path=" in printed


@pytest.mark.parametrize("kind", ["wgan_gp", "vae_gan"])
def test_every_kind_trains_and_without_quality_keeps_the_last_epoch(kind, tmp_path, data_dir,
                                                                    features_ckpt):
    cfg = _config([f"gan={kind}", "gan.max_epochs=1", "gan.quality.every_n_epochs=0",
                   "gan.grid.every_n_epochs=0"], tmp_path / "run", data_dir, features_ckpt)
    metrics = gan(cfg)
    assert "gan/FID" not in metrics and np.isfinite(metrics["train/loss_d_epoch"])
    # nothing measures gan/FID: no sweep target (instead of an error after training)
    assert cfg.optimized_metric is None
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["config.yaml", "last.ckpt"]
    assert not (tmp_path / "run" / "grids").exists()
    hparams = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt",
                         weights_only=True)["hyper_parameters"]
    assert hparams["kind"] == kind and hparams["num_classes"] == 0


def test_resume_continues_steps_and_quality_history(tmp_path, data_dir, features_ckpt):
    first = _config(["gan.max_epochs=1"], tmp_path / "a", data_dir, features_ckpt)
    gan(first)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    steps = torch.load(last, weights_only=True)["global_step"]
    second = _config(["gan.max_epochs=2", f"ckpt_path={last}"], tmp_path / "b", data_dir,
                     features_ckpt)
    gan(second)
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 * steps
    with open(tmp_path / "b" / "quality.csv") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [0, 1]

    other = _config(["gan=wgan_gp", "gan.max_epochs=2", f"ckpt_path={last}"], tmp_path / "c",
                    data_dir, features_ckpt)
    with pytest.raises(ReidsortError, match="kind=dcgan differs from this run's wgan_gp"):
        gan(other)


def test_resume_true_finds_the_newest_last_checkpoint(tmp_path, data_dir, features_ckpt):
    cfg = _config(["gan.max_epochs=1", "resume=true"], tmp_path / "run", data_dir,
                  features_ckpt)
    with pytest.raises(FileNotFoundError, match="no last.ckpt found"):
        gan(cfg)


def test_a_dataset_without_training_images_is_refused(tmp_path, data_dir, features_ckpt):
    empty = tmp_path / "people"
    empty.mkdir()
    cfg = _config([], tmp_path / "run", data_dir, features_ckpt,
                  data=["data=folder", f"data.root={empty}"])
    with pytest.raises((ValueError, ReidsortError), match=str(empty)):
        gan(cfg)


def test_init_from_is_refused(tmp_path, data_dir, features_ckpt):
    cfg = _config(["init_from=/some/checkpoint.ckpt"], tmp_path / "run", data_dir,
                  features_ckpt)
    with pytest.raises(ReidsortError, match="init_from does not apply"):
        gan(cfg)


def test_sweep_runs_one_job_per_kind(tmp_path, data_dir, features_ckpt):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), REIDSORT_ROOT=str(tmp_path))
    args = [sys.executable, str(REPO_ROOT / "main.py"), "-m", *TINY_GAN, *TINY_DATA,
            f"gan.quality.weights={features_ckpt}", "gan.max_epochs=1",
            "gan=dcgan,wgan_gp", f"paths.data_dir={data_dir}"]
    done = subprocess.run(args, check=False, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    multiruns = tmp_path / "outputs" / "gan" / "multiruns"
    runs = sorted(multiruns.glob("*/[0-9]*"))
    assert len(runs) == 2
    assert all((r / "checkpoints" / "last.ckpt").is_file() for r in runs)
    summary = next(multiruns.glob("*/sweep_summary.tsv")).read_text()
    assert "gan/FID" in summary and "wgan_gp" in summary


# -------------------------------------------------------------------- task=generate
def _generate(trained_run: Path, out: Path, overrides: list[str]):
    cfg = compose_config(["task=generate", f"ckpt_path={trained_run}", *overrides], out)
    return cfg, generate(cfg)


def test_generate_writes_n_upright_images_and_a_manifest_last(trained, tmp_path):
    out, _, _ = trained
    ckpt = out / "checkpoints" / "last.ckpt"
    _, metrics = _generate(ckpt, tmp_path / "g", ["task.num_images=5", "task.batch_size=2"])
    folder = tmp_path / "g" / "generated"
    images = sorted(folder.glob("*.png"))
    assert len(images) == 5 and metrics["generate/images"] == 5
    for path in images:
        with Image.open(path) as image:
            # PIL's size is (width, height): people stand upright, H tall x W wide
            assert image.size == (WIDTH, HEIGHT) and image.mode == "RGB"
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["count"] == 5 and manifest["seed"] == 0
    assert manifest["image_size"] == {"height": HEIGHT, "width": WIDTH}
    assert manifest["files"] == [p.name for p in images]
    assert manifest["ckpt_path"] == str(ckpt.resolve()) and manifest["kind"] == "dcgan"
    # conditional: labels cycle over the 8 training identities, with their dataset pids
    assert manifest["labels"] == [0, 1, 2, 3, 4] and len(manifest["pids"]) == 5
    record = torch.load(ckpt, weights_only=True)[GAN_DATA_KEY]
    assert manifest["pids"] == record["pid_of_label"][:5]
    newest_image = max(p.stat().st_mtime_ns for p in images)
    assert (folder / MANIFEST_NAME).stat().st_mtime_ns >= newest_image
    # nothing else in the folder: no temporary files left behind
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest["files"],
                                                               MANIFEST_NAME])


def test_the_same_seed_gives_byte_identical_files(trained, tmp_path):
    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        _generate(ckpt, tmp_path / name, ["task.num_images=3", f"task.seed={seed}"])

    def files(name: str) -> list[bytes]:
        return [p.read_bytes() for p in sorted((tmp_path / name / "generated").glob("*.png"))]

    assert files("a") == files("b")
    assert files("a") != files("c")


def test_generate_jpeg_and_chosen_labels(trained, tmp_path):
    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    _generate(ckpt, tmp_path / "j", ["task.num_images=3", "task.format=jpg",
                                     "task.labels=[7]"])
    folder = tmp_path / "j" / "generated"
    jpegs = sorted(folder.glob("*.jpg"))
    assert len(jpegs) == 3
    with Image.open(jpegs[0]) as image:
        assert image.format == "JPEG" and image.size == (WIDTH, HEIGHT)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["labels"] == [7, 7, 7] and manifest["format"] == "jpg"


def test_generate_refuses_bad_counts_and_other_checkpoints(trained, tmp_path, features_ckpt):
    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=r"task.num_images=0: must be > 0"):
        _generate(ckpt, tmp_path / "z", ["task.num_images=0"])
    with pytest.raises(ValueError, match="expected png or jpg"):
        _generate(ckpt, tmp_path / "f", ["task.num_images=1", "task.format=gif"])
    with pytest.raises(ReidsortError, match="is a task=train Re-ID checkpoint, not a task=gan"):
        _generate(features_ckpt, tmp_path / "r", ["task.num_images=1"])
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        _generate(tmp_path / "missing.ckpt", tmp_path / "m", ["task.num_images=1"])
    with pytest.raises(ValueError, match="labels must lie in 0..7"):
        _generate(ckpt, tmp_path / "l", ["task.num_images=1", "task.labels=[8]"])


def test_the_cli_reports_a_bad_count_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), REIDSORT_ROOT=str(tmp_path))
    done = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), "task=generate",
                           "ckpt_path=x.ckpt", "task.num_images=-1"], check=False, cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        "error: task.num_images=-1: must be > 0"


# --------------------------------------------------------------------------- configs
def test_task_gan_defaults(tmp_path):
    cfg = compose_config(["task=gan"], tmp_path)
    assert cfg.optimized_metric == "gan/FID" and cfg.task.monitor == "gan/FID"
    assert cfg.task.monitor_mode == "min"
    assert cfg.gan.module.kind == "dcgan" and list(cfg.gan.image_size) == [128, 64]
    module = cfg.gan.module
    assert (module.lr_g, module.lr_d, list(module.betas)) == (2e-4, 8e-4, [0.0, 0.9])
    assert module.real_label == 0.9 and module.ema_decay == 0.999
    assert cfg.gan.quality.network == "mobilenet_v2"
    assert cfg.gan.quality.weights.endswith("models/mobilenetv2_imagenet.pt")


@pytest.mark.parametrize("kind", ["dcgan", "wgan_gp", "vae_gan"])
def test_every_kind_composes_to_its_objective(kind, tmp_path):
    module = compose_config(["task=gan", f"gan={kind}"], tmp_path).gan.module
    assert module.kind == kind
    if kind == "wgan_gp":
        assert module.gp_weight == 10.0 and module.n_critic >= 1


def test_cpu_recipe_composes_small(tmp_path):
    cfg = compose_config(["experiment=gan_cpu"], tmp_path)
    assert cfg.task.name == "gan" and cfg.gan.module.kind == "dcgan"
    assert list(cfg.gan.image_size) == [64, 32] and cfg.data.format == "synthetic"
    assert cfg.trainer.accelerator == "cpu" and cfg.torch_threads == 2
    assert compose_config(["experiment=gan_cpu", "gan=vae_gan"],
                          tmp_path).gan.module.kind == "vae_gan"


def test_generate_defaults(tmp_path):
    cfg = compose_config(["task=generate"], tmp_path)
    assert cfg.task.format == "png" and cfg.task.use_ema is True and cfg.task.seed == 0
    assert cfg.optimized_metric is None
