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
from omegaconf import DictConfig

from reidsort.data.datamodule import ReIDDataModule
from reidsort.reid.baseline import histogram_baseline
from reidsort.reid.checkpoints import (
    check_resume_compatible,
    find_last_checkpoint,
    load_transferable_weights,
)
from reidsort.reid.module import ReIDModule
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
    log.info("data: %s", sizes)

    module = build_module(cfg, datamodule.num_classes)
    ckpt_path = _resolve_ckpt_path(cfg)
    if ckpt_path:
        check_resume_compatible(ckpt_path, module, datamodule.num_classes,
                                cfg.model.backbone._target_)
        log.info("resuming from %s", ckpt_path)
    elif cfg.get("init_from"):
        load_transferable_weights(module, cfg.init_from)

    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    # the resolved config sits next to the checkpoints; that is expected, not a stale run
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
    if trainer.is_global_zero:
        atomic_write_text(output_dir / "checkpoints" / "config.yaml",
                          resolved_yaml(cfg))

    baseline: dict[str, float] = {}
    if cfg.task.get("histogram_baseline") and trainer.is_global_zero:
        assert datamodule.split is not None
        result = histogram_baseline(datamodule.split.query, datamodule.split.gallery)
        baseline = {"baseline/hist_mAP": result.mAP, "baseline/hist_rank1": result.rank(1)}
        log.info("colour-histogram baseline: mAP %.4f, Rank-1 %.4f",
                 result.mAP, result.rank(1))

    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics.update(baseline)
    checkpoint_cb = trainer.checkpoint_callback
    best_path = getattr(checkpoint_cb, "best_model_path", "") or ""
    best_score = getattr(checkpoint_cb, "best_model_score", None)
    if best_score is not None:
        metrics["val/mAP_final"] = metrics.get("val/mAP", float("nan"))
        metrics["val/mAP"] = float(best_score)
    if cfg.task.get("test_best") and best_path and not trainer.fast_dev_run:
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best_path, verbose=False)
        if tested:
            metrics["val/rank1"] = float(tested[0].get("test/rank1", metrics.get("val/rank1")))
            metrics["val/mINP"] = float(tested[0].get("test/mINP", float("nan")))
    metrics["time/seconds"] = time.perf_counter() - started
    metrics.update({f"data/{k}": float(v) for k, v in sizes.items()})
    if trainer.is_global_zero:
        print(_summary(cfg, metrics, best_path, output_dir, callbacks), flush=True)
    return metrics


def _summary(cfg: DictConfig, metrics: dict[str, float], best_path: str, output_dir: Path,
             callbacks: list[Any]) -> str:
    def fmt(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    hist = metrics.get("baseline/hist_mAP")
    ratio = metrics["val/mAP"] / hist if hist and "val/mAP" in metrics else None
    curves = next((c.path for c in callbacks if hasattr(c, "history")), None)
    lines = [
        "",
        "=" * 64,
        f"reidsort train summary  ({cfg.model.backbone._target_.rsplit('.', 1)[-1]}, "
        f"{metrics.get('time/seconds', 0):.0f} s)",
        "-" * 64,
        f"final train loss        {fmt('train/loss_epoch')}",
        f"val mAP (best epoch)    {fmt('val/mAP')}",
        f"val Rank-1 (best)       {fmt('val/rank1')}",
        f"histogram baseline mAP  {fmt('baseline/hist_mAP')}"
        + (f"   (model is {ratio:.1f}x)" if ratio else ""),
        f"best checkpoint         {best_path or 'n/a'}",
        f"logs                    {output_dir}",
    ]
    if curves:
        lines.append(f"training curves         {curves}")
    lines.append("=" * 64)
    return "\n".join(lines)


__all__ = ["train", "build_module"]
