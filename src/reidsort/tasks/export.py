"""``task=export``: a trained Re-ID model -> ONNX or TorchScript file, verified against PyTorch;
a FairMOT checkpoint (``task=jde``) -> ONNX (the joint model, :mod:`reidsort.jde.export`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from reidsort.export.file_kind import TORCH_CHECKPOINT, sniff_model_file
from reidsort.export.model import LoadedNet, load_backbone_net, load_checkpoint_net
from reidsort.export.onnx import export_onnx_verified
from reidsort.export.result import FORMAT_EXTENSIONS, ExportResult
from reidsort.export.torchscript import export_torchscript_verified
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain

log = logging.getLogger(__name__)

BYTES_PER_MB = 1024 * 1024


def export(cfg: DictConfig) -> dict[str, float]:
    task = cfg.task
    fmt = str(task.format).lower()
    if fmt not in FORMAT_EXTENSIONS:
        raise ReidsortError(f"format={task.format!r}: expected one of {sorted(FORMAT_EXTENSIONS)}")
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))

    jde_checkpoint = _jde_checkpoint(cfg.get("ckpt_path"))
    if jde_checkpoint is not None:
        return _export_jde(cfg, jde_checkpoint, fmt)
    loaded = _load_source(cfg)
    meta = loaded.metadata
    name = task.get("output") or f"{meta.architecture}_{meta.input_size[0]}x{meta.input_size[1]}"
    out_path = Path(cfg.paths.output_dir) / name
    if not out_path.suffix:
        out_path = out_path.with_suffix(FORMAT_EXTENSIONS[fmt])
    verify = dict(verify=bool(task.verify), min_cosine=float(task.min_cosine),
                  num_crops=int(task.verify_crops), seed=int(task.verify_seed))
    if fmt == "onnx":
        result = export_onnx_verified(loaded, out_path, opset=int(task.opset),
                                      exporter=str(task.exporter), simplify=bool(task.simplify),
                                      **verify)
    else:
        result = export_torchscript_verified(loaded, out_path, **verify)
    print(_summary(result), flush=True)
    metrics = {"export/seconds": result.seconds,
               "export/size_mb": result.size_bytes / BYTES_PER_MB}
    if result.verification is not None:
        metrics["export/max_abs_diff"] = result.verification.max_abs_diff
        metrics["export/min_cosine"] = result.verification.min_cosine
    return metrics


def _jde_checkpoint(ckpt_path: str | None) -> dict[str, Any] | None:
    """The checkpoint dict when ``ckpt_path`` is a ``task=jde`` checkpoint, else None (the
    Re-ID loader then reads the file and reports what is wrong with it)."""
    if not ckpt_path or not Path(ckpt_path).is_file() \
            or sniff_model_file(ckpt_path) != TORCH_CHECKPOINT:
        return None
    from reidsort.jde.checkpoint import is_jde_checkpoint
    from reidsort.reid.backbones.weights import read_checkpoint

    try:
        checkpoint = read_checkpoint(Path(ckpt_path))
    except ValueError:
        return None
    return dict(checkpoint) if is_jde_checkpoint(checkpoint) else None


def _export_jde(cfg: DictConfig, checkpoint: dict[str, Any], fmt: str) -> dict[str, float]:
    """The FairMOT network of a ``task=jde`` checkpoint -> ONNX (boxes and embeddings in one
    graph), verified against PyTorch on random images."""
    from reidsort.jde.checkpoint import jde_model_from_checkpoint
    from reidsort.jde.export import export_jde_onnx

    task, path = cfg.task, Path(cfg.ckpt_path)
    if fmt != "onnx":
        raise ReidsortError(f"{path}: a FairMOT (task=jde) checkpoint exports to ONNX only; "
                            f"use format=onnx, or track with the .ckpt itself")
    net, info = jde_model_from_checkpoint(checkpoint, path)
    size = to_plain(task.get("image_size")) or info.input_hw
    name = task.get("output") or f"fairmot_{info.backbone}_{size[0]}x{size[1]}"
    out_path = Path(cfg.paths.output_dir) / name
    if not out_path.suffix:
        out_path = out_path.with_suffix(FORMAT_EXTENSIONS[fmt])
    result = export_jde_onnx((net, info), out_path, opset=int(task.opset),
                             exporter=str(task.exporter), simplify=bool(task.simplify),
                             verify=bool(task.verify), min_cosine=float(task.min_cosine),
                             seed=int(task.verify_seed), input_hw=size, source_name=path.name)
    info = result.info
    check = result.verification.summary() if result.verification else "not verified"
    print("\n".join([
        "",
        (f"exported FairMOT {info.backbone} (input {info.input_hw[0]}x{info.input_hw[1]} RGB, "
         f"{info.embedding_dim}-d embeddings, {info.num_classes} class(es), size "
         f"{info.size_mode}) to onnx in {result.seconds:.1f} s"),
        f"  vs PyTorch: {check}",
        f"  size: {result.size_bytes / BYTES_PER_MB:.2f} MB",
        f"  {result.path}",
        (f"  track with it: python main.py task=track detector=fairmot "
         f"detector.ckpt_path={result.path}"),
    ]), flush=True)
    metrics = {"export/seconds": result.seconds,
               "export/size_mb": result.size_bytes / BYTES_PER_MB}
    if result.verification is not None:
        metrics["export/max_abs_diff"] = result.verification.max_abs_diff
        metrics["export/min_cosine"] = result.verification.min_cosine
    return metrics


def _load_source(cfg: DictConfig) -> LoadedNet:
    image_size = to_plain(cfg.task.get("image_size"))
    if cfg.get("ckpt_path"):
        return load_checkpoint_net(cfg.ckpt_path, image_size)
    backbone = cfg.get("model", {}).get("backbone") if cfg.get("model") else None
    if backbone is not None and backbone.get("weights"):
        if image_size is None:
            raise ReidsortError(
                "task.image_size=[height,width] is required to export model.backbone.weights "
                "(there is no training config to read it from)"
            )
        return load_backbone_net(to_plain(backbone), image_size)
    raise ReidsortError(
        "nothing to export: pass ckpt_path=<a task=train checkpoint> (or "
        "model.backbone.weights=<file> with task.image_size=[h,w] for weights trained elsewhere)"
    )


def _summary(result: ExportResult) -> str:
    meta = result.metadata
    check = result.verification.summary() if result.verification else "not verified"
    lines = [
        "",
        f"exported {meta.architecture} ({meta.feature_dim}-d, input {meta.input_size[0]}x"
        f"{meta.input_size[1]} {meta.channel_order}) to {result.format} in {result.seconds:.1f} s",
        f"  vs PyTorch: {check}",
        f"  size: {result.size_bytes / BYTES_PER_MB:.2f} MB",
        f"  {result.path}",
    ]
    return "\n".join(lines)


__all__ = ["export"]
