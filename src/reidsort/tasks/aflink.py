"""``task=aflink``: train StrongSORT++'s AFLink on MOT ground truth with Lightning, export it
(``.npz`` for the NumPy inference of ``postprocess=aflink``, ONNX), check both against torch."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from reidsort.linking.data import AFLinkDataModule
from reidsort.linking.export import check_exports, export_onnx, save_npz
from reidsort.linking.module import AFLinkModule
from reidsort.utils.hydra_utils import resolved_yaml, to_plain
from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

PREFIX = "aflink/"
CHECKPOINT_DIR = "checkpoints"


def _loggers(cfg: DictConfig) -> list:
    group = cfg.get("logger")
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def aflink(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    options, task = cfg.aflink, cfg.task
    output_dir = Path(cfg.paths.output_dir)
    datamodule: AFLinkDataModule = instantiate(options.data)
    datamodule.setup("fit")
    module = AFLinkModule(**to_plain(options.model), **to_plain(options.optim))
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / CHECKPOINT_DIR, save_last=True, save_top_k=0, monitor=None
    )
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[checkpoint],
        logger=_loggers(cfg) or False,
        max_epochs=int(task.max_epochs),
        log_every_n_steps=int(task.log_every_n_steps),
        enable_model_summary=False,
        limit_val_batches=1.0 if datamodule.has_validation else 0,
    )
    atomic_write_text(output_dir / CHECKPOINT_DIR / "config.yaml", resolved_yaml(cfg))
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - started
    metrics = {
        f"{PREFIX}train_seconds": seconds,
        f"{PREFIX}train_tracks": float(len(datamodule.train_set or [])),
        f"{PREFIX}val_tracks": float(len(datamodule.val_set or [])),
    }
    if datamodule.has_validation:
        for key, value in trainer.validate(module, datamodule=datamodule, verbose=False)[0].items():
            metrics[f"{PREFIX}{key.replace('/', '_')}"] = float(value)
    net = module.net.cpu().eval()
    npz_path = save_npz(net, output_dir / str(task.npz))
    onnx_path = (
        export_onnx(net, output_dir / str(task.onnx), int(task.opset), str(task.exporter))
        if task.get("onnx")
        else None
    )
    check = check_exports(net, npz_path, onnx_path, float(task.tolerance))
    metrics[f"{PREFIX}numpy_max_abs_diff"] = check.numpy_max_abs_diff
    if check.onnx_max_abs_diff is not None:
        metrics[f"{PREFIX}onnx_max_abs_diff"] = check.onnx_max_abs_diff
    print(_summary(metrics, datamodule, checkpoint, npz_path, onnx_path), flush=True)
    return metrics


def _summary(
    metrics: dict[str, float],
    datamodule: AFLinkDataModule,
    checkpoint: ModelCheckpoint,
    npz_path: Path,
    onnx_path: Path | None,
) -> str:
    def get(name: str) -> str:
        value = metrics.get(PREFIX + name)
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        "",
        (
            f"AFLink trained in {metrics[PREFIX + 'train_seconds']:.1f} s on "
            f"{int(metrics[PREFIX + 'train_tracks'])} ground-truth tracks of "
            f"{', '.join(datamodule.train_sequence_names)}"
        ),
        (
            f"  validation ({int(metrics[PREFIX + 'val_tracks'])} tracks of "
            f"{', '.join(datamodule.val_sequence_names) or 'none'}): accuracy {get('val_acc')}, "
            f"AUC {get('val_auc')}, at the link threshold precision {get('val_precision_at_link')}"
            f" recall {get('val_recall_at_link')}"
        ),
        f"  checkpoint: {checkpoint.last_model_path}",
        (
            f"  NumPy weights (postprocess=aflink): {npz_path} (max |diff| vs torch "
            f"{metrics[PREFIX + 'numpy_max_abs_diff']:.1e})"
        ),
    ]
    if onnx_path is not None:
        lines.append(
            f"  ONNX: {onnx_path} (max |diff| vs torch {metrics[PREFIX + 'onnx_max_abs_diff']:.1e})"
        )
    return "\n".join(lines)


__all__ = ["aflink"]
