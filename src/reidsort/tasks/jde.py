"""``task=jde``: FairMOT joint detection + embedding training with Lightning.

Builds the :class:`~reidsort.jde.data.JDEDataModule` of ``jde.data`` (conf/jde/data/), the
:class:`~reidsort.jde.module.JDELitModule` of ``jde.model`` / ``jde.loss`` / ``jde.optimizer`` /
``jde.scheduler`` and a Trainer from the shared ``trainer`` / ``logger`` / ``callbacks`` groups
(DDP, AMP, TensorBoard / W&B, best + last checkpoints, ``resume=true`` / ``ckpt_path=``), fits,
and returns the metrics (``val/AP50`` of the best epoch, the losses, ...), for ``-m`` sweeps.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from reidsort.jde.data import JDEDataModule
from reidsort.jde.module import INITIAL_WEIGHT_KEYS, JDELitModule
from reidsort.reid.checkpoints import load_checkpoint
from reidsort.tasks.train import (
    _check_sweep_strategy,
    _fit_and_collect,
    _instantiate_group,
    _max_epochs_of,
    _resolve_ckpt_path,
    _without_validation,
)
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
#: the Re-ID monitor of the shared callback configs, replaced by task.monitor
REID_MONITOR = "val/mAP"


def build_jde_module(cfg: DictConfig, datamodule: JDEDataModule) -> JDELitModule:
    options = cfg.jde
    net = to_plain(options.model)
    initial = {key: net.pop(key, None) for key in INITIAL_WEIGHT_KEYS}
    return JDELitModule(
        net=net,
        num_ids=datamodule.num_ids,
        input_hw=list(datamodule.input_size),
        stride=int(datamodule.dataset_options["stride"]),
        amodal=bool(datamodule.dataset_options["amodal"]),
        loss=to_plain(options.get("loss")),
        optimizer=to_plain(options.optimizer),
        scheduler=to_plain(options.get("scheduler")),
        evaluation=to_plain(options.get("evaluation")),
        freeze=to_plain(options.get("freeze")),
        backbone_weights=initial["weights"],
        backbone_pretrained=initial["pretrained"],
        distill=to_plain(options.get("distill")),
    )


def check_resume_compatible(path: str, module: JDELitModule) -> None:
    """Refuse to resume from a checkpoint of another network, input size or identity count."""
    hparams = load_checkpoint(path).get("hyper_parameters", {})
    if "net" not in hparams:
        raise ReidsortError(f"{path}: not a task=jde checkpoint (no 'net' hyper-parameters)")
    for key in ("net", "num_ids", "input_hw"):
        old, new = hparams.get(key), module.hparams[key]
        if key == "input_hw":
            old = list(old) if old is not None else None
        if old != new:
            hint = (" (init_from=<ckpt> fine-tunes on other identities)" if key == "num_ids"
                    else "")
            raise ReidsortError(f"{path}: checkpoint {key}={old} differs from this run's "
                                f"{new}{hint}")


def load_initial_weights(module: JDELitModule, path: str) -> int:
    """``init_from``: the network weights (``net.*``) of another task=jde checkpoint; the
    identity classifier (its training identities) and the loss weights start fresh."""
    state = load_checkpoint(path)["state_dict"]
    source = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    target = module.net.state_dict()
    bad = sorted(k for k in target if k not in source or source[k].shape != target[k].shape)
    if bad:
        raise ReidsortError(f"init_from={path}: network weights do not fit this model "
                            f"({len(bad)} tensors missing or of another shape, e.g. {bad[:3]})")
    module.net.load_state_dict(source, strict=False)
    log.info("init_from: loaded %d network tensors from %s", len(source), path)
    return len(source)


def _callbacks(group: DictConfig | None, monitor: str, mode: str, validate: bool) -> list[Any]:
    """The shared callback configs, for FairMOT: checkpoints and early stopping monitor
    ``monitor`` instead of Re-ID's val/mAP, the epoch line shows the JDE losses and AP, the
    Re-ID training curves are left out (TensorBoard / W&B draw the JDE curves)."""
    if not group:
        return []
    nodes = OmegaConf.to_container(group, resolve=True)
    kept = {}
    for name, node in nodes.items():
        target = str((node or {}).get("_target_", ""))
        if target.endswith("TrainingCurves"):
            continue
        if target.endswith("reid.callbacks.EpochSummary"):
            node = {**node, "_target_": "reidsort.jde.module.JDEEpochSummary"}
        if node and node.get("monitor") == REID_MONITOR:
            node = {**node, "monitor": monitor, "mode": mode}
        kept[name] = node
    config = OmegaConf.create(kept)
    return _instantiate_group(config if validate else _without_validation(config))


def _max_epochs(cfg: DictConfig) -> int:
    return _max_epochs_of(cfg, int(cfg.jde.max_epochs))


def jde(cfg: DictConfig) -> dict[str, float]:
    started = time.perf_counter()
    _check_sweep_strategy(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    output_dir = Path(cfg.paths.output_dir)
    task = cfg.task

    datamodule = instantiate(cfg.jde.data)
    if not isinstance(datamodule, JDEDataModule):
        raise ReidsortError(f"jde.data must build a JDEDataModule, got {type(datamodule)}")
    datamodule.prepare_data()
    datamodule.setup("fit")
    summary = datamodule.summary()
    validate = datamodule.has_validation
    log.info("JDE data: %d training frames (%d boxes, %d identities) of %s; validation: %s",
             summary["train_frames"], summary["train_boxes"], summary["identities"],
             ", ".join(summary["train_sequences"]),
             f"{summary['val_frames']} frames of {', '.join(summary['val_sequences'])}"
             if validate else "none (the last epoch is kept)")

    module = build_jde_module(cfg, datamodule)
    module.data_summary = summary
    ckpt_path = _resolve_ckpt_path(cfg)
    if ckpt_path:
        check_resume_compatible(ckpt_path, module)
        log.info("resuming from %s", ckpt_path)
    elif cfg.get("init_from"):
        load_initial_weights(module, str(cfg.init_from))

    monitor, mode = str(task.monitor), str(task.monitor_mode)
    callbacks = _callbacks(cfg.get("callbacks"), monitor, mode, validate)
    loggers = _instantiate_group(cfg.get("logger"))
    extra = {} if validate else {"limit_val_batches": 0}
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     max_epochs=_max_epochs(cfg), **extra)
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
    metrics, best_path, last_path = _fit_and_collect(trainer, module, datamodule, ckpt_path,
                                                     cfg, output_dir / CHECKPOINT_DIR)
    history = [row for row in module.val_history if monitor in row]
    if validate and history:
        # every val/* of the epoch the checkpoint callback chose (first of equal ones)
        sign = 1.0 if mode == "max" else -1.0
        best = max(history, key=lambda row: (sign * row[monitor], -row["epoch"]))
        metrics[f"{monitor}_final"] = metrics.get(monitor, float("nan"))
        metrics.update({k: v for k, v in best.items() if k.startswith("val/")})
        metrics["val/best_epoch"] = float(best["epoch"] + 1)
    metrics["time/seconds"] = time.perf_counter() - started
    metrics.update({f"data/{k}": float(summary[k]) for k in
                    ("train_frames", "train_boxes", "identities", "val_frames")})
    if trainer.is_global_zero:
        print(_summary(cfg, metrics, best_path, last_path, output_dir, validate, monitor),
              flush=True)
    return metrics


def _summary(cfg: DictConfig, metrics: dict[str, float], best_path: str, last_path: str,
             output_dir: Path, validate: bool, monitor: str) -> str:
    def fmt(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    model = cfg.jde.model
    data = cfg.jde.data
    lines = [
        "",
        "=" * 72,
        (f"reidsort jde summary  ({model.backbone}, {data.input_size[1]}x{data.input_size[0]}, "
         f"{metrics.get('time/seconds', 0):.0f} s)"),
        "-" * 72,
        (f"data                    {int(metrics['data/train_frames'])} training frames, "
         f"{int(metrics['data/identities'])} identities; "
         f"{int(metrics['data/val_frames'])} validation frames"),
        (f"final train loss        {fmt('train/loss_epoch')}  (heatmap "
         f"{fmt('train/heatmap_epoch')}, size {fmt('train/size_epoch')}, offset "
         f"{fmt('train/offset_epoch')}, identity {fmt('train/identity_epoch')})"),
    ]
    if validate:
        best_epoch = metrics.get("val/best_epoch")
        lines += [f"{monitor:<24}{fmt(monitor)}"
                  + (f"  best: epoch {best_epoch:.0f}" if best_epoch else "")
                  + (f"  (last epoch {fmt(monitor + '_final')})"
                     if monitor + "_final" in metrics else ""),
                  (f"val precision / recall  {fmt('val/precision')} / {fmt('val/recall')}"
                   f"  (score >= {cfg.jde.evaluation.conf_threshold})"),
                  f"val loss                {fmt('val/loss')}"]
    else:
        lines.append("validation              none (jde.data.val_sequences / val_sources empty)")
    lines += [f"best checkpoint         {best_path or 'n/a'}",
              f"last checkpoint         {last_path or 'n/a'}",
              f"logs                    {output_dir}",
              "=" * 72]
    return "\n".join(lines)


__all__ = ["build_jde_module", "check_resume_compatible", "jde", "load_initial_weights"]
