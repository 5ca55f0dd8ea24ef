"""Re-ID from the ImageNet MobileNetV2 on real crops: TUD (task=prepare, 3 identity splits) and
mini_mars (held-out identities), against the colour histogram and the same network from random
init. Numbers go to experiments/README.md.

    python benchmarks/reid_pretrained.py tud --splits 42 7 123 --seeds 1 2 3 [-- overrides]
    python benchmarks/reid_pretrained.py mini_mars --seeds 1 2 3 [-- overrides]

Nothing is selected on the reported split: TUD trains on all 12 training identities and scores
the prepared query/gallery once, after the last epoch; mini_mars holds out identities and scores
them once, after the last epoch (validation runs only then). Each run is one ``task=train``
through the composed Hydra config, like ``python main.py``; one JSON line per run is appended to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SHARED = Path(os.environ.get("REIDSORT_SHARED_DATA", REPO.parent / "shared" / "data"))
TUD_SEQUENCES = [SHARED / "mot" / "TUD-Campus", SHARED / "mot" / "TUD-Stadtmitte"]
#: the prepared TUD splits of benchmarks/RESULTS.md (frame_step 2, 6 test identities, 36 queries)
TUD_PREPARE = {"frame_step": 2, "test_identities": 6, "queries_per_half": 3}


def compose(overrides: list[str], run_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from reidsort.utils.hydra_utils import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def prepare_tud(split_seed: int, work: Path) -> Path:
    from reidsort.data.prepare import PrepareOptions, prepare_reid_from_mot

    out = work / f"tud_{split_seed}"
    if not (out / "prepare_meta.json").is_file():
        prepare_reid_from_mot(TUD_SEQUENCES, out, PrepareOptions(seed=split_seed, **TUD_PREPARE),
                              fairmot_labels=False)
    return out


def mixed_root(split_dir: Path, sources: list[str], work: Path) -> Path:
    """A folder-per-identity dataset: the split's TUD training identities plus every identity
    of ``sources`` (``mini_mars``: 16 real MARS people; ``mini_market1501``: its 32 real
    Market-1501 people, all folders; ``synthetic``: the built-in renderer's 80 training
    people), as symlinks; the split's query/gallery stays the test split."""
    from collections import defaultdict

    root = work / f"mix_{split_dir.name}_{'_'.join(sorted(sources))}"
    if root.is_dir():
        return root
    staging = root.with_suffix(".tmp")
    by_pid: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((split_dir / "bounding_box_train").glob("*.jpg")):
        by_pid[f"tud_{path.name.split('_')[0]}"].append(path)
    if "mini_mars" in sources:
        for folder in sorted((SHARED / "reid" / "mini_mars" / "bbox_train").iterdir()):
            by_pid[f"mars_{folder.name}"] = sorted(folder.glob("*.jpg"))
    if "mini_market1501" in sources:
        market = SHARED / "reid" / "mini_market1501"
        for folder in ("bounding_box_train", "query", "bounding_box_test"):
            for path in sorted((market / folder).glob("*.jpg")):
                if not path.name.startswith("-1"):
                    by_pid[f"market_{path.name.split('_')[0]}"].append(path)
    if "synthetic" in sources:
        from reidsort.data.datamodule import ensure_synthetic

        synthetic = ensure_synthetic(work / "synthetic", _synthetic_params())
        for path in sorted((synthetic / "bounding_box_train").glob("*.jpg")):
            by_pid[f"synth_{path.name.split('_')[0]}"].append(path)
    for pid, paths in by_pid.items():
        (staging / pid).mkdir(parents=True, exist_ok=True)
        for path in paths:
            (staging / pid / path.name).symlink_to(path.resolve())
    staging.rename(root)
    return root


def _synthetic_params() -> dict:
    from omegaconf import OmegaConf

    data = OmegaConf.load(REPO / "conf" / "data" / "synthetic.yaml")
    return OmegaConf.to_container(data.synthetic)


def run(overrides: list[str], work: Path) -> dict[str, float]:
    from reidsort.tasks.train import train

    run_dir = Path(tempfile.mkdtemp(dir=work, prefix="run_"))
    cfg = compose([*overrides, f"paths.log_dir={work / 'outputs'}",
                   "trainer.enable_progress_bar=false", "logger=csv"], run_dir)
    started = time.perf_counter()
    metrics = train(cfg)
    metrics["wall_seconds"] = time.perf_counter() - started
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["tud", "mini_mars"])
    parser.add_argument("--splits", type=int, nargs="*", default=[42, 7, 123])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--label", default="")
    parser.add_argument("--mix", nargs="*", default=[],
                        choices=["mini_mars", "mini_market1501", "synthetic"],
                        help="TUD only: add these identities to training")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reid_pre")
    parser.add_argument("--out", type=Path, default=Path("reid_pretrained.jsonl"))
    args, extra = parser.parse_known_args()
    args.overrides = [arg for arg in extra if arg != "--"]
    args.work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    splits = args.splits if args.dataset == "tud" else [0]
    for split in splits:
        for seed in args.seeds:
            if args.dataset == "tud":
                split_dir = prepare_tud(split, args.work)
                base = ["experiment=tud_mobilenet_v2", f"data.root={split_dir}"]
                if args.mix:
                    mixed = mixed_root(split_dir, args.mix, args.work)
                    base += ["data=folder", f"data.root={mixed}", f"data.test_root={split_dir}",
                             "data.val_identities=null"]
            else:
                base = ["experiment=mini_mars_mobilenet_v2",
                        f"data.root={SHARED / 'reid' / 'mini_mars' / 'bbox_train'}"]
            metrics = run([*base, f"seed={seed}", *args.overrides], args.work)
            row = {"dataset": args.dataset, "split": split, "seed": seed, "label": args.label,
                   "overrides": args.overrides, "mix": args.mix,
                   "train_identities": metrics.get("data/train_identities"),
                   **{k: metrics.get(k) for k in (
                       "test/mAP", "test/rank1", "val/mAP_final", "val/mAP", "val/rank1",
                       "baseline/test_hist_mAP", "baseline/test_hist_rank1",
                       "baseline/val_hist_mAP", "baseline/val_hist_rank1", "wall_seconds")}}
            with args.out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
