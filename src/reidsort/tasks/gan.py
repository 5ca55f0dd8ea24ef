"""``task=gan``: GAN training on the training identities of a Re-ID dataset.

``gan=dcgan | wgan_gp | vae_gan`` (conf/gan/) picks the objective, ``data=`` any Re-ID data
option: :class:`~reidsort.generative.data.GANDataModule` keeps its ``split.train`` only (never
validation or test query/gallery). The :class:`~reidsort.generative.module.GANModule` gets
``gan.module`` one to one plus the image size (and the identity count when conditional). The
Trainer comes from the shared ``trainer`` / ``logger`` / ``callbacks`` groups (DDP, AMP,
TensorBoard / W&B, ``resume=true`` / ``ckpt_path=``), adapted as for ``task=jde``: checkpoints
keep the lowest ``gan/FID`` (+ ``last.ckpt``) when sample quality is measured, else the last
epoch only. Returns the metrics (``gan/FID`` of the best epoch, the losses, ...) for ``-m``
sweeps.
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
from omegaconf import DictConfig, OmegaConf, open_dict

from reidsort.generative.callbacks import (
    FID_KEY,
    KID_KEY,
    KID_STD_KEY,
    GANDataRecord,
    SampleGrid,
    SampleQuality,
)
from reidsort.generative.data import GANDataModule
from reidsort.reid.checkpoints import load_checkpoint
from reidsort.tasks.train import (
    _check_sweep_strategy,
    _fit_and_collect,
    _instantiate_group,
    _max_epochs_of,
    _resolve_ckpt_path,
)
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
GRID_DIR = "grids"
#: the Re-ID monitor of the shared callback configs, replaced by task.monitor
REID_MONITOR = "val/mAP"
#: the shared Re-ID epoch line, replaced by the GAN one
REID_EPOCH_SUMMARY = "reidsort.reid.callbacks.EpochSummary"
GAN_EPOCH_SUMMARY = "reidsort.generative.callbacks.GANEpochSummary"
#: hyper-parameters a resumed checkpoint must share with this run (they shape the networks)
ARCHITECTURE_KEYS = ("kind", "image_size", "num_classes", "conditional", "latent_dim",
                     "base_channels", "spectral_norm", "self_attention")


def build_gan_module(cfg: DictConfig, datamodule: GANDataModule) -> L.LightningModule:
    """``GANModule(**gan.module, image_size, num_classes)``."""
    from reidsort.generative.module import GANModule

    options = to_plain(cfg.gan.module)
    conditional = bool(options.get("conditional"))
    return GANModule(**options, image_size=list(datamodule.image_size),
                     num_classes=datamodule.num_classes if conditional else 0)


def check_resume_compatible(path: str, module: L.LightningModule) -> None:
    """Refuse to resume from a checkpoint that is no GAN, or one of other networks."""
    hparams = load_checkpoint(path).get("hyper_parameters") or {}
    if "kind" not in hparams:
        raise ReidsortError(f"{path}: not a task=gan checkpoint (no 'kind' hyper-parameter)")
    for key in ARCHITECTURE_KEYS:
        old, new = hparams.get(key), module.hparams.get(key)
        if isinstance(old, (list, tuple)):
            old, new = list(old), list(new) if new is not None else None
        if old != new:
            raise ReidsortError(f"{path}: checkpoint {key}={old} differs from this run's {new}")


#: DDP strategies -> the same with unused-parameter detection: each GAN step runs D and G
#: through one wrapped forward, two backward passes, with the other network toggled off
GAN_DDP_STRATEGIES = {"ddp": "ddp_find_unused_parameters_true",
                      "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}


def gan_strategy(strategy: Any) -> str | None:
    """The strategy name ``task=gan`` runs instead of ``strategy`` (None: keep it)."""
    return GAN_DDP_STRATEGIES.get(strategy) if isinstance(strategy, str) else None


def quality_enabled(cfg: DictConfig) -> bool:
    quality = cfg.gan.get("quality")
    return bool(quality) and int(quality.get("every_n_epochs") or 0) > 0


def _gan_callbacks(cfg: DictConfig, datamodule: GANDataModule, output_dir: Path) -> list[Any]:
    callbacks: list[Any] = [GANDataRecord(datamodule.record())]
    grid = cfg.gan.get("grid")
    if grid and int(grid.get("every_n_epochs", 1)) > 0:
        callbacks.append(SampleGrid(str(output_dir / GRID_DIR), **to_plain(grid)))
    if quality_enabled(cfg):
        callbacks.append(SampleQuality(str(output_dir), **to_plain(cfg.gan.quality)))
    return callbacks


def _shared_callbacks(group: DictConfig | None, monitor: str, mode: str,
                      measured: bool) -> list[Any]:
    """The shared callback configs for a GAN: checkpoints and early stopping watch ``monitor``
    (gan/FID) instead of Re-ID's val/mAP, or, without quality measurements, checkpoints keep
    the last epoch and early stopping is left out; the epoch line is the GAN one; the Re-ID
    training curves are left out (quality.png and the loggers draw the GAN's)."""
    if not group:
        return []
    kept = {}
    for name, node in OmegaConf.to_container(group, resolve=True).items():
        target = str((node or {}).get("_target_", ""))
        if target.endswith("TrainingCurves"):
            continue
        if target == REID_EPOCH_SUMMARY:
            node = {**node, "_target_": GAN_EPOCH_SUMMARY}
        if node and node.get("monitor") == REID_MONITOR:
            if measured:
                node = {**node, "monitor": monitor, "mode": mode}
            elif target.endswith("EarlyStopping"):
                log.warning("callbacks.%s left out: gan.quality is off, there is no gan/FID to "
                            "monitor", name)
                continue
            else:
                node = {**node, "monitor": None, "save_top_k": 0, "save_last": True}
        kept[name] = node
    return _instantiate_group(OmegaConf.create(kept))


def _max_epochs(cfg: DictConfig) -> int:
    return _max_epochs_of(cfg, int(cfg.gan.max_epochs))


def _quality_callback(callbacks: list[Any]) -> SampleQuality | None:
    return next((c for c in callbacks if isinstance(c, SampleQuality)), None)


def gan(cfg: DictConfig) -> dict[str, float]:
    started = time.perf_counter()
    _check_sweep_strategy(cfg)
    if cfg.get("init_from"):
        raise ReidsortError("init_from does not apply to task=gan (ckpt_path=<last.ckpt> or "
                            "resume=true continue a GAN run)")
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    seed = cfg.get("seed")
    if seed is not None:
        L.seed_everything(int(seed), workers=True)
    output_dir = Path(cfg.paths.output_dir)
    measured = quality_enabled(cfg)
    if not measured and cfg.get("optimized_metric") in (FID_KEY, KID_KEY):
        # nothing measures it: a sweep would fail after training; plain runs return no score
        log.warning("gan.quality is off: optimized_metric=%s is not measured (set "
                    "gan.quality.every_n_epochs for sweeps)", cfg.optimized_metric)
        with open_dict(cfg):
            cfg.optimized_metric = None

    datamodule = GANDataModule.from_config(cfg.data, image_size=list(cfg.gan.image_size),
                                           seed=int(seed or 0), **to_plain(cfg.gan.data))
    datamodule.prepare_data()
    datamodule.setup("fit")
    summary = datamodule.summary()

    module = build_gan_module(cfg, datamodule)
    ckpt_path = _resolve_ckpt_path(cfg)
    if ckpt_path:
        check_resume_compatible(ckpt_path, module)
        log.info("resuming from %s", ckpt_path)

    monitor, mode = str(cfg.task.monitor), str(cfg.task.monitor_mode)
    callbacks = [*_gan_callbacks(cfg, datamodule, output_dir),
                 *_shared_callbacks(cfg.get("callbacks"), monitor, mode, measured)]
    loggers = _instantiate_group(cfg.get("logger"))
    # no validation loop: the checkpoint callback saves at each training epoch's end, after
    # SampleQuality has logged that epoch's gan/FID
    strategy = gan_strategy(cfg.trainer.get("strategy"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     max_epochs=_max_epochs(cfg), limit_val_batches=0,
                                     **({"strategy": strategy} if strategy else {}))
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
    # epochs between two measurements have no gan/FID yet: nothing to rank, as intended
    warnings.filterwarnings("ignore", message=rf".*ModelCheckpoint\(monitor='{monitor}'\)`? could "
                                              r"not find the monitored key")
    # the generator EMA is in eval mode on purpose (it is averaged, never trained)
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of "
                                              r"training")
    metrics, best_path, last_path = _fit_and_collect(trainer, module, datamodule, ckpt_path,
                                                     cfg, output_dir / CHECKPOINT_DIR)
    quality = _quality_callback(callbacks)
    if quality is not None and quality.history:
        # the epoch the checkpoint callback keeps (lowest FID; the first of equal ones)
        best = min(quality.history, key=lambda row: (row["fid"], row["epoch"]))
        last = quality.history[-1]
        metrics.update({f"{FID_KEY}_final": last["fid"], f"{KID_KEY}_final": last["kid"],
                        FID_KEY: best["fid"], KID_KEY: best["kid"],
                        KID_STD_KEY: best["kid_std"], "gan/best_epoch": best["epoch"] + 1.0})
    metrics["time/seconds"] = time.perf_counter() - started
    metrics.update({f"data/{k}": float(v) for k, v in summary.items()})
    if trainer.is_global_zero:
        print(_summary(cfg, datamodule, metrics, best_path, last_path, output_dir, quality,
                       callbacks), flush=True)
    return metrics


def _summary(cfg: DictConfig, datamodule: GANDataModule, metrics: dict[str, float],
             best_path: str, last_path: str, output_dir: Path, quality: SampleQuality | None,
             callbacks: list[Any]) -> str:
    def fmt(key: str, digits: int = 4) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    height, width = datamodule.image_size
    module = cfg.gan.module
    lines = [
        "",
        "=" * 72,
        (f"reidsort gan summary  ({module.kind}{', conditional' if module.conditional else ''}"
         f", {height}x{width}, {metrics.get('time/seconds', 0):.0f} s)"),
        "-" * 72,
        (f"data                    {int(metrics['data/train_images'])} training images of "
         f"{int(metrics['data/train_identities'])} identities ({datamodule.reid.format}; "
         "no validation / test identity)"),
        (f"final losses            D {fmt('train/loss_d_epoch')}  G "
         f"{fmt('train/loss_g_epoch')}"),
    ]
    if quality is not None and quality.history:
        best_epoch = metrics.get("gan/best_epoch")
        lines += [
            (f"FID ({quality.network.name})".ljust(24) + f"{fmt(FID_KEY, 2)}  best: epoch "
             f"{best_epoch:.0f}  (last epoch {fmt(FID_KEY + '_final', 2)})"),
            (f"KID                     {fmt(KID_KEY, 5)} +- {fmt(KID_STD_KEY, 5)}  "
             f"({quality.num_samples} samples vs {quality.history[-1]['num_real']} real)"),
            f"quality curves          {quality.plot_path}",
        ]
    else:
        lines.append("sample quality          not measured (gan.quality.every_n_epochs=0)")
    grid = next((c for c in callbacks if isinstance(c, SampleGrid)), None)
    if grid is not None:
        lines.append(f"sample grids            {grid.dirpath}")
    lines += [f"best checkpoint         {best_path or 'n/a'}",
              f"last checkpoint         {last_path or 'n/a'}",
              f"logs                    {output_dir}"]
    chosen = best_path or last_path
    if chosen:
        lines.append(f"generate images         python main.py task=generate ckpt_path={chosen}")
    lines.append("=" * 72)
    return "\n".join(lines)


__all__ = ["GAN_DDP_STRATEGIES", "build_gan_module", "check_resume_compatible", "gan",
           "gan_strategy", "quality_enabled"]
