"""``task=train``: Re-ID training with Lightning; returns the validation metrics."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from reidsort.data.datamodule import ReIDDataModule
from reidsort.reid.baseline import histogram_baseline
from reidsort.reid.callbacks import TrainingCurves
from reidsort.reid.checkpoints import (
    check_resume_compatible,
    find_last_checkpoint,
    load_transferable_weights,
)
from reidsort.reid.module import ReIDModule
from reidsort.reid.training_data import training_data_record
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import resolved_yaml, to_plain
from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)


def _check_sweep_strategy(cfg: DictConfig) -> None:
    """`-m` + strategy=ddp + devices>1 would re-run the whole sweep in every child process."""
    try:
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # HydraConfig not set (called from Python)
        multirun = False
    strategy = str(cfg.trainer.get("strategy", "auto"))
    devices = cfg.trainer.get("devices", 1)
    many = devices in (-1, "auto", "-1") or (str(devices).isdigit() and int(devices) > 1) \
        or isinstance(devices, (list, tuple)) and len(devices) > 1
    if multirun and many and strategy.startswith("ddp") and "spawn" not in strategy:
        raise ReidsortError(
            f"trainer.strategy={strategy} with devices={devices} cannot run inside a -m sweep "
            "(each DDP child would re-run the sweep); use trainer=ddp_spawn"
        )


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def _max_epochs_of(cfg: DictConfig, task_max_epochs: int) -> int:
    """A task's own epoch count (``jde.max_epochs``, ``gan.max_epochs``), unless the command line
    sets ``trainer.max_epochs`` (the data recipes of Re-ID training set that one too, so it is not
    the default of those tasks)."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:
        overrides = []
    if any(o.lstrip("+~").startswith("trainer.max_epochs=") for o in overrides):
        return int(cfg.trainer.max_epochs)
    return int(task_max_epochs)


def _fit_and_collect(trainer: L.Trainer, module: L.LightningModule, datamodule: Any,
                     ckpt_path: str | None, cfg: DictConfig, checkpoint_dir: Path
                     ) -> tuple[dict[str, float], str, str]:
    """``trainer.fit`` with the resolved config saved beside the checkpoints first (rank 0);
    the scalar metrics and the best / last checkpoint paths ("" when none)."""
    if trainer.is_global_zero:
        atomic_write_text(Path(checkpoint_dir) / "config.yaml", resolved_yaml(cfg))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    checkpoint = trainer.checkpoint_callback
    best_path = str(getattr(checkpoint, "best_model_path", "") or "")
    last_path = str(getattr(checkpoint, "last_model_path", "") or "")
    return metrics, best_path, last_path


def _resolve_ckpt_path(cfg: DictConfig) -> str | None:
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    if cfg.get("resume"):
        return str(find_last_checkpoint(cfg.paths.log_dir, cfg.task.name))
    return None


def build_module(cfg: DictConfig, num_classes: int) -> ReIDModule:
    return ReIDModule(
        num_classes=num_classes,
        model=to_plain(cfg.model),
        loss=to_plain(cfg.loss),
        optimizer=to_plain(cfg.optimizer),
        scheduler=to_plain(cfg.get("scheduler")),
        **to_plain(cfg.module),
    )


def _without_validation(callbacks: DictConfig | None) -> DictConfig | None:
    """Callbacks for a run with no validation split: checkpoints keep the last epoch only,
    early stopping (which needs ``val/*``) is left out with a warning."""
    if not callbacks:
        return callbacks
    kept = {}
    # resolved first: the copies below leave the config tree its interpolations point into
    for name, node in OmegaConf.to_container(callbacks, resolve=True).items():
        target = str((node or {}).get("_target_", ""))
        if target.endswith("EarlyStopping"):
            log.warning("callbacks.%s left out: there is no validation split to monitor "
                        "(set data.val_identities)", name)
            continue
        if target.endswith(("ModelCheckpoint", "BestAndLastCheckpoint")) and node.get("monitor"):
            node = {**node, "monitor": None, "save_top_k": 0, "save_last": True}
        kept[name] = node
    return OmegaConf.create(kept)


def _data_choice() -> str | None:
    """The data group option of this run (``synthetic``, ``folder``, ...), when Hydra runs it."""
    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get("data")
    return str(choice) if choice is not None else None


def _describe_data(datamodule: ReIDDataModule, sizes: dict[str, int]) -> str:
    val = (f"{sizes['val_identities']} held-out identities ({sizes['val_query_images']} query / "
           f"{sizes['val_gallery_images']} gallery)" if datamodule.has_validation
           else "none (data.val_identities=null): the last epoch is kept")
    test = (f"{sizes['test_query_images']} query / {sizes['test_gallery_images']} gallery"
            if datamodule.has_test else "none")
    return (f"data: {datamodule.format} {datamodule.dataset_root}\n"
            f"  train {sizes['train_images']} images of {sizes['train_identities']} identities"
            f" at {datamodule.image_size[0]}x{datamodule.image_size[1]}, P{datamodule.p} x "
            f"K{datamodule.k}\n  validation (checkpoint selection, sweeps): {val}\n"
            f"  test (reported once, at the end): {test}")


def _histogram_baselines(datamodule: ReIDDataModule) -> dict[str, float]:
    """The colour-histogram baseline on the splits the run reports."""
    assert datamodule.split is not None and datamodule.final is not None
    out: dict[str, float] = {}
    pairs = {"val": (datamodule.split.query, datamodule.split.gallery),
             "test": (datamodule.final.test_query, datamodule.final.test_gallery)}
    for stage, (query, gallery) in pairs.items():
        if query and gallery:
            result = histogram_baseline(query, gallery)
            out[f"baseline/{stage}_hist_mAP"] = result.mAP
            out[f"baseline/{stage}_hist_rank1"] = result.rank(1)
            log.info("colour-histogram baseline on %s: mAP %.4f, Rank-1 %.4f", stage,
                     result.mAP, result.rank(1))
    return out


def train(cfg: DictConfig) -> dict[str, float]:
    started = time.perf_counter()
    _check_sweep_strategy(cfg)
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    output_dir = Path(cfg.paths.output_dir)

    datamodule: ReIDDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    sizes = datamodule.summary()
    log.info(_describe_data(datamodule, sizes))

    module = build_module(cfg, datamodule.num_classes)
    # recorded in every checkpoint: task=eval evaluates this data unless data= says otherwise
    module.training_data = training_data_record(cfg.data, _data_choice(),
                                                datamodule.dataset_root, sizes)
    ckpt_path = _resolve_ckpt_path(cfg)
    if ckpt_path:
        check_resume_compatible(ckpt_path, module, datamodule.num_classes,
                                cfg.model.backbone._target_)
        log.info("resuming from %s", ckpt_path)
    elif cfg.get("init_from"):
        load_transferable_weights(module, cfg.init_from)

    validate = datamodule.has_validation
    callback_cfg = cfg.get("callbacks") if validate else _without_validation(cfg.get("callbacks"))
    callbacks = _instantiate_group(callback_cfg)
    loggers = _instantiate_group(cfg.get("logger"))
    extra = {} if validate else {"limit_val_batches": 0}
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     **extra)

    # the resolved config sits next to the checkpoints; that is expected, not a stale run
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
    if trainer.is_global_zero:
        atomic_write_text(output_dir / "checkpoints" / "config.yaml",
                          resolved_yaml(cfg))

    baseline: dict[str, float] = {}
    if cfg.task.get("histogram_baseline") and trainer.is_global_zero:
        baseline = _histogram_baselines(datamodule)
        # the curves show val mAP against this reference line
        for callback in callbacks:
            if isinstance(callback, TrainingCurves):
                callback.baseline_map = baseline.get("baseline/val_hist_mAP")

    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics.update(baseline)
    checkpoint_cb = trainer.checkpoint_callback
    best_path = getattr(checkpoint_cb, "best_model_path", "") or ""
    best_score = getattr(checkpoint_cb, "best_model_score", None)
    if validate and best_score is not None:
        metrics["val/mAP_final"] = metrics.get("val/mAP", float("nan"))
        metrics["val/mAP"] = float(best_score)
    if validate and module.val_history:
        # every val/* of the epoch the checkpoint callback chose (the best val/mAP; on ties
        # the first, as ModelCheckpoint keeps it)
        best = max(module.val_history, key=lambda row: (row["val/mAP"], -row["epoch"]))
        metrics.update({k: v for k, v in best.items() if k.startswith("val/")})
        metrics["val/best_epoch"] = best["epoch"] + 1
    tested_path = ""
    if cfg.task.get("test") and datamodule.has_test and not trainer.fast_dev_run:
        # once, at the end: the checkpoint validation chose, or the last weights without one
        tested_path = best_path if validate and best_path else ""
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=tested_path or None,
                              verbose=False)
        if tested:
            metrics.update({k: float(v) for k, v in tested[0].items()})
    metrics["time/seconds"] = time.perf_counter() - started
    metrics.update({f"data/{k}": float(v) for k, v in sizes.items()})
    if trainer.is_global_zero:
        print(_summary(cfg, metrics, best_path, tested_path, output_dir, callbacks,
                       validate), flush=True)
    return metrics


def _summary(cfg: DictConfig, metrics: dict[str, float], best_path: str, tested_path: str,
             output_dir: Path, callbacks: list[Any], validate: bool) -> str:
    def fmt(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    def versus_histogram(stage: str) -> str:
        model, hist = metrics.get(f"{stage}/mAP"), metrics.get(f"baseline/{stage}_hist_mAP")
        if model is None or hist is None:
            return ""
        return f"   (histogram {hist:.4f}" + (f", model {model / hist:.1f}x)" if hist else ")")

    curves = next((c.path for c in callbacks if hasattr(c, "history")), None)
    lines = [
        "",
        "=" * 72,
        f"reidsort train summary  ({cfg.model.backbone._target_.rsplit('.', 1)[-1]}, "
        f"{metrics.get('time/seconds', 0):.0f} s)",
        "-" * 72,
        f"final train loss        {fmt('train/loss_epoch')}",
    ]
    best_epoch = metrics.get("val/best_epoch")
    if validate:
        lines += [f"val mAP                 {fmt('val/mAP')}{versus_histogram('val')}"
                  + (f"  best: epoch {best_epoch:.0f}" if best_epoch else ""),
                  f"val Rank-1              {fmt('val/rank1')}"]
    else:
        lines.append("validation              none (data.val_identities=null)")
    if "test/mAP" in metrics:
        chosen = f"epoch {best_epoch:.0f}" if tested_path and best_epoch else (
            "best checkpoint" if tested_path else "last epoch")
        lines += [f"test mAP                {fmt('test/mAP')}{versus_histogram('test')}"
                  f"  ({chosen}, once)",
                  f"test Rank-1             {fmt('test/rank1')}"]
    lines += [f"best checkpoint         {best_path or 'n/a'}",
              f"logs                    {output_dir}"]
    if curves:
        lines.append(f"training curves         {curves}")
    lines.append("=" * 72)
    return "\n".join(lines)


__all__ = ["build_module", "train"]
