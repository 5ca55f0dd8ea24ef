"""``task=synth``: write the built-in synthetic Re-ID dataset in Market-1501 layout."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from reidsort.data.synthetic.market import write_market1501
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain

log = logging.getLogger(__name__)


def synth(cfg: DictConfig) -> dict[str, float]:
    root = Path(cfg.task.root)
    if root.exists() and any(root.iterdir()):
        if not cfg.task.get("overwrite"):
            raise ReidsortError(f"{root} exists and is not empty (task.overwrite=true replaces it)")
        shutil.rmtree(root)
    summary = write_market1501(root, **to_plain(cfg.task.params))
    counts = {k: v for k, v in summary["counts"].items() if isinstance(v, (int, float))}
    print(f"synthetic Market-1501 data written to {root}", flush=True)
    for key, value in counts.items():
        print(f"  {key:<28} {value}", flush=True)
    return {f"synth/{k}": float(v) for k, v in counts.items()}
