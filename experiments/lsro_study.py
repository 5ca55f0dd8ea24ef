"""Generative augmentation study (issue 19): do GAN images with LSRO help Re-ID training?

End to end; every step is a ``python main.py ...`` run of this checkout (commands and logs are
saved with the results). For each dataset and seed:

1. **GAN** (``task=gan``, DCGAN of ``experiment=gan_cpu``: 64x32, base width 32, TTUR, EMA) on
   the *training* identities of exactly the split the Re-ID run of that seed uses (same data
   config, same ``seed``, so the same held-out identities): never a validation or test person.
   FID / KID (ImageNet MobileNetV2 features at 128x64, EMA samples vs the real training images)
   every :data:`QUALITY_EVERY` epochs: ``quality.csv``, ``quality.png``, grids per epoch.
2. **Images**: ``task=generate`` writes :data:`DATASETS` ``[...]["num_images"]`` images from the
   GAN's ``last.ckpt`` (no checkpoint selection).
3. **Re-ID**, two arms with the same recipe, data, seed and number of steps: ``baseline`` and
   ``lsro`` (+ ``data.generated_root=<those images>`` at the defaults: 25 % extra generated
   images per batch, LSRO weight 1, no triplet mining on them). Scored once on people no GAN or
   Re-ID run trained on:

   - ``synthetic``: the main job (``python main.py``: ResNet-18 at 64x32, 200 steps; checkpoint
     chosen on 16 held-out training identities), ``test/mAP`` / ``test/rank1`` on the 80 test
     identities;
   - ``mini_mars``: ``experiment=mini_mars_mobilenet_v2`` (ImageNet MobileNetV2, 160 steps, 10
     training identities), ``val/mAP`` / ``val/rank1`` after the last epoch on the 6 held-out
     identities the seed draws (the recipe's only evaluation; nothing is selected on it).

4. ``results.md`` (mean +- sd per arm, the per-seed paired difference lsro - baseline and its
   mean +- sd; GAN quality per seed) and ``results.json`` in the output folder.

Run (2-core CPU)::

    python experiments/lsro_study.py --out outputs/lsro_study --threads 2
    python experiments/lsro_study.py --out outputs/lsro_study --datasets synthetic --seeds 1

A step whose result file exists in ``--out`` is reused; delete its folder to run it again.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "experiments"))
from study_runs import (
    cached_step,
    last_logged,
    machine_line,
    main_py,
    paired_summary,
    run_logged,
)

from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_write_text

SEEDS = (1, 2, 3)
BASELINE, LSRO = "baseline", "lsro"
ARMS = (BASELINE, LSRO)
#: FID / KID every this many GAN epochs (and after the last)
QUALITY_EVERY = 5
#: held-out real images in the real-vs-real reference (= the GAN samples per measurement)
REFERENCE_IMAGES = 500
#: the GAN recipe's settings (experiment=gan_cpu) as overrides, for datasets whose own Re-ID
#: recipe is an experiment too (two _global_ experiments do not compose)
GAN_CPU_OVERRIDES = (
    "gan.image_size=[64,32]", "gan.data.batch_size=32", "gan.data.num_workers=0",
    "gan.module.base_channels=32", "gan.module.latent_dim=64", "gan.module.ema_decay=0.99",
    "gan.quality.input_size=[128,64]", "gan.quality.num_samples=500",
    "gan.quality.max_real_images=null", "gan.quality.kid_subsets=50",
    "gan.quality.kid_subset_size=500", "gan.quality.batch_size=100",
    "trainer.log_every_n_steps=10",
)
#: dataset -> the Re-ID recipe (overrides of ``python main.py``), the GAN's overrides, epochs,
#: generated image count, and the metric keys of the held-out people
DATASETS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "reid": (),
        "gan": ("experiment=gan_cpu",),
        "gan_epochs": 40,
        "num_images": 1000,
        "metrics": ("test/mAP", "test/rank1"),
        "held_out": "80 test identities (238 query / 476 gallery)",
    },
    "mini_mars": {
        "reid": ("experiment=mini_mars_mobilenet_v2",),
        "gan": ("task=gan", "experiment=mini_mars_mobilenet_v2", *GAN_CPU_OVERRIDES),
        "gan_epochs": 25,
        "num_images": 500,
        "metrics": ("val/mAP", "val/rank1"),
        "held_out": "6 held-out identities drawn by the seed",
    },
}


# ================================================================================ steps
def train_gan(out: Path, python: str, dataset: str, seed: int, threads: int) -> dict[str, Any]:
    folder = out / dataset / f"gan-s{seed}"
    spec = DATASETS[dataset]

    def step() -> dict[str, Any]:
        run_dir = folder / "run"
        command = main_py(python, *spec["gan"], f"seed={seed}",
                          f"gan.max_epochs={spec['gan_epochs']}",
                          f"gan.quality.every_n_epochs={QUALITY_EVERY}",
                          f"torch_threads={threads}", "logger=csv",
                          "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}")
        seconds = run_logged(command, folder / "gan.log")
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            raise ReidsortError(f"{dataset} seed {seed}: no {checkpoint}")
        with (run_dir / "quality.csv").open(encoding="utf-8") as handle:
            quality = [{k: float(v) if k not in ("network",) else v for k, v in row.items()}
                       for row in csv.DictReader(handle)]
        metrics = run_dir / "csv" / "metrics.csv"
        return {"checkpoint": str(checkpoint), "command": command, "seconds": seconds,
                "quality": quality, "grids": str(run_dir / "grids"),
                "quality_plot": str(run_dir / "quality.png"),
                "train_images": last_logged_or_record(run_dir, "train_images"),
                "loss_d": last_logged(metrics, "train/loss_d_epoch"),
                "loss_g": last_logged(metrics, "train/loss_g_epoch")}

    return cached_step(folder, step)


def last_logged_or_record(run_dir: Path, key: str) -> float:
    """A number from the GAN checkpoint's training-data record (what the GAN trained on)."""
    import torch

    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)
    return float(checkpoint.get("gan_training_data", {}).get(key, math.nan))


def real_reference(out: Path, dataset: str, seed: int, threads: int) -> dict[str, Any]:
    """What FID / KID are for *real* images: :data:`REFERENCE_IMAGES` images of the held-out
    people (resized like the GAN's samples) against the GAN's training images, with the same
    feature network and settings as ``gan.quality``: the value a perfect GAN of *other* people
    would get (GAN samples are compared with the same number of images)."""
    folder = out / dataset / f"real-reference-s{seed}"

    def step() -> dict[str, Any]:
        import numpy as np
        import torch
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig
        from torch.utils.data import DataLoader

        from reidsort.data.image_dataset import ReIDImageDataset
        from reidsort.generative.data import GANDataModule, ToGANImage
        from reidsort.generative.quality import (
            build_feature_network,
            extract_features,
            quality_scores,
        )
        from reidsort.utils.hydra_utils import config_dir

        torch.set_num_threads(threads)
        started = time.perf_counter()
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="config", return_hydra_config=True,
                          overrides=[*DATASETS[dataset]["gan"], f"seed={seed}",
                                     f"hydra.run.dir={folder}"])
        HydraConfig().set_config(cfg)
        quality = cfg.gan.quality
        data = GANDataModule.from_config(cfg.data, image_size=list(cfg.gan.image_size),
                                         seed=seed, batch_size=int(quality.batch_size),
                                         num_workers=0, flip=False)
        data.setup("fit")
        reid = data.reid
        reid.setup("fit")
        held_out = ([*reid.final.test_query, *reid.final.test_gallery]
                    if DATASETS[dataset]["metrics"][0].startswith("test/")
                    else [*reid.split.query, *reid.split.gallery])
        training_pids = {r.pid for r in data.records}
        if {r.pid for r in held_out} & training_pids:
            raise ReidsortError(f"{dataset}: held-out people overlap the GAN's training people")
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(held_out), size=min(REFERENCE_IMAGES, len(held_out)),
                                   replace=False).tolist())
        records = [held_out[i] for i in chosen]
        network = build_feature_network(str(quality.network), str(quality.weights),
                                        list(quality.input_size)).eval()
        real = extract_features(network, data.reference_loader(
            quality.max_real_images, int(quality.batch_size)))
        other = extract_features(network, DataLoader(
            ReIDImageDataset(records, [0] * len(records), ToGANImage(data.image_size, False)),
            batch_size=int(quality.batch_size), shuffle=False))
        scores = quality_scores(real, other, int(quality.kid_subsets),
                                min(int(quality.kid_subset_size), len(other)), seed)
        return {"fid": scores.fid, "kid": scores.kid, "kid_std": scores.kid_std,
                "num_real": len(real), "num_other": len(other),
                "other_identities": len({r.pid for r in records}),
                "seconds": time.perf_counter() - started}

    return cached_step(folder, step)


def generate_images(out: Path, python: str, dataset: str, seed: int, checkpoint: str,
                    threads: int) -> dict[str, Any]:
    folder = out / dataset / f"generated-s{seed}"

    def step() -> dict[str, Any]:
        run_dir = folder / "run"
        command = main_py(python, "task=generate", f"ckpt_path={checkpoint}",
                          f"task.num_images={DATASETS[dataset]['num_images']}",
                          f"task.seed={seed}", "task.device=cpu", f"torch_threads={threads}",
                          f"hydra.run.dir={run_dir}")
        seconds = run_logged(command, folder / "generate.log")
        images = run_dir / "generated"
        count = sum(1 for p in images.iterdir() if p.suffix == ".png")
        if count != DATASETS[dataset]["num_images"]:
            raise ReidsortError(f"{images}: {count} images, expected "
                                f"{DATASETS[dataset]['num_images']}")
        return {"folder": str(images), "count": count, "command": command, "seconds": seconds}

    return cached_step(folder, step)


def train_reid(out: Path, python: str, dataset: str, seed: int, arm: str,
               generated: str | None, threads: int) -> dict[str, Any]:
    folder = out / dataset / f"{arm}-s{seed}"
    spec = DATASETS[dataset]

    def step() -> dict[str, Any]:
        run_dir = folder / "run"
        extra = [f"data.generated_root={generated}"] if arm == LSRO else []
        command = main_py(python, *spec["reid"], f"seed={seed}", *extra,
                          f"torch_threads={threads}", "logger=csv",
                          "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}")
        seconds = run_logged(command, folder / "train.log")
        metrics = run_dir / "csv" / "metrics.csv"
        map_key, rank1_key = spec["metrics"]
        result = {"command": command, "seconds": seconds,
                  "mAP": last_logged(metrics, map_key), "rank1": last_logged(metrics, rank1_key),
                  "train_ce": last_logged(metrics, "train/ce"),
                  "train_lsro": last_logged(metrics, "train/lsro")}
        if math.isnan(result["mAP"]):
            raise ReidsortError(f"{metrics}: no {map_key} logged")
        return result

    return cached_step(folder, step)


# ================================================================================ summary
def _fmt(pair: tuple[float, float], decimals: int = 3) -> str:
    mean, sd = pair
    return f"{mean:.{decimals}f}" if math.isnan(sd) else f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def results_table(runs: Mapping[str, Mapping[tuple[str, int], Mapping[str, Any]]],
                  seeds: Sequence[int]) -> tuple[str, dict[str, Any]]:
    header = ("| dataset (held-out people) | metric | baseline | + GAN images, LSRO | "
              "lsro - baseline (paired) | per seed |")
    lines = [header, "|---|---|---:|---:|---:|---|"]
    numbers: dict[str, Any] = {}
    for dataset, by_arm in runs.items():
        for metric in ("mAP", "rank1"):
            arms = {arm: {s: by_arm[(arm, s)][metric] for s in seeds if (arm, s) in by_arm}
                    for arm in ARMS}
            summary = paired_summary(arms[BASELINE], arms[LSRO], LSRO)
            numbers[f"{dataset}/{metric}"] = summary
            per_seed = ", ".join(f"{d:+.3f}" for d in summary["differences"].values())
            lines.append(f"| {dataset} ({DATASETS[dataset]['held_out']}) | {metric} | "
                         f"{_fmt(summary[BASELINE])} | {_fmt(summary[LSRO])} | "
                         f"{_fmt(summary['difference'])} | {per_seed} |")
    return "\n".join(lines) + "\n", numbers


def gan_table(gans: Mapping[tuple[str, int], Mapping[str, Any]]) -> str:
    header = ("| dataset | seed | training images | FID first / best / last measurement | "
              "KID last | real held-out people: FID / KID | GAN wall time | quality curves |")
    lines = [header, "|---|---:|---:|---|---:|---|---:|---|"]
    for (dataset, seed), gan in gans.items():
        quality = gan["quality"]
        fids = [row["fid"] for row in quality]
        lines.append(f"| {dataset} | {seed} | {gan['train_images']:.0f} | {fids[0]:.1f} "
                     f"(epoch {quality[0]['epoch'] + 1:.0f}) / {min(fids):.1f} / {fids[-1]:.1f} "
                     f"(epoch {quality[-1]['epoch'] + 1:.0f}) | {quality[-1]['kid']:.3f} | "
                     f"{_reference(gan)} | {gan['seconds']:.0f} s | {gan['quality_plot']} |")
    return "\n".join(lines) + "\n"


def _reference(gan: Mapping[str, Any]) -> str:
    reference = gan.get("real_reference")
    if not reference:
        return "n/a"
    return (f"{reference['fid']:.1f} / {reference['kid']:.3f} ({reference['num_other']} images "
            f"of {reference['other_identities']} people)")


# ================================================================================ main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every run")
    parser.add_argument("--python", default=sys.executable, help="interpreter for main.py")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    gans: dict[tuple[str, int], dict[str, Any]] = {}
    runs: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
    for dataset in args.datasets:
        runs[dataset] = {}
        for seed in args.seeds:
            gan = gans[(dataset, seed)] = train_gan(out, args.python, dataset, seed,
                                                    args.threads)
            gan["real_reference"] = real_reference(out, dataset, seed, args.threads)
            images = generate_images(out, args.python, dataset, seed, gan["checkpoint"],
                                     args.threads)
            for arm in ARMS:
                runs[dataset][(arm, seed)] = train_reid(out, args.python, dataset, seed, arm,
                                                        images["folder"], args.threads)
    table, numbers = results_table(runs, args.seeds)
    steps = (sum(g["seconds"] for g in gans.values())
             + sum(r["seconds"] for by_arm in runs.values() for r in by_arm.values()))
    per_run = "\n".join(
        f"| {dataset} | {arm} | {seed} | {r['mAP']:.3f} | {r['rank1']:.3f} | "
        f"{r['train_ce']:.3f} | {r['train_lsro']:.3f} | {r['seconds']:.0f} s |"
        for dataset, by_arm in runs.items() for (arm, seed), r in sorted(by_arm.items()))
    wall = time.perf_counter() - started
    report = (
        f"# GAN images + LSRO in Re-ID training (seeds {args.seeds})\n\n"
        f"Machine: {machine_line()}; torch threads {args.threads}. Wall time of the steps "
        f"(GANs and Re-ID runs, whether run now or reused): {steps:.0f} s; this invocation: "
        f"{wall:.0f} s.\n\nRe-ID on held-out people (mean ± sd over seeds):\n\n{table}\n"
        f"GANs (FID / KID with ImageNet MobileNetV2 features; 500 EMA samples vs the training "
        f"images):\n\n{gan_table(gans)}\n"
        "| dataset | arm | seed | mAP | Rank-1 | final train CE | final train LSRO | wall |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|\n" + per_run + "\n")
    atomic_write_text(out / "results.md", report)
    atomic_write_text(out / "results.json", json.dumps(
        {"gans": {f"{d}-s{s}": g for (d, s), g in gans.items()},
         "runs": {d: {f"{a}-s{s}": r for (a, s), r in by_arm.items()}
                  for d, by_arm in runs.items()},
         "summary": numbers, "machine": machine_line(), "step_seconds": steps,
         "wall_seconds": wall}, indent=1, sort_keys=True, default=float) + "\n")
    print("\n" + report, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
