"""``task=convert``: write the dataset of ``data=...`` as folder-per-identity
(``out/{train,query,gallery}/<pid>/...``) with symlinks, hard links or copies.

The dataset is loaded like training loads it (scan + reader, invalid files left out), with its
own train/query/gallery parts (no validation carving, no ``min_samples``).
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from reidsort.data.convert import write_identity_folders
from reidsort.data.loading import load_dataset
from reidsort.data.staging import staged_dir
from reidsort.utils.hydra_utils import to_plain
from reidsort.utils.io import atomic_write_text

META_FILENAME = "convert_meta.json"


def convert(cfg: DictConfig) -> dict[str, float]:
    task = cfg.task
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    loaded = load_dataset(datamodule.format, datamodule.dataset_root,
                          test_root=datamodule.test_root, settings=datamodule.scan_settings)
    out = Path(task.out)
    with staged_dir(out, bool(task.overwrite)) as staging:
        counts = write_identity_folders(loaded.split, staging, str(task.mode),
                                        to_plain(task.splits), bool(task.keep_distractors))
        meta = {"source": {"format": datamodule.format, "root": str(datamodule.dataset_root),
                           "test_root": datamodule.test_root},
                "mode": str(task.mode), "counts": counts,
                "invalid_images_left_out": loaded.num_invalid}
        atomic_write_text(staging / META_FILENAME, json.dumps(meta, indent=1) + "\n")
    print(f"{datamodule.format} dataset written as folder-per-identity ({task.mode}) to {out}",
          flush=True)
    metrics: dict[str, float] = {}
    for split, c in counts.items():
        print(f"  {split:<8} {c['images']:>7} images {c['identities']:>6} identities",
              flush=True)
        metrics[f"convert/{split}_images"] = float(c["images"])
        metrics[f"convert/{split}_identities"] = float(c["identities"])
    if "train" in counts:
        print(f"train on it: python main.py data=folder data.root={out / 'train'}", flush=True)
    return metrics
