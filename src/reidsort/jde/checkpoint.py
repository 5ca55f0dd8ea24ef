"""Load a FairMOT network from a ``task=jde`` Lightning checkpoint: :func:`load_jde_model`.

The checkpoint contract (``reidsort.jde.module.JDELitModule``): the network is the module's
``net`` attribute, so its state-dict keys start with ``net.``; ``hyper_parameters`` holds plain
types: ``net`` (the :class:`~reidsort.jde.model.JDENet` keyword arguments), ``input_hw``,
``mean``, ``std``, ``stride`` (and training settings, ignored here). A full checkpoint and a
weights-only one (``save_weights_only``: no optimiser state) load the same way.

:class:`JDEModelInfo` is what a deployed FairMOT needs besides its weights (input size,
normalisation, decoding); the ONNX export carries the same fields as metadata
(:meth:`JDEModelInfo.to_props` / :meth:`JDEModelInfo.from_props`). This module imports torch
only inside :func:`load_jde_model`, so the torch-free ONNX detector can use the dataclass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from reidsort.export.file_kind import (
    NUMPY_ARCHIVE,
    ONNX_MODEL,
    TORCH_CHECKPOINT,
    TORCHSCRIPT,
    sniff_model_file,
)
from reidsort.jde.targets import OUTPUT_STRIDE, SIZE_MODES
from reidsort.utils.errors import ReidsortError

if TYPE_CHECKING:
    from reidsort.jde.model import JDENet

#: state-dict prefix of the network inside a JDELitModule checkpoint (``self.net``)
NET_PREFIX = "net."
#: JDENet keyword arguments a checkpoint may set (``pretrained`` / ``weights`` are never
#: re-read: the state dict holds the trained weights)
NET_KWARGS = ("backbone", "num_classes", "embedding_dim", "head_channels", "size_mode")
IGNORED_NET_KWARGS = ("pretrained", "weights")
#: the input sides must be multiples of the backbones' total stride
INPUT_MULTIPLE = 32
#: ONNX metadata: ``kind`` tells a FairMOT export from a Re-ID embedder or a YOLO detector
KIND_KEY = "kind"
FAIRMOT_KIND = "fairmot"
METADATA_VERSION = "1"
#: what the exported graph's heatmap output holds (sigmoid applied in the graph)
HEATMAP_OUTPUT = "sigmoid"


@dataclass(frozen=True)
class JDEModelInfo:
    """What running a FairMOT network needs besides its weights."""

    input_hw: tuple[int, int]  # letterboxed network input (height, width), multiples of 32
    mean: tuple[float, float, float]  # input = (rgb / 255 - mean) / std
    std: tuple[float, float, float]
    stride: int  # output maps are (H / stride, W / stride)
    size_mode: str  # "wh" or "ltrb" (reidsort.jde.targets.SIZE_MODES)
    embedding_dim: int
    num_classes: int
    backbone: str

    def __post_init__(self) -> None:
        try:
            height, width = (int(v) for v in self.input_hw)
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)
        except (TypeError, ValueError):
            raise ReidsortError(f"JDE model info: input_hw must be [height, width] and mean/std "
                                f"3 numbers, got {self.input_hw!r}, {self.mean!r}, "
                                f"{self.std!r}") from None
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ReidsortError(f"JDE model info: mean/std must be 3 numbers (std > 0), got "
                                f"{list(mean)}, {list(std)}")
        if min(height, width) < INPUT_MULTIPLE or height % INPUT_MULTIPLE \
                or width % INPUT_MULTIPLE:
            raise ReidsortError(f"JDE model info: input_hw {[height, width]} must be positive "
                                f"multiples of {INPUT_MULTIPLE}")
        if self.size_mode not in SIZE_MODES:
            raise ReidsortError(f"JDE model info: size_mode must be one of "
                                f"{', '.join(SIZE_MODES)}, got {self.size_mode!r}")
        object.__setattr__(self, "input_hw", (height, width))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        for name in ("stride", "embedding_dim", "num_classes"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def to_props(self, **extra: str) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props`` (lists as JSON), plus ``extra``."""
        props = {
            KIND_KEY: FAIRMOT_KIND,
            "metadata_version": METADATA_VERSION,
            "input_hw": json.dumps(list(self.input_hw)),
            "input_layout": "NCHW",
            "channel_order": "RGB",
            "pixel_scale": "255.0",
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "stride": str(self.stride),
            "size_mode": self.size_mode,
            "embedding_dim": str(self.embedding_dim),
            "num_classes": str(self.num_classes),
            "backbone": self.backbone,
            "heatmap": HEATMAP_OUTPUT,
        }
        props.update({str(k): str(v) for k, v in extra.items()})
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "model") -> JDEModelInfo:
        """Parse :meth:`to_props` output; ReidsortError naming ``where`` when it is not a
        FairMOT export or a key is missing or unreadable."""
        if props.get(KIND_KEY) != FAIRMOT_KIND:
            raise ReidsortError(f"{where}: not a reidsort FairMOT export (metadata {KIND_KEY}="
                                f"{props.get(KIND_KEY)!r}, expected {FAIRMOT_KIND!r})")
        keys = ("input_hw", "mean", "std", "stride", "size_mode", "embedding_dim",
                "num_classes", "backbone")
        missing = [key for key in keys if key not in props]
        if missing:
            raise ReidsortError(f"{where}: FairMOT metadata lacks {', '.join(missing)}; "
                                "re-export it with task=export ckpt_path=<task=jde .ckpt>")
        try:
            return cls(input_hw=tuple(json.loads(props["input_hw"])),
                       mean=tuple(json.loads(props["mean"])), std=tuple(json.loads(props["std"])),
                       stride=int(props["stride"]), size_mode=props["size_mode"],
                       embedding_dim=int(props["embedding_dim"]),
                       num_classes=int(props["num_classes"]), backbone=props["backbone"])
        except (TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise ReidsortError(f"{where}: unreadable FairMOT metadata ({exc})") from None


def load_jde_model(path: str | Path) -> tuple[JDENet, JDEModelInfo]:
    """The :class:`~reidsort.jde.model.JDENet` of a ``task=jde`` checkpoint (CPU, eval mode)
    and its :class:`JDEModelInfo`. One-line ReidsortError for anything else (an ONNX export, a
    Re-ID checkpoint, a bare state dict, missing or misfit keys)."""
    path = Path(path)
    checkpoint = read_jde_checkpoint(path)
    return jde_model_from_checkpoint(checkpoint, path)


def read_jde_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict of a ``task=jde`` ``.ckpt`` (checked with :func:`check_jde_checkpoint`)."""
    if not path.is_file():
        raise ReidsortError(f"FairMOT checkpoint not found: {path}")
    kind = sniff_model_file(path)
    if kind == ONNX_MODEL:
        raise ReidsortError(
            f"{path}: is an ONNX model, not a task=jde checkpoint; to track with it pass it as "
            f"detector=fairmot detector.ckpt_path={path} (which takes a .ckpt or its .onnx "
            "export)")
    if kind == TORCHSCRIPT:
        raise ReidsortError(f"{path}: is a TorchScript archive (a task=export of a Re-ID model), "
                            "not a task=jde checkpoint")
    if kind == NUMPY_ARCHIVE:
        raise ReidsortError(f"{path}: is a NumPy .npz archive, not a task=jde checkpoint")
    if kind != TORCH_CHECKPOINT:
        raise ReidsortError(f"{path}: not a PyTorch checkpoint; pass the .ckpt written by "
                            "task=jde (checkpoints/last.ckpt of its run)")
    from reidsort.reid.backbones.weights import read_checkpoint

    try:
        checkpoint = read_checkpoint(path)
    except ValueError as exc:
        raise ReidsortError(str(exc).splitlines()[0]) from None
    check_jde_checkpoint(checkpoint, path)
    return dict(checkpoint)


def is_jde_checkpoint(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint dict is a ``task=jde`` one (``hyper_parameters['net']`` and
    ``net.``-prefixed weights)."""
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"),
                                                             Mapping):
        return False
    hparams = _plain(checkpoint.get("hyper_parameters") or {})
    return (isinstance(hparams, Mapping) and isinstance(hparams.get("net"), Mapping)
            and any(str(k).startswith(NET_PREFIX) for k in checkpoint["state_dict"]))


def check_jde_checkpoint(checkpoint: Any, path: Path) -> None:
    """ReidsortError saying what ``checkpoint`` is when it is not a ``task=jde`` one."""
    if is_jde_checkpoint(checkpoint):
        return
    if not isinstance(checkpoint, Mapping):
        raise ReidsortError(f"{path}: not a Lightning checkpoint (a {type(checkpoint).__name__}, "
                            "no 'state_dict')")
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        if any(str(k).startswith(NET_PREFIX) for k in checkpoint):
            raise ReidsortError(f"{path}: a bare state dict, without the hyper-parameters that "
                                "describe the network; pass the .ckpt written by task=jde")
        raise ReidsortError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    hparams = _plain(checkpoint.get("hyper_parameters") or {})
    hparams = hparams if isinstance(hparams, Mapping) else {}
    reid = (isinstance(hparams.get("model"), Mapping)
            or any(str(k).startswith(("backbone.", "head.")) for k in state))
    if reid and not any(str(k).startswith(NET_PREFIX) for k in state):
        raise ReidsortError(
            f"{path}: is a Re-ID checkpoint (task=train), not a FairMOT one (task=jde); use it "
            f"as embedder=torch embedder.ckpt_path={path} (or task=export it for embedder=onnx)")
    if not isinstance(hparams.get("net"), Mapping):
        raise ReidsortError(f"{path}: no hyper_parameters['net'] (the JDENet arguments); not a "
                            "task=jde checkpoint")
    raise ReidsortError(f"{path}: no '{NET_PREFIX}*' weights in its state dict; not a task=jde "
                        "checkpoint")


def info_from_hparams(hparams: Mapping[str, Any], where: str = "checkpoint") -> JDEModelInfo:
    """:class:`JDEModelInfo` from a JDELitModule's hyper-parameters."""
    hparams = _plain(hparams)
    net = hparams.get("net")
    if not isinstance(net, Mapping):
        raise ReidsortError(f"{where}: no hyper_parameters['net'] (the JDENet arguments)")
    if hparams.get("input_hw") is None:
        raise ReidsortError(f"{where}: no hyper_parameters['input_hw'] (the training input "
                            "[height, width])")
    from_net = {"size_mode": "wh", "embedding_dim": 128, "num_classes": 1,
                "backbone": "resnet18"}  # JDENet's defaults for arguments left out
    from_net.update({k: net[k] for k in from_net if net.get(k) is not None})
    try:
        return JDEModelInfo(input_hw=tuple(hparams["input_hw"]),
                            mean=tuple(hparams.get("mean") or IMAGENET_MEAN),
                            std=tuple(hparams.get("std") or IMAGENET_STD),
                            stride=int(hparams.get("stride") or OUTPUT_STRIDE), **from_net)
    except ReidsortError as exc:
        raise ReidsortError(f"{where}: {exc}") from None
    except TypeError:
        raise ReidsortError(f"{where}: hyper_parameters input_hw/mean/std must be lists, got "
                            f"{hparams.get('input_hw')!r}, {hparams.get('mean')!r}, "
                            f"{hparams.get('std')!r}") from None


def jde_model_from_checkpoint(checkpoint: Mapping[str, Any], path: Path
                              ) -> tuple[JDENet, JDEModelInfo]:
    """The network and info of an already loaded ``task=jde`` checkpoint dict."""
    from reidsort.export.model import _load_exactly
    from reidsort.jde.model import JDENet

    check_jde_checkpoint(checkpoint, path)
    hparams = _plain(checkpoint.get("hyper_parameters") or {})
    info = info_from_hparams(hparams, str(path))
    net_kwargs = dict(hparams["net"])
    unknown = sorted(set(net_kwargs) - set(NET_KWARGS) - set(IGNORED_NET_KWARGS))
    if unknown:
        raise ReidsortError(f"{path}: hyper_parameters['net'] has arguments JDENet does not take: "
                            f"{', '.join(unknown)} (known: {', '.join(NET_KWARGS)})")
    kwargs = {k: v for k, v in net_kwargs.items() if k in NET_KWARGS}
    try:
        net = JDENet(**kwargs, pretrained=None, weights=None)
    except ReidsortError as exc:
        raise ReidsortError(f"{path}: {exc}") from None
    state = {key[len(NET_PREFIX):]: value for key, value in checkpoint["state_dict"].items()
             if key.startswith(NET_PREFIX)}
    _load_exactly(net, state, path)
    return net.eval(), info


def _plain(value: Any) -> Any:
    """OmegaConf containers (a module that saved a DictConfig) as plain dicts and lists."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


__all__ = ["FAIRMOT_KIND", "KIND_KEY", "NET_PREFIX", "JDEModelInfo", "check_jde_checkpoint",
           "info_from_hparams", "is_jde_checkpoint", "jde_model_from_checkpoint",
           "load_jde_model", "read_jde_checkpoint"]
