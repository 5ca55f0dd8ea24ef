"""What a model was trained on, recorded inside its checkpoints.

``task=train`` puts the resolved data config, the data group's choice, the dataset root and the
split sizes into every checkpoint it writes (full, last or weights-only) under
:data:`TRAINING_DATA_KEY`, as plain types (Lightning 2.6 and ``torch.load`` read checkpoints
``weights_only``). ``task=eval`` evaluates that data unless ``data=`` is given, and warns when
what it evaluates differs from it. Checkpoints from before the record fall back to the resolved
``config.yaml`` that training writes beside its checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

#: checkpoint key of the record (a top-level key, not a hyper-parameter: ReIDModule(**hparams)
#: rebuilds the model from the hyper-parameters and must not receive it)
TRAINING_DATA_KEY = "reidsort_training_data"
#: the resolved training config ``task=train`` writes next to its checkpoints
TRAINING_CONFIG_NAME = "config.yaml"


@dataclass(frozen=True)
class TrainingData:
    """The data a checkpoint was trained on."""

    config: dict[str, Any]
    """the resolved data config (instantiable: it has its ``_target_``)"""
    origin: str
    """where the record was read from: the checkpoint, or the config.yaml beside it"""
    choice: str | None = None
    """the data group option training used (``synthetic``, ``market1501``, ...), if known"""
    root: str | None = None
    """the dataset root training read (synthetic: its generated folder), if known"""
    sizes: dict[str, int] = field(default_factory=dict)
    """the split sizes of training's data summary (``test_query_images``, ...), if known"""

    @property
    def format(self) -> str:
        return str(self.config.get("format", "?"))

    def describe(self) -> str:
        choice = f"data={self.choice}" if self.choice else f"format {self.format}"
        return f"{choice} ({self.root or self.config.get('root', '?')})"


def training_data_record(data_cfg: Any, choice: str | None, root: str | Path,
                         sizes: Mapping[str, int]) -> dict[str, Any]:
    """The plain-typed record ``task=train`` stores in its checkpoints."""
    config = OmegaConf.to_container(data_cfg, resolve=True) if OmegaConf.is_config(data_cfg) \
        else dict(data_cfg)
    return {"config": config, "choice": choice, "root": str(root),
            "sizes": {str(k): int(v) for k, v in sizes.items()}}


def read_training_data(checkpoint: Mapping[str, Any], ckpt_path: str | Path) -> TrainingData | None:
    """The record inside ``checkpoint``; else the data of the training config beside it; else
    None (an older or a hand-made checkpoint)."""
    record = checkpoint.get(TRAINING_DATA_KEY)
    if isinstance(record, Mapping) and isinstance(record.get("config"), Mapping):
        return TrainingData(config=dict(record["config"]), origin=f"recorded in {ckpt_path}",
                            choice=record.get("choice"), root=record.get("root"),
                            sizes=dict(record.get("sizes") or {}))
    config_path = Path(ckpt_path).parent / TRAINING_CONFIG_NAME
    if not config_path.is_file():
        return None
    try:
        data = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True).get("data")
    except Exception:  # noqa: BLE001 - an unreadable file is as good as none here
        return None
    # a partial config (only the image size, as some tools write) cannot be evaluated
    if not isinstance(data, dict) or "_target_" not in data:
        return None
    return TrainingData(config=data, origin=f"{config_path}")
