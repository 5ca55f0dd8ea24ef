"""End-to-end training on tiny synthetic data (CPU): every backbone, resume, fine-tune, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import REPO_ROOT, TINY_TRAIN, compose_config
from hydra.utils import instantiate

from reidsort.reid.module import ReIDModule
from reidsort.tasks.train import build_module, train

MODELS = ["osnet_x0_25", "osnet_x1_0", "osnet_ibn_x1_0", "resnet18", "resnet50",
          "resnext50_32x4d", "deepsort_cnn"]


def run_main(args: list[str], tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), REIDSORT_ROOT=str(tmp_path))
    return subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_every_backbone(model, make_config):
    tiny = [o for o in TINY_TRAIN if not o.startswith("model=")]
    if model == "deepsort_cnn":
        tiny.append("data.image_size=[128,64]")  # its fc layer fixes the input size
    cfg = make_config([*tiny, f"model={model}", "debug=fdr", "logger=csv"])
    metrics = train(cfg)
    assert "val/mAP" in metrics and 0.0 <= metrics["val/mAP"] <= 1.0
    assert metrics["train/loss_epoch"] > 0


def test_short_training_writes_checkpoints_curves_and_reloads(make_config, caplog,
                                                               monkeypatch):
    import logging

    from reidsort.reid import callbacks as callbacks_module

    drawn_baselines: list[float | None] = []
    draw = callbacks_module.draw_training_curves

    def recording_draw(history, baseline_map=None):
        drawn_baselines.append(baseline_map)
        return draw(history, baseline_map=baseline_map)

    monkeypatch.setattr(callbacks_module, "draw_training_curves", recording_draw)
    # (one set_level only: each call also sets the capture handler's level)
    caplog.set_level(logging.INFO, logger="reidsort.train")
    cfg = make_config([*TINY_TRAIN, "trainer.max_epochs=2", "task.histogram_baseline=true"])
    metrics = train(cfg)
    # one summary line per epoch, for runs whose output is not a terminal
    lines = [r.getMessage() for r in caplog.records if r.name == "reidsort.train"]
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss" in line and "val mAP" in line and line.endswith(" s") for line in lines)
    assert metrics["val/best_epoch"] in (1, 2)
    # 4 held-out identities: the warning says how coarse that validation score is
    small = [r.getMessage() for r in caplog.records if "queries scored" in r.getMessage()]
    assert len(small) == 1 and small[0].startswith("val: only 4 queries scored (4 identities)")
    out = Path(cfg.paths.output_dir)
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file() and (out / "checkpoints" / "config.yaml").is_file()
    assert (out / "training_curves.png").stat().st_size > 1000
    assert 0 <= metrics["baseline/test_hist_mAP"] <= 1 and 0 <= metrics["test/mAP"] <= 1
    # the curves draw the validation histogram baseline as their reference line
    assert drawn_baselines and set(drawn_baselines) == {metrics["baseline/val_hist_mAP"]}
    # default torch.load settings (weights_only=True) can read it: plain hyper-parameters only
    checkpoint = torch.load(last, map_location="cpu")
    assert checkpoint["hyper_parameters"]["num_classes"] == 8  # 12 - 4 validation identities
    assert checkpoint["epoch"] == 1
    module = ReIDModule.load_from_checkpoint(last, map_location="cpu").eval()
    embedding = module.embed(torch.rand(2, 3, 128, 64))
    assert embedding.shape == (2, 128) or embedding.shape[0] == 2
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)


def test_without_a_validation_split_the_last_epoch_is_kept_and_tested(make_config):
    cfg = make_config([*TINY_TRAIN, "data.val_identities=null", "callbacks=default",
                       "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
                       "+callbacks.stop.monitor=val/mAP"])
    metrics = train(cfg)
    checkpoints = sorted(p.name for p in (Path(cfg.paths.output_dir) / "checkpoints").iterdir())
    assert checkpoints == ["config.yaml", "last.ckpt"]  # no "best" copy of the same epoch
    assert "val/mAP" not in metrics and 0 <= metrics["test/mAP"] <= 1
    assert metrics["data/train_identities"] == 12 and metrics["data/val_identities"] == 0


def test_resume_continues_at_the_next_epoch(make_config, tmp_path):
    first = make_config([*TINY_TRAIN, "trainer.max_epochs=1", "task.test=false"])
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    saved = tmp_path / "epoch1.ckpt"
    saved.write_bytes(last.read_bytes())
    second = make_config([*TINY_TRAIN, "trainer.max_epochs=2", f"ckpt_path={saved}",
                          "task.test=false"])
    train(second)
    resumed = torch.load(Path(second.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 1  # epoch index 1 = the second epoch ran, not a restart
    assert resumed["global_step"] == 2 * torch.load(saved)["global_step"]


def test_resume_true_picks_the_newest_last_ckpt(make_config):
    cfg = make_config([*TINY_TRAIN, "resume=true"])
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(cfg)


def test_resume_of_another_architecture_is_refused(make_config, tmp_path):
    cfg = make_config([*TINY_TRAIN, "task.test=false"])
    train(cfg)
    saved = tmp_path / "other.ckpt"
    saved.write_bytes((Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").read_bytes())
    tiny = [o for o in TINY_TRAIN if not o.startswith("model=")]
    other = make_config([*tiny, "model=resnet18", f"ckpt_path={saved}"])
    with pytest.raises(Exception, match="backbone"):
        train(other)
    more_ids = make_config([*TINY_TRAIN, "data.synthetic.num_identities=32",
                            f"ckpt_path={saved}"])
    with pytest.raises(Exception, match="identities"):
        train(more_ids)
    # fine-tuning on other identities is what init_from is for
    finetune = make_config([*TINY_TRAIN, "data.synthetic.num_identities=32",
                            f"init_from={saved}", "task.test=false"])
    dm = instantiate(finetune.data)
    dm.prepare_data()
    dm.setup()
    module = build_module(finetune, dm.num_classes)
    from reidsort.reid.checkpoints import load_transferable_weights

    assert load_transferable_weights(module, saved) > 10
    state = torch.load(saved)["state_dict"]
    assert torch.equal(module.state_dict()["backbone.conv1.conv.weight"],
                       state["backbone.conv1.conv.weight"])
    assert module.head.classifier.out_features == 12  # 16 - 4 validation identities


def test_cli_bad_inputs_fail_with_one_line(tmp_path):
    missing = run_main(["data=folder", f"data.root={tmp_path / 'nope'}", "debug=fdr"], tmp_path)
    assert missing.returncode != 0
    assert "error: dataset root not found" in missing.stderr
    (tmp_path / "ids" / "a").mkdir(parents=True)
    empty_id = run_main(["data=folder", f"data.root={tmp_path / 'ids'}", "debug=fdr"], tmp_path)
    assert empty_id.returncode != 0 and "identity folder without images" in empty_id.stderr
    few = run_main([*TINY_TRAIN, "data.p=64", "debug=fdr",
                    f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    assert few.returncode != 0
    assert "8 training identities but the PK sampler needs P=64" in few.stderr
    assert "Traceback" not in few.stderr


def test_sweep_of_two_optimizers_runs_two_jobs(tmp_path):
    result = run_main(["-m", *TINY_TRAIN, "debug=fdr", "optimizer=adam,sgd",
                       f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted((tmp_path / "outputs" / "train" / "multiruns").glob("*/[0-9]*"))
    assert len(runs) == 2
    overrides = [(r / ".hydra" / "overrides.yaml").read_text() for r in runs]
    assert any("optimizer=adam" in o for o in overrides)
    assert any("optimizer=sgd" in o for o in overrides)


def test_sweep_with_ddp_and_two_devices_stops_clearly(tmp_path):
    result = run_main(["-m", *TINY_TRAIN, "trainer=ddp", "trainer.devices=2",
                       "optimizer=adam,sgd", f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    assert result.returncode != 0
    assert "use trainer=ddp_spawn" in result.stderr


class RecordValMetrics(L.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_validation_end(self, trainer, pl_module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith("val/")}
        path = Path(self.out_dir) / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        path.write_text(json.dumps(metrics))


class RecordBatches(L.Callback):
    """Each rank's training batch indices per epoch, written when training ends."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.batches: dict[int, list[list[int]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.setdefault(trainer.current_epoch, []).append(batch[3].tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        path = Path(self.out_dir) / f"rank{trainer.global_rank}_batches.json"
        path.write_text(json.dumps(self.batches))


def test_two_process_cpu_ddp_gives_the_same_metrics_on_both_ranks(make_config, tmp_path):
    cfg = make_config([*TINY_TRAIN, "trainer.max_epochs=2", "data.batches_per_epoch=2"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    module = build_module(cfg, dm.num_classes)
    record_dir = tmp_path / "ranks"
    record_dir.mkdir()
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2,
        use_distributed_sampler=False, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[RecordValMetrics(str(record_dir)), RecordBatches(str(record_dir))],
    )
    trainer.fit(module, datamodule=dm)
    rank0 = json.loads((record_dir / "rank0_epoch1.json").read_text())
    rank1 = json.loads((record_dir / "rank1_epoch1.json").read_text())
    assert rank0 and rank0 == rank1
    assert 0 < rank0["val/mAP"] <= 1
    # every rank's sampler saw the new epoch, and the ranks hold disjoint halves
    per_rank = [json.loads((record_dir / f"rank{r}_batches.json").read_text()) for r in (0, 1)]
    for batches in per_rank:
        assert batches["0"] != batches["1"]
    for epoch in ("0", "1"):
        for half0, half1 in zip(per_rank[0][epoch], per_rank[1][epoch]):
            assert not set(half0) & set(half1)


def _one_step_weights(make_config, devices: int, gather: bool) -> dict[str, torch.Tensor]:
    """Weights after one SGD step on the same global P x K batch, on 1 or 2 CPU processes."""
    cfg = make_config([*TINY_TRAIN, "model.backbone._target_=tiny_models.NormFreeBackbone",
                       "~model.backbone.ibn",
                       "data.p=8", "data.k=2", "data.batches_per_epoch=1",
                       "data.augment.hflip=0", "data.augment.pad=0",
                       "data.augment.random_erasing=0",
                       # triplet only: the head's BatchNorm would see per-rank batches (CPU has
                       # no SyncBatchNorm); frozen, so DDP has no unused parameters
                       "loss.ce_weight=0", "module.freeze=[head.*]",
                       "optimizer=sgd", "optimizer.lr=0.5", "optimizer.momentum=0",
                       "optimizer.weight_decay=0", "~scheduler",
                       f"module.gather_for_mining={str(gather).lower()}"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    module = build_module(cfg, dm.num_classes)
    trainer = L.Trainer(accelerator="cpu", devices=devices,
                        strategy="ddp_spawn" if devices > 1 else "auto", max_steps=1,
                        use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return {k: v.detach().clone() for k, v in module.backbone.state_dict().items()}


def test_ddp_triplet_mining_sees_the_global_batch(make_config):
    single = _one_step_weights(make_config, devices=1, gather=True)
    gathered = _one_step_weights(make_config, devices=2, gather=True)
    local = _one_step_weights(make_config, devices=2, gather=False)
    start = {k: v for k, v in _initial_norm_free_weights().items()}
    for key in single:
        moved = (single[key] - start[key]).abs().max()
        assert moved > 1e-4, key  # the step did something
        torch.testing.assert_close(gathered[key], single[key], rtol=1e-5, atol=1e-6)
    # mining within each rank's 4 identities is a different loss
    assert any(not torch.allclose(local[k], single[k], rtol=1e-5, atol=1e-6) for k in single)


def _initial_norm_free_weights() -> dict[str, torch.Tensor]:
    from tiny_models import NormFreeBackbone

    return NormFreeBackbone().state_dict()


def test_trainer_configs_offer_sync_batchnorm(tmp_path):
    cfg = compose_config(["trainer=ddp", "trainer.sync_batchnorm=true"], tmp_path)
    assert cfg.trainer.sync_batchnorm is True
    trainer = instantiate(cfg.trainer, accelerator="cpu", devices=1, strategy="auto")
    assert trainer._accelerator_connector._layer_sync is not None  # SyncBatchNorm conversion


def test_mini_mars_training_improves_val_map(shared_data, tmp_path):
    root = shared_data / "reid" / "mini_mars" / "bbox_train"
    cfg = compose_config([
        "data=folder", f"data.root={root}", "data.val_identities=8", "data.p=4", "data.k=4",
        "data.image_size=[128,64]", "data.num_workers=0", "data.batches_per_epoch=20",
        "model=deepsort_cnn", "trainer.max_epochs=3", "optimizer.lr=1e-3",
        "trainer.check_val_every_n_epoch=3",
        "scheduler.warmup_epochs=0", "trainer.enable_progress_bar=false", "data.eval_batch_size=256",
        "trainer.num_sanity_val_steps=-1", "logger=csv", "callbacks=none",
        "task.histogram_baseline=false", "task.test=false",
    ], tmp_path / "run")
    record_dir = tmp_path / "ranks"
    record_dir.mkdir()
    dm = instantiate(cfg.data)
    dm.setup()
    module = build_module(cfg, dm.num_classes)
    trainer = instantiate(cfg.trainer, callbacks=[RecordValMetrics(str(record_dir))],
                          logger=False, enable_checkpointing=False)
    trainer.fit(module, datamodule=dm)
    before = json.loads((record_dir / "rank0_epoch0.json").read_text())  # sanity pass: untrained
    after = json.loads((record_dir / "rank0_epoch2.json").read_text())
    assert after["val/mAP"] > before["val/mAP"] + 0.03, (before, after)
    assert after["val/mINP"] > before["val/mINP"], (before, after)


def test_checkpoints_keep_the_best_and_the_last_epoch_without_copies(make_config):
    import os

    cfg = make_config([*TINY_TRAIN, "trainer.max_epochs=3"])
    metrics = train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    files = sorted(p.name for p in folder.glob("*.ckpt"))
    best = int(metrics["val/best_epoch"])  # 1-based
    last = folder / "last.ckpt"
    assert torch.load(last, map_location="cpu")["epoch"] == 2  # the last epoch, always
    epoch_files = [name for name in files if name != "last.ckpt"]
    assert epoch_files == [f"epoch_{best - 1:03d}.ckpt"]  # only the best
    if best == 3:  # the last epoch is the best: last.ckpt is a link, not a second copy
        assert last.is_symlink() and os.readlink(last) == epoch_files[0]
    else:
        assert not last.is_symlink()
    # never a dangling link, never the best overwritten through a link
    assert torch.load(folder / epoch_files[0], map_location="cpu")["epoch"] == best - 1
