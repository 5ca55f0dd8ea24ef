"""``task=generate``: N images from a ``task=gan`` checkpoint into ``<run>/generated/``.

Seeded (batch ``i`` samples with a seed derived from ``(task.seed, i)``: the same seed gives
byte-identical files on the same device), uint8 PNG (default) or JPEG, each image ``H`` tall and
``W`` wide as the GAN was trained. Every file is written to a temporary name and renamed, and
``generated.json`` (checkpoint, seed, count, size, labels of a conditional GAN) is written
last: a folder with a manifest is complete. The folder is flat and holds only the images and
the manifest, which is what ``data.generated_root=`` reads for LSRO training.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from reidsort.export.file_kind import ONNX_MODEL, TORCHSCRIPT, sniff_model_file
from reidsort.generative.callbacks import GAN_DATA_KEY
from reidsort.generative.images import (
    DEFAULT_JPEG_QUALITY,
    ImageFormat,
    conditioning,
    sample_in_batches,
    to_uint8,
    write_image,
)
from reidsort.reid.checkpoints import load_checkpoint
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain
from reidsort.utils.io import atomic_write_text

log = logging.getLogger(__name__)

GENERATED_DIR = "generated"
MANIFEST_NAME = "generated.json"
#: digits of the running number in file names (more when N needs them)
MIN_INDEX_DIGITS = 6
FILE_PREFIX = "generated_"


def describe_checkpoint(hparams: dict[str, Any]) -> str | None:
    """What a Lightning checkpoint that is not a GAN is, from its hyper-parameters."""
    if isinstance(hparams.get("model"), dict) and "backbone" in hparams["model"]:
        return "a task=train Re-ID checkpoint"
    if "net" in hparams and "num_ids" in hparams:
        return "a task=jde (FairMOT) checkpoint"
    return None


def load_gan(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The GANModule of a ``task=gan`` checkpoint (eval mode) and the checkpoint's data record;
    any other file is a one-line error saying what it is."""
    path = Path(path)
    kind = sniff_model_file(path)
    if kind in (ONNX_MODEL, TORCHSCRIPT):
        raise ReidsortError(f"ckpt_path={path}: is a {kind}, not a task=gan checkpoint")
    checkpoint = load_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    if "kind" not in hparams or "image_size" not in hparams:
        what = describe_checkpoint(hparams) or "a Lightning checkpoint without GAN " \
                                                "hyper-parameters"
        raise ReidsortError(f"ckpt_path={path}: is {what}, not a task=gan checkpoint")
    from reidsort.generative.module import GANModule

    module = GANModule.load_from_checkpoint(str(path), map_location=device)
    return module.eval(), dict(checkpoint.get(GAN_DATA_KEY) or {})


def _device(choice: str) -> str:
    if choice in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(choice)


def generate(cfg: DictConfig) -> dict[str, float]:
    started = time.perf_counter()
    task = cfg.task
    count = int(task.num_images)
    if count <= 0:
        raise ValueError(f"task.num_images={task.num_images}: must be > 0")
    if int(task.batch_size) < 1:
        raise ValueError(f"task.batch_size={task.batch_size}: must be >= 1")
    if not cfg.get("ckpt_path"):
        raise ReidsortError("ckpt_path is not set: pass ckpt_path=<a task=gan checkpoint>")
    image_format = ImageFormat.parse(task.format)
    jpeg_quality = int(task.get("jpeg_quality") or DEFAULT_JPEG_QUALITY)
    seed = int(task.seed)
    ckpt_path = Path(str(cfg.ckpt_path)).resolve()
    module, data_record = load_gan(ckpt_path, _device(task.get("device", "auto")))
    classes = conditioning(module)
    labels = to_plain(task.get("labels"))
    if labels is not None and not classes:
        raise ValueError(f"task.labels={labels}: {ckpt_path.name} is an unconditional GAN")

    folder = Path(cfg.paths.output_dir) / GENERATED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(MIN_INDEX_DIGITS, len(str(count - 1)))
    files: list[str] = []
    written_labels: list[int] = []
    size_hw: tuple[int, int] | None = None
    for batch in sample_in_batches(module, count, int(task.batch_size), seed,
                                   use_ema=bool(task.use_ema), labels=labels):
        arrays = to_uint8(batch.images)
        size_hw = (int(arrays.shape[1]), int(arrays.shape[2]))
        for offset, array in enumerate(arrays):
            name = f"{FILE_PREFIX}{batch.start + offset:0{digits}d}.{image_format.value}"
            write_image(folder / name, array, image_format, jpeg_quality)
            files.append(name)
        if batch.labels is not None:
            written_labels.extend(int(v) for v in batch.labels)
    assert size_hw is not None
    hparams = dict(module.hparams)
    manifest: dict[str, Any] = {
        "ckpt_path": str(ckpt_path),
        "kind": str(hparams.get("kind")),
        "seed": seed,
        "count": count,
        "batch_size": int(task.batch_size),
        "use_ema": bool(task.use_ema),
        "format": image_format.value,
        "image_size": {"height": size_hw[0], "width": size_hw[1]},
        "files": files,
    }
    if image_format is ImageFormat.JPEG:
        manifest["jpeg_quality"] = jpeg_quality
    if classes:
        manifest["num_classes"] = classes
        manifest["labels"] = written_labels
        pids = data_record.get("pid_of_label")
        if pids and len(pids) == classes:
            manifest["pids"] = [int(pids[label]) for label in written_labels]
    if data_record:
        manifest["training_data"] = {k: v for k, v in data_record.items()
                                     if k != "pid_of_label"}
    # last: a folder with its manifest is complete
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    seconds = time.perf_counter() - started
    log.info("wrote %d %s images of %dx%d (height x width) to %s in %.1f s", count,
             image_format.value.upper(), size_hw[0], size_hw[1], folder, seconds)
    print(f"\n{count} generated images ({size_hw[0]}x{size_hw[1]}, {image_format.value}) in "
          f"{folder}\nfor LSRO training: python main.py data.generated_root={folder}",
          flush=True)
    return {"generate/images": float(count), "generate/height": float(size_hw[0]),
            "generate/width": float(size_hw[1]), "time/seconds": seconds}


__all__ = ["describe_checkpoint", "generate", "load_gan"]
