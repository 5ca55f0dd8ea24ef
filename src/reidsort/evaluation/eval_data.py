"""Which data ``task=eval`` evaluates, and how it compares with what the model was trained on.

* ``data=<option>`` on the command line (or an ``experiment=`` that sets the data group): that
  data config, as composed.
* otherwise, for a checkpoint: the data config it was trained on (recorded inside it by
  ``task=train``, or the ``config.yaml`` beside it), with the command line's ``data.<key>=``
  overrides on top (``data.num_workers=0``, ``data.root=<where it is here>``, ...).
* otherwise (an export, an older hand-made checkpoint): the composed ``data`` config (the
  default is the synthetic data), with a warning that says so.

What is evaluated is compared with the record: other data (cross-domain evaluation), or other
query / gallery sizes than training saw for the same data, are warnings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from reidsort.evaluation.reid_data import ALL, EvalSplit
from reidsort.reid.training_data import TrainingData
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

DATA_GROUP = "data"
#: data formats generated on first use (their root need not exist before)
GENERATED_FORMATS = ("synthetic",)


@dataclass(frozen=True)
class CommandLineData:
    """What the command line said about the data."""

    chose_group: bool
    """``data=<option>`` given (or an experiment set the group away from the default)"""
    set_keys: tuple[str, ...] = ()
    """``data.<key>=...`` overrides (full keys, ``data.`` included)"""
    deleted_keys: tuple[str, ...] = ()
    """``~data.<key>`` overrides"""


@dataclass(frozen=True)
class EvalData:
    config: DictConfig
    """the data config to evaluate"""
    trained: TrainingData | None
    """what the model was trained on, when known"""
    origin: str
    """one line: why this data config"""


@lru_cache(maxsize=4)
def _primary_default(config_name: str) -> str | None:
    """The data option the primary config's defaults list picks (``synthetic``)."""
    from reidsort.utils.hydra_utils import config_dir

    try:
        defaults = OmegaConf.load(config_dir() / f"{config_name}.yaml").get("defaults") or []
    except Exception:  # noqa: BLE001 - no readable primary config: only the command line counts
        return None
    for entry in defaults:
        if isinstance(entry, DictConfig) and DATA_GROUP in entry:
            return str(entry[DATA_GROUP])
    return None


def command_line_data() -> CommandLineData:
    """Read from Hydra's record of this run (``hydra.overrides.task``, ``runtime.choices``);
    nothing chosen when the task is called without Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized():
        return CommandLineData(chose_group=False)
    hydra_cfg = HydraConfig.get()
    parsed = OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task))
    chose = any(override.key_or_group == DATA_GROUP for override in parsed)
    prefix = DATA_GROUP + "."
    set_keys = tuple(o.key_or_group for o in parsed
                     if o.key_or_group.startswith(prefix) and not o.is_delete())
    deleted = tuple(o.key_or_group for o in parsed
                    if o.key_or_group.startswith(prefix) and o.is_delete())
    choice = hydra_cfg.runtime.choices.get(DATA_GROUP)
    default = _primary_default(str(hydra_cfg.job.config_name or "config"))
    if not chose and choice is not None and default is not None and str(choice) != default:
        chose = True  # an experiment= (or another config) picked the data group
    return CommandLineData(chose_group=chose, set_keys=set_keys, deleted_keys=deleted)


def _choice_name(cfg: DictConfig) -> str:
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(DATA_GROUP)
        if choice is not None:
            return str(choice)
    return str(cfg.data.get("format", "?"))


def choose_eval_data(cfg: DictConfig, trained: TrainingData | None, source: Path,
                     has_record_kind: bool) -> EvalData:
    """The data config to evaluate ``source`` on (see the module docstring).

    ``has_record_kind``: the source is a checkpoint (which may carry a record); exports do not.
    """
    line = command_line_data()
    composed = cfg.data
    if line.chose_group:
        return EvalData(composed, trained, f"data={_choice_name(cfg)} (command line)")
    if trained is None:
        what = ("has no record of its training data (inside it or a config.yaml beside it)"
                if has_record_kind else "is an export: it carries no record of its training data")
        log.warning("%s %s: evaluating data=%s; pass data=<config> (and data.root=...) to "
                    "choose the data", source, what, _choice_name(cfg))
        return EvalData(composed, None, f"data={_choice_name(cfg)} (default)")

    data = OmegaConf.create(trained.config)
    for key in line.set_keys:  # the command line's data.<key>=... win over the record
        value = OmegaConf.select(cfg, key)
        plain = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) \
            else value
        OmegaConf.update(data, key[len(DATA_GROUP) + 1:], plain, merge=False, force_add=True)
    for key in line.deleted_keys:
        parent_key, _, leaf = key[len(DATA_GROUP) + 1:].rpartition(".")
        parent = OmegaConf.select(data, parent_key) if parent_key else data
        if isinstance(parent, DictConfig) and leaf in parent:
            del parent[leaf]
    root = data.get("root")
    if data.get("format") not in GENERATED_FORMATS and root and not Path(str(root)).exists():
        raise ReidsortError(
            f"{source} was trained on {trained.describe()}, which is not on this machine: pass "
            "data.root=<where that dataset is here>, or data=<config> to evaluate other data")
    log.info("data: the training data of %s (%s)", source, trained.origin)
    return EvalData(data, trained, f"training data ({trained.origin})")


def _identities(split: EvalSplit) -> int:
    return len({r.pid for r in (*split.query, *split.gallery)})


def describe_split(split: EvalSplit) -> str:
    """``synthetic <root> (test split...): 80 identities, 240 query / 960 gallery images``."""
    return (f"{split.source}: {_identities(split)} identities, {len(split.query)} query / "
            f"{len(split.gallery)} gallery images")


def differences_from_training(split: EvalSplit, trained: TrainingData | None,
                              source: Path) -> list[str]:
    """Warnings, one line each: other data than training's, or other sizes for the same."""
    if trained is None:
        return []
    notes: dict[str, Any] = split.notes
    same_format = notes.get("format") == trained.format
    trained_root = trained.root or trained.config.get("root")
    same_root = str(notes.get("root")) == str(trained_root)
    same_test_root = notes.get("test_root") == trained.config.get("test_root")
    if not (same_format and same_root and same_test_root):
        evaluated = f"{notes.get('format')} {notes.get('root')}" + (
            f" (test_root {notes['test_root']})" if notes.get("test_root") else "")
        return [(f"evaluating {evaluated}, but {source} was trained on {trained.describe()}: "
                 "cross-domain evaluation (pass no data= to evaluate its own data)")]
    role = notes.get("split")
    expected = (trained.sizes.get(f"{role}_query_images"),
                trained.sizes.get(f"{role}_gallery_images"))
    if role == ALL or None in expected:
        return []
    found = (len(split.query), len(split.gallery))
    if found != expected:
        return [(f"{split.source}: {found[0]} query / {found[1]} gallery images, but training "
                 f"saw {expected[0]} / {expected[1]} in its {role} split: the data on disk or "
                 "the data.* settings changed since training")]
    return []
