"""``task=export``: a trained Re-ID model -> ONNX or TorchScript file, verified against PyTorch."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

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
