"""task=jde end to end on tiny synthetic sequences (a real Trainer, a few steps): epoch lines,
best + last checkpoints that follow the checkpoint contract, resume, init_from, no validation,
a -m sweep; the experiments compose with their published values."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, compose_config

from reidsort.jde.module import JDELitModule
from reidsort.tasks.jde import jde
from reidsort.utils.errors import ReidsortError

SYNTH = "width: 128, height: 96, num_people: 4, num_pillars: 0"
TRAIN_SOURCES = (f"[{{type: synthetic, name: JT1, num_frames: 3, seed: 1, {SYNTH}}},"
                 f"{{type: synthetic, name: JT2, num_frames: 3, seed: 2, {SYNTH}}}]")
VAL_SOURCES = f"[{{type: synthetic, name: JTV, num_frames: 2, seed: 3, {SYNTH}}}]"
#: 6 training frames, batch 2: 3 steps per epoch at 96x64
TINY_JDE = [
    "task=jde",
    "jde/model=mobilenet_v2",
    "jde.model.head_channels=16",
    "jde.model.embedding_dim=16",
    "jde.data.input_size=[64,96]",
    "jde.data.batch_size=2",
    "jde.data.num_workers=0",
    "jde.data.max_objects=32",
    f"jde.data.sources={TRAIN_SOURCES}",
    f"jde.data.val_sources={VAL_SOURCES}",
    "jde.evaluation.top_k=50",
    "jde.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=csv",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jde_task_data")


def _config(overrides: list[str], out: Path, data_dir: Path):
    return compose_config([*TINY_JDE, *overrides], out, data_dir)


def test_training_logs_epoch_lines_and_writes_contract_checkpoints(tmp_path, data_dir, caplog):
    caplog.set_level(logging.INFO, logger="reidsort.train")
    cfg = _config(["jde.max_epochs=2"], tmp_path / "run", data_dir)
    metrics = jde(cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "reidsort.train"]
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss" in line and " hm " in line and " id " in line and "val AP50" in line
               and line.endswith(" s") for line in lines)
    assert 0.0 <= metrics["val/AP50"] <= 1.0 and metrics["val/best_epoch"] in (1, 2)
    for key in ("train/loss_epoch", "train/heatmap_epoch", "train/size_epoch",
                "train/offset_epoch", "train/identity_epoch", "val/loss", "val/heatmap"):
        assert math.isfinite(metrics[key]), key
    assert metrics["data/train_frames"] == 6 and metrics["data/val_frames"] == 2
    folder = tmp_path / "run" / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert "last.ckpt" in names and "config.yaml" in names
    assert f"epoch_{int(metrics['val/best_epoch']) - 1:03d}.ckpt" in names
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()

    # the contract: plain hyper-parameters (weights_only), the network under net.
    checkpoint = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 6
    hp = checkpoint["hyper_parameters"]
    assert hp["net"] == {"backbone": "mobilenet_v2", "num_classes": 1, "embedding_dim": 16,
                         "head_channels": 16, "size_mode": "ltrb"}
    assert hp["input_hw"] == [64, 96] and hp["stride"] == 4 and hp["amodal"] is True
    assert hp["num_ids"] == metrics["data/identities"] >= 3
    assert len(hp["mean"]) == 3 and len(hp["std"]) == 3
    state = checkpoint["state_dict"]
    assert "net.heatmap.2.bias" in state and "net.backbone.features.0.0.weight" in state
    assert checkpoint["jde_data"]["train_frames"] == 6
    module = JDELitModule.load_from_checkpoint(folder / "last.ckpt", map_location="cpu")
    assert torch.equal(module.net.heatmap[2].bias, state["net.heatmap.2.bias"])
    output = module.net.eval()(torch.zeros(1, 3, 64, 96))
    assert output.heatmap.shape == (1, 1, 16, 24) and output.size.shape == (1, 4, 16, 24)
    assert output.embedding.shape == (1, 16, 16, 24)


def test_resume_continues_the_epoch_count(tmp_path, data_dir):
    first = _config([], tmp_path / "first", data_dir)
    jde(first)
    saved = tmp_path / "epoch1.ckpt"
    saved.write_bytes((tmp_path / "first" / "checkpoints" / "last.ckpt").read_bytes())
    second = _config(["jde.max_epochs=2", f"ckpt_path={saved}"], tmp_path / "second", data_dir)
    jde(second)
    resumed = torch.load(tmp_path / "second" / "checkpoints" / "last.ckpt", map_location="cpu")
    before = torch.load(saved, map_location="cpu")
    assert before["epoch"] == 0 and resumed["epoch"] == 1  # the second epoch ran, no restart
    assert resumed["global_step"] == 2 * before["global_step"]
    # another network, or other identities, is refused with a clear message
    other = _config(["jde.model.head_channels=8", f"ckpt_path={saved}"], tmp_path / "o", data_dir)
    with pytest.raises(ReidsortError, match="net="):
        jde(other)
    # ... which is what init_from is for: the network weights, a fresh identity classifier
    more = TRAIN_SOURCES[:-1] + f",{{type: synthetic, name: JT3, num_frames: 3, seed: 4, {SYNTH}}}]"
    tuned = _config([f"init_from={saved}", f"jde.data.sources={more}"], tmp_path / "tuned",
                    data_dir)
    metrics = jde(tuned)
    assert metrics["data/train_frames"] == 9
    assert metrics["data/identities"] > torch.load(saved)["hyper_parameters"]["num_ids"]


def test_resume_true_without_a_previous_run_says_so(tmp_path, data_dir):
    cfg = _config(["resume=true"], tmp_path / "run", data_dir)
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        jde(cfg)


def test_without_validation_the_last_epoch_is_kept(tmp_path, data_dir):
    cfg = _config(["jde.data.val_sources=[]", "optimized_metric=null"], tmp_path / "run",
                  data_dir)
    metrics = jde(cfg)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["config.yaml", "last.ckpt"]
    assert "val/AP50" not in metrics and metrics["data/val_frames"] == 0


def test_explicit_trainer_max_epochs_wins(tmp_path, data_dir):
    cfg = _config(["trainer.max_epochs=2", "+trainer.limit_train_batches=1"], tmp_path / "run",
                  data_dir)
    jde(cfg)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt")["epoch"] == 1


def test_sweep_runs_one_job_per_value(tmp_path, data_dir):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), REIDSORT_ROOT=str(tmp_path))
    args = [sys.executable, str(REPO_ROOT / "main.py"), "-m", *TINY_JDE,
            "+trainer.limit_train_batches=1", "jde.optimizer.lr=1e-4,1e-3",
            f"paths.data_dir={data_dir}"]
    done = subprocess.run(args, check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted((tmp_path / "outputs" / "jde" / "multiruns").glob("*/[0-9]*"))
    assert len(runs) == 2
    assert all((r / "checkpoints" / "last.ckpt").is_file() for r in runs)
    summary = next((tmp_path / "outputs" / "jde" / "multiruns").glob("*/sweep_summary.tsv"))
    assert "val/AP50" in summary.read_text()


# ---------------------------------------------------------------------------- configs
def test_task_jde_defaults_are_fairmot(tmp_path):
    cfg = compose_config(["task=jde"], tmp_path)
    assert cfg.optimized_metric == "val/AP50" and cfg.task.monitor == "val/AP50"
    options = cfg.jde
    assert options.model.backbone == "resnet18" and options.model.size_mode == "ltrb"
    assert options.model.embedding_dim == 128 and options.model.head_channels == 256
    assert options.data.amodal is True and list(options.data.input_size) == [608, 1088]
    assert options.data.size_mode == "ltrb" and options.data.batch_size == 12
    # several synthetic training sequences and one held out: a fresh clone trains
    assert len(options.data.sources) >= 3 and len(options.data.val_sources) == 1
    assert all(s.type == "synthetic" for s in [*options.data.sources, *options.data.val_sources])
    assert options.optimizer._target_ == "torch.optim.Adam" and options.optimizer.lr == 1e-4
    assert list(options.scheduler.milestones) == [20] and options.scheduler.gamma == 0.1
    assert options.max_epochs == 30
    assert options.loss.size_weight == 0.1
    assert (options.loss.s_det, options.loss.s_id) == (-1.85, -1.05)
    for backbone in ("resnet18", "resnet34", "dla34", "mobilenet_v2"):
        assert compose_config(["task=jde", f"jde/model={backbone}"],
                              tmp_path).jde.model.backbone == backbone
    gpu = compose_config(["task=jde", "trainer=gpu"], tmp_path)
    assert gpu.trainer.precision == "16-mixed"  # AMP from the shared trainer configs
    mix = compose_config(["task=jde", "jde/data=mix"], tmp_path)
    assert len(mix.jde.data.sources) >= 2 and str(mix.jde.data.sources[-1]).endswith(
        "TUD-Stadtmitte")


def test_published_mot17_recipe_composes_with_its_values(tmp_path):
    cfg = compose_config(["experiment=fairmot_dla34_mot17"], tmp_path)
    options = cfg.jde
    assert cfg.task.name == "jde"
    assert options.model.backbone == "dla34" and options.model.pretrained == "imagenet"
    assert options.model.size_mode == "ltrb" and options.data.amodal is True
    assert list(options.data.input_size) == [608, 1088] and options.data.batch_size == 12
    assert options.optimizer.lr == 1e-4 and options.max_epochs == 30
    assert list(options.scheduler.milestones) == [20] and options.scheduler.gamma == 0.1
    assert options.model.embedding_dim == 128 and options.loss.size_weight == 0.1
    assert str(options.data.sources[0]).endswith("fairmot/MOT17")
    assert cfg.trainer.accelerator == "gpu"


def test_cpu_recipe_composes_small_and_from_rendered_data(tmp_path):
    cfg = compose_config(["experiment=fairmot_cpu"], tmp_path)
    options = cfg.jde
    height, width = options.data.input_size
    assert height * width <= 320 * 256 and cfg.trainer.accelerator == "cpu"
    assert all(s.type == "synthetic" for s in [*options.data.sources, *options.data.val_sources])
    assert options.model.backbone == "mobilenet_v2"
    assert str(options.model.weights).endswith("models/mobilenetv2_imagenet.pt")
    assert max(options.scheduler.milestones) < options.max_epochs


def test_distillation_from_a_reid_checkpoint_adds_to_the_tracking_loss(tmp_path, data_dir):
    # a Re-ID teacher with 8-d embeddings vs the student's 16: the learned projection is trained
    # and saved; the logged distillation term is positive and the tracking loss is still logged
    from tiny_models import tiny_module, write_checkpoint

    teacher = write_checkpoint(tiny_module("osnet_x0_25", num_classes=5),
                               tmp_path / "teacher" / "checkpoints" / "last.ckpt",
                               image_size=(64, 32))
    cfg = _config([f"jde.distill={{reid: {{path: '{teacher}'}}, cache: false}}"],
                  tmp_path / "run", data_dir)
    metrics = jde(cfg)
    assert metrics["train/distill_embedding"] > 0, metrics
    assert metrics["train/distill_total"] == pytest.approx(metrics["train/distill_embedding"])
    assert math.isfinite(metrics["train/loss"])
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True,
                      map_location="cpu")
    assert any(key.startswith("distill.") for key in ckpt["state_dict"]), list(ckpt["state_dict"])
    assert ckpt["hyper_parameters"]["distill"]["reid"]["path"] == str(teacher)



def test_two_process_cpu_ddp_trains_through_main_py(tmp_path):
    """trainer=ddp with 2 CPU processes, the way a user launches it: Lightning re-runs main.py
    for the second rank; each rank trains on its own shard (3 of the 6 frames: one step of 2
    per epoch), the epoch lines and the summary come from rank 0 only, and the loss is the
    mean over both ranks (no 'sync_dist' hint)."""
    command = [sys.executable, str(REPO_ROOT / "main.py"), *TINY_JDE, "jde.max_epochs=2",
               "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
               f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONWARNINGS": "default"}, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Starting with 2 processes" in output
    assert output.count("reidsort jde summary") == 1
    assert output.count("epoch 2/2") == 1
    assert "sync_dist=True" not in output
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2
    assert checkpoint["jde_data"]["train_frames"] == 6


def test_bf16_mixed_precision_trains_with_finite_losses(tmp_path, data_dir):
    """AMP as in Re-ID training (trainer=gpu uses 16-mixed on CUDA; bf16-mixed runs on a CPU):
    the focal, L1 and identity losses stay finite and the weights move."""
    cfg = _config(["trainer.precision=bf16-mixed"], tmp_path / "run", data_dir)
    metrics = jde(cfg)
    for key in ("train/loss_epoch", "train/heatmap_epoch", "train/size_epoch",
                "train/identity_epoch", "val/loss"):
        assert math.isfinite(metrics[key]), key
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)
    assert checkpoint["global_step"] == 3
    assert all(v.dtype == torch.float32 for k, v in checkpoint["state_dict"].items()
               if v.is_floating_point())
