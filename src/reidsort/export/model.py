"""The inference network (backbone [+ BNNeck] + L2 normalisation) and where it is loaded from.

What gets exported, and what the torch embedder runs, is :class:`EmbeddingNet`: images in, the
retrieval feature out, L2-normalised inside the network so every runtime returns unit vectors.
The identity classifier is not part of it (it only scores training identities).

Sources:

* a Lightning checkpoint of ``task=train`` (:func:`load_checkpoint_net`): backbone and BNNeck
  from its state dict, the architecture from its hyper-parameters, the input size from the
  training config written beside it (``checkpoints/config.yaml``);
* a backbone config with a local weights file (torchreid OSNet, DeepSORT ``ckpt.t7``, ...;
  :func:`load_backbone_net`): the pooled backbone feature.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

import reidsort
from reidsort.export.file_kind import ONNX_MODEL, TORCHSCRIPT, sniff_model_file
from reidsort.export.metadata import HASH_HEX_DIGITS, ModelMetadata, config_sha256
from reidsort.reid.backbones import BACKBONE_NAMES, build_backbone
from reidsort.reid.backbones.weights import read_checkpoint
from reidsort.reid.training_data import TRAINING_DATA_KEY
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: Module that holds the backbone builders named in configs (``_target_``).
BACKBONE_MODULE = "reidsort.reid.backbones"
#: The training config ``task=train`` writes next to its checkpoints.
TRAINING_CONFIG_NAME = "config.yaml"
#: Same epsilon as the training-time normalisation (reidsort.reid.head.l2_normalize).
L2_EPS = 1e-12
#: State-dict prefixes of the inference network inside a ReIDModule checkpoint.
BACKBONE_PREFIX = "backbone."
NECK_PREFIX = "head.bn."
#: How many keys an error lists per kind.
MAX_LISTED_KEYS = 5


class EmbeddingNet(nn.Module):
    """``images (N, 3, H, W) -> (N, D)`` L2-normalised features: backbone [-> BNNeck BN]."""

    def __init__(self, backbone: nn.Module, neck: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck if neck is not None else nn.Identity()

    @property
    def feature_dim(self) -> int:
        return int(self.backbone.feature_dim)

    def forward(self, images: Tensor) -> Tensor:
        features = self.neck(self.backbone(images))
        return features / features.norm(p=2, dim=1, keepdim=True).clamp_min(L2_EPS)


@dataclass
class LoadedNet:
    """An :class:`EmbeddingNet` in eval mode and the metadata an export of it carries."""

    net: EmbeddingNet
    metadata: ModelMetadata


def embedding_net_from_module(module: nn.Module) -> EmbeddingNet:
    """The inference network of a ReIDModule (shares its parameters), in eval mode."""
    hparams = getattr(module, "hparams", None) or {}
    neck = module.head.bn if hparams.get("eval_feature", "after_bn") == "after_bn" else None
    return EmbeddingNet(module.backbone, neck).eval()


def backbone_name(target: str) -> str:
    """``reidsort.reid.backbones.osnet_x0_25`` -> ``osnet_x0_25``; ReidsortError if unknown."""
    module_path, _, name = str(target).rpartition(".")
    if not module_path.startswith(BACKBONE_MODULE) or name not in BACKBONE_NAMES:
        raise ReidsortError(
            f"unknown architecture {target!r} (known: {', '.join(BACKBONE_NAMES)})"
        )
    return name


def load_checkpoint_net(
    ckpt_path: str | Path, image_size: Sequence[int] | None = None
) -> LoadedNet:
    """The inference network of a ``task=train`` checkpoint, with its export metadata.

    ``image_size`` (height, width) overrides the training config's ``data.image_size``; it is
    required when the checkpoint has no ``config.yaml`` beside it.
    """
    path = Path(ckpt_path)
    checkpoint = _read_lightning_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    model_cfg = hparams.get("model") if isinstance(hparams, Mapping) else None
    if not isinstance(model_cfg, Mapping) or not isinstance(model_cfg.get("backbone"), Mapping):
        raise ReidsortError(f"{path}: not a reidsort checkpoint (no model hyper-parameters)")
    try:
        name = backbone_name(model_cfg["backbone"].get("_target_", ""))
    except ReidsortError as exc:
        raise ReidsortError(f"{path}: {exc}") from None

    backbone = _build_backbone(name, model_cfg["backbone"], path)
    eval_feature = hparams.get("eval_feature", "after_bn")
    neck = nn.BatchNorm1d(int(backbone.feature_dim)) if eval_feature == "after_bn" else None
    net = EmbeddingNet(backbone, neck)
    state = _inference_state(checkpoint["state_dict"], eval_feature == "after_bn")
    _load_exactly(net, state, path)
    net.eval()

    # the config.yaml beside it, else the data config recorded inside (a checkpoint moved alone)
    training_cfg = read_training_config(path) or recorded_training_config(checkpoint)
    size = _choose_image_size(path, training_cfg, image_size)
    metadata = ModelMetadata(
        input_size=size,
        feature_dim=net.feature_dim,
        architecture=name,
        feature=str(eval_feature),
        reidsort_version=reidsort.__version__,
        training_config_sha256=config_sha256(training_cfg if training_cfg is not None
                                             else _plain(hparams)),
        source=path.name,
        extra={"backbone_config": _json_backbone(model_cfg["backbone"])},
    )
    return LoadedNet(net, metadata)


def load_backbone_net(backbone_cfg: Mapping[str, Any], image_size: Sequence[int]) -> LoadedNet:
    """A backbone from its config (``model.backbone``, with ``weights`` = a local file).

    For weights trained elsewhere (torchreid OSNet, DeepSORT ``ckpt.t7``): the pooled backbone
    feature, L2-normalised. Shape mismatches are one-line errors listing the keys.
    """
    cfg = _plain(backbone_cfg)
    name = backbone_name(cfg.get("_target_", ""))
    weights = cfg.get("weights")
    # the builder itself (not hydra.utils.instantiate), so a missing or misfit weights file is
    # its own one-line error instead of Hydra's wrapped InstantiationException
    backbone = build_backbone(name, **{k: v for k, v in cfg.items() if k != "_target_"})
    net = EmbeddingNet(backbone).eval()
    weights_hash = _file_sha256(Path(weights)) if weights else "random-init"
    metadata = ModelMetadata(
        input_size=_check_size(image_size, "task.image_size"),
        feature_dim=net.feature_dim,
        architecture=name,
        feature="backbone",
        reidsort_version=reidsort.__version__,
        training_config_sha256=config_sha256({"backbone": cfg, "weights_sha256": weights_hash}),
        source=Path(weights).name if weights else "",
        extra={"backbone_config": _json_backbone(cfg)},
    )
    return LoadedNet(net, metadata)


def resolve_source(
    source: str | Path | nn.Module | LoadedNet,
    image_size: Sequence[int] | None = None,
    metadata: ModelMetadata | None = None,
) -> LoadedNet:
    """What to export: a checkpoint path, a LoadedNet, a ReIDModule, an EmbeddingNet or a bare
    backbone (``forward(images) -> (N, D)``). Modules need ``image_size`` unless ``metadata``
    is given; the metadata then describes them with the project's preprocessing defaults.
    """
    if isinstance(source, LoadedNet):
        return source
    if isinstance(source, (str, Path)):
        return load_checkpoint_net(source, image_size)
    if not isinstance(source, nn.Module):
        raise TypeError(f"cannot export a {type(source).__name__}")
    if isinstance(source, EmbeddingNet):
        net = source.eval()
    elif hasattr(source, "backbone") and hasattr(source, "head"):
        net = embedding_net_from_module(source)
    else:
        net = EmbeddingNet(source).eval()
    if metadata is None:
        if image_size is None:
            raise ReidsortError("image_size=(height, width) is needed to export a module")
        size = _check_size(image_size, "image_size")
        metadata = ModelMetadata(
            input_size=size,
            feature_dim=_probe_feature_dim(net, size),
            architecture=type(getattr(net, "backbone", net)).__name__,
            reidsort_version=reidsort.__version__,
        )
    return LoadedNet(net, metadata)


def _probe_feature_dim(net: nn.Module, size: tuple[int, int]) -> int:
    with torch.no_grad():
        return int(net(torch.zeros(1, 3, *size)).shape[1])


def _read_lightning_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict; one-line errors for a missing, unreadable or non-Lightning file.

    Read like backbone weights files (``weights_only`` with plain data and OmegaConf configs
    allowed), so checkpoints whose hyper-parameters hold OmegaConf objects load too.
    """
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    kind = sniff_model_file(path)
    if kind in (ONNX_MODEL, TORCHSCRIPT):
        # an export, not what exports are made from
        raise ReidsortError(f"{path}: is an exported {kind}, not a task=train checkpoint; pass "
                            "the .ckpt it was exported from (checkpoints/ of the training run)")
    checkpoint = read_checkpoint(path)  # ValueError naming the file and the unpickler's reason
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"),
                                                             Mapping):
        raise ReidsortError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    return dict(checkpoint)


def read_training_config(ckpt_path: Path) -> dict[str, Any] | None:
    """The resolved training config saved beside the checkpoint, or None if there is none."""
    config_path = ckpt_path.parent / TRAINING_CONFIG_NAME
    if not config_path.is_file():
        return None
    try:
        loaded = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)
    except Exception as exc:  # noqa: BLE001 - any YAML problem is a bad file
        raise ReidsortError(f"{config_path}: unreadable training config ({exc})") from exc
    if not isinstance(loaded, dict):
        raise ReidsortError(f"{config_path}: training config is not a mapping")
    return loaded


def recorded_training_config(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"data": <data config>}`` from the record ``task=train`` keeps inside its checkpoints
    (:mod:`reidsort.reid.training_data`), or None for checkpoints without one."""
    record = checkpoint.get(TRAINING_DATA_KEY)
    if isinstance(record, Mapping) and isinstance(record.get("config"), Mapping):
        return {"data": dict(record["config"])}
    return None


def _choose_image_size(
    path: Path, training_cfg: dict[str, Any] | None, override: Sequence[int] | None
) -> tuple[int, int]:
    trained = None
    if training_cfg is not None:
        trained = (training_cfg.get("data") or {}).get("image_size")
    if override is not None:
        size = _check_size(override, "task.image_size")
        if trained is not None and tuple(int(v) for v in trained) != size:
            log.warning("exporting at %s, but the model was trained at %s", list(size),
                        list(trained))
        return size
    if trained is None:
        raise ReidsortError(
            f"{path}: no training config ({TRAINING_CONFIG_NAME}) beside the checkpoint to read "
            "the input size from; pass task.image_size=[height,width]"
        )
    return _check_size(trained, f"{path.parent / TRAINING_CONFIG_NAME}: data.image_size")


def _check_size(size: Sequence[int] | None, what: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ReidsortError(f"{what} must be [height, width], got {size!r}") from None
    if height < 1 or width < 1:
        raise ReidsortError(f"{what} must be positive, got {[height, width]}")
    return height, width


def _build_backbone(name: str, backbone_cfg: Mapping[str, Any], path: Path) -> nn.Module:
    options = {k: v for k, v in _plain(backbone_cfg).items() if k != "_target_"}
    # the checkpoint's state dict holds the trained weights
    options.update({"weights": None, "pretrained": None} if "pretrained" in options
                   else {"weights": None})
    try:
        return build_backbone(name, **options)
    except (TypeError, ValueError) as exc:  # builder arguments this version does not know
        raise ReidsortError(f"{path}: cannot build its {name} backbone {options}: {exc}") from exc


def _inference_state(state_dict: Mapping[str, Tensor], with_neck: bool) -> dict[str, Tensor]:
    """The checkpoint entries of the inference network, renamed to EmbeddingNet's keys."""
    state = {key: value for key, value in state_dict.items() if key.startswith(BACKBONE_PREFIX)}
    if with_neck:
        state.update({
            "neck." + key[len(NECK_PREFIX):]: value
            for key, value in state_dict.items() if key.startswith(NECK_PREFIX)
        })
    return state


def _load_exactly(net: nn.Module, state: Mapping[str, Tensor], path: Path) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key} {list(state[key].shape)} vs {list(expected[key].shape)}"
        for key in sorted(set(state) & set(expected))
        if state[key].shape != expected[key].shape
    ]
    problems = [f"{len(keys)} {kind} ({_listing(keys)})"
                for kind, keys in (("missing", missing), ("unexpected", unexpected),
                                   ("shape-mismatched", mismatched)) if keys]
    if problems:
        raise ReidsortError(f"{path}: weights do not fit its architecture: {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)


def _listing(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - MAX_LISTED_KEYS} more)" if len(keys) > MAX_LISTED_KEYS else ""
    return ", ".join(keys[:MAX_LISTED_KEYS]) + more


def _plain(cfg: Any) -> Any:
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return copy.deepcopy(cfg)


def _json_backbone(backbone_cfg: Mapping[str, Any]) -> str:
    options = {k: v for k, v in _plain(backbone_cfg).items() if k not in ("_target_", "weights")}
    return json.dumps(options, sort_keys=True, default=str)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:HASH_HEX_DIGITS]


def to_device(net: nn.Module, device: str) -> nn.Module:
    """``net`` on ``device`` ("auto": CUDA when available, else CPU)."""
    chosen = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    return net.to(chosen)
