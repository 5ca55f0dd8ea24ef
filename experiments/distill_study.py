"""FairMOT knowledge-distillation study (issue 18): does a Re-ID teacher help the student?

End to end; every training, preparation and tracking step is a ``python main.py ...`` run of
this checkout (the commands are logged and saved with the results), the detection AP is
computed here with the project's detector and metric:

1. **Teacher**: ``task=prepare`` cuts Re-ID crops (Market-1501 layout) from the students'
   training sequences only (the twelve rendered sequences of ``experiment=fairmot_distill_study``),
   ``task=train`` fine-tunes the ImageNet MobileNetV2 of ``../shared/data`` on them
   (:data:`TEACHER_TRAIN`). Its ``last.ckpt`` is the teacher; it never sees a test sequence.
   A diagnostic, never trained on: its Re-ID mAP on the TUD people (``task=eval``) against the
   colour histogram's, i.e. what appearance knowledge it has to give on real footage.
2. **Students**: ``experiment=fairmot_distill_study`` for each seed, once without and once with
   ``jde.distill={reid: {path: <teacher>}}`` (the defaults: embedding weight 1.0, cosine, added to
   the tracking loss). Same data, same augmentation, same initial weights and the same number of
   steps within a pair: only the distillation term differs.
3. **Scores of each student's last.ckpt** (no checkpoint is selected on anything) on sequences no
   student or teacher trained on: three new synthetic sequences (:data:`TEST_SEQUENCES`, rendered
   like the training ones) and the real TUD-Campus + TUD-Stadtmitte of ``../shared/data``:

   - detection AP50 (:func:`reidsort.jde.metrics.detection_scores`, the validation's AP) of the
     ``detector=fairmot`` boxes on the full frames, pooled over each set;
   - ``task=track detector=fairmot tracker=jde`` (FairMOT's association at its defaults),
     scored by TrackEval inside the task: HOTA, IDF1, IDSW, MOTA, combined over each set.

4. ``results.md`` (the table: mean +- sd over the seeds per arm, the per-seed paired difference
   distill - baseline and its mean +- sd) and ``results.json`` (every number) in the output folder.

Run (2-core CPU: the steps took 37 minutes in all on 2026-12-02, partly on a shared machine)::

    python experiments/distill_study.py --out outputs/distill_study
    python experiments/distill_study.py --out outputs/distill_study --seeds 1 2 3 --threads 2

A step whose result file exists in ``--out`` is reused (an interrupted study continues where it
stopped); delete the folder, or the step's folder, to run it again.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_write_text

sys.path.insert(0, str(REPO_ROOT / "experiments"))
from study_runs import (
    cached_step,
    last_logged,
    machine_line,
    main_py,
    paired_summary,
    run_logged,
)

#: the students' recipe (conf/experiment/)
STUDY_RECIPE = "fairmot_distill_study"
SEEDS = (1, 2, 3)
BASELINE, DISTILL = "baseline", "distill"
ARMS = (BASELINE, DISTILL)
#: held-out synthetic test sequences: seeds no recipe trains or validates on (training 301-312,
#: validation 401), rendered at the renderer's defaults like the training sequences; the third
#: has people who leave and come back (re-identification after a gap)
TEST_SEQUENCES: tuple[dict[str, Any], ...] = (
    {"name": "SYNTH-DST-TEST-1", "seed": 501, "num_frames": 100, "num_people": 14},
    {"name": "SYNTH-DST-TEST-2", "seed": 502, "num_frames": 100, "num_people": 18},
    {"name": "SYNTH-DST-TEST-3", "seed": 503, "num_frames": 100, "num_people": 12,
     "returning_people": 3},
)
#: real sequences (../shared/data/mot), never trained on
TUD_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
SYNTHETIC_SET, TUD_SET = "synthetic", "tud"
#: crops from the training sequences: every 2nd frame (20 fps: neighbours are near-duplicates);
#: 24 identities held out as a query/gallery that says how good the teacher is (they are
#: people of the students' training sequences, not of the test sequences)
TEACHER_PREPARE = ["task.frame_step=2", "task.test_identities=24", "task.queries_per_half=2",
                   "task.fairmot_labels=false", "task.overwrite=true"]
#: the TUD recipe's ImageNet MobileNetV2 (128x64, first blocks frozen, Adam 3e-3, cosine) with
#: P16 x K4 batches for the ~130 training identities: 30 batches x 6 epochs. That recipe has no
#: validation split (all identities train, the last epoch is kept), so there is no val/mAP: the
#: run returns test/mAP (the 24 held-out people) instead of failing on the missing metric
TEACHER_TRAIN = ["experiment=tud_mobilenet_v2", "data.p=16", "data.k=4",
                 "data.batches_per_epoch=30", "trainer.max_epochs=6", "logger=csv",
                 "optimized_metric=test/mAP"]
#: the teacher on the real people it will meet at test time (a diagnostic, never trained on):
#: every identity of TUD-Campus + TUD-Stadtmitte with enough crops in the query/gallery
#: (prepare keeps one for its training split), every 2nd frame, 3 queries per track half
TUD_REID_PREPARE = ["task.frame_step=2", "task.test_identities=18", "task.queries_per_half=3",
                    "task.fairmot_labels=false", "task.overwrite=true"]
#: detections down to this score enter the AP (the validation's jde.evaluation.score_threshold)
AP_SCORE_THRESHOLD = 0.01
#: FairMOT's tracker confidence: precision / recall of the detections a tracker gets
TRACK_CONF_THRESHOLD = 0.4
#: TrackEval columns reported (fractions, IDSW a count)
TRACK_METRICS = ("HOTA", "IDF1", "IDSW", "MOTA", "DetA", "AssA")
#: rows of the results table: (key, label, scale, decimals)
TABLE_ROWS: tuple[tuple[str, str, float, int], ...] = (
    ("AP50", "AP50", 100.0, 1),
    ("HOTA", "HOTA", 100.0, 1),
    ("IDF1", "IDF1", 100.0, 1),
    ("IDSW", "IDSW", 1.0, 1),
    ("MOTA", "MOTA", 100.0, 1),
    ("AssA", "AssA", 100.0, 1),
)
#: the epoch mean of the embedding distillation term a student logs (reidsort.jde.module)
DISTILL_COLUMN = "train/distill_embedding"


# ================================================================================ running
# ================================================================================ data
def study_sources() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training and validation sources of the study recipe, as it composes."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from reidsort.utils.hydra_utils import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={STUDY_RECIPE}"])
    GlobalHydra.instance().clear()
    data = cfg.jde.data
    return ([OmegaConf.to_container(s) for s in data.sources],
            [OmegaConf.to_container(s) for s in data.val_sources])


def render(data_dir: Path, spec: Mapping[str, Any]) -> Path:
    """The MOT folder of a synthetic source spec (rendered on first use, as task=jde does)."""
    from reidsort.data.synthetic.mot import ensure_synthetic_mot

    params = {k: v for k, v in spec.items() if k != "type"}
    return ensure_synthetic_mot(data_dir, **params)


# ================================================================================ steps
def train_teacher(out: Path, python: str, data_dir: Path, train_folders: Sequence[Path],
                  threads: int) -> dict[str, Any]:
    folder = out / "teacher"

    def step() -> dict[str, Any]:
        reid_root = folder / "reid_data"
        prepare = main_py(python, "task=prepare", f"paths.data_dir={data_dir}",
                          f"task.sequences=[{','.join(str(f) for f in train_folders)}]",
                          f"task.out={reid_root}", *TEACHER_PREPARE,
                          f"hydra.run.dir={folder / 'prepare'}")
        prepare_s = run_logged(prepare, folder / "prepare.log")
        train = main_py(python, *TEACHER_TRAIN, f"data.root={reid_root}", "seed=0",
                        f"torch_threads={threads}", f"paths.data_dir={data_dir}",
                        f"hydra.run.dir={folder / 'train'}")
        train_s = run_logged(train, folder / "train.log")
        checkpoint = folder / "train" / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            raise ReidsortError(f"teacher training wrote no {checkpoint}")
        metrics = folder / "train" / "csv" / "metrics.csv"
        return {"checkpoint": str(checkpoint), "commands": [prepare, train],
                "seconds": {"prepare": prepare_s, "train": train_s},
                "test_mAP": last_logged(metrics, "test/mAP"),
                "test_rank1": last_logged(metrics, "test/rank1")}

    return cached_step(folder, step)


def teacher_on_tud(out: Path, python: str, data_dir: Path, checkpoint: str,
                   tud: Sequence[Path], threads: int) -> dict[str, Any]:
    """Re-ID mAP of the teacher on the TUD people (``task=eval``) against the colour
    histogram on the same query/gallery: how much appearance knowledge it has to give there."""
    folder = out / "teacher_on_tud"

    def step() -> dict[str, Any]:
        from reidsort.data.datasets import read_market1501
        from reidsort.reid.baseline import histogram_baseline

        reid_root = folder / "reid_data"
        prepare = main_py(python, "task=prepare", f"paths.data_dir={data_dir}",
                          f"task.sequences=[{','.join(str(f) for f in tud)}]",
                          f"task.out={reid_root}", *TUD_REID_PREPARE,
                          f"hydra.run.dir={folder / 'prepare'}")
        run_logged(prepare, folder / "prepare.log")
        evaluate = main_py(python, "task=eval", f"ckpt_path={checkpoint}", "data=market1501",
                           f"data.root={reid_root}", "data.val_identities=null",
                           f"torch_threads={threads}", f"paths.data_dir={data_dir}",
                           f"hydra.run.dir={folder / 'eval'}")
        run_logged(evaluate, folder / "eval.log")
        with (folder / "eval" / "summary.csv").open(encoding="utf-8") as handle:
            scores = {row["metric"]: float(row["value"]) for row in csv.DictReader(handle)}
        split = read_market1501(reid_root)
        histogram = histogram_baseline(split.query, split.gallery)
        return {"commands": [prepare, evaluate], "mAP": scores["mAP"],
                "rank1": scores["rank1"], "histogram_mAP": float(histogram.mAP),
                "histogram_rank1": float(histogram.rank(1)),
                "queries": len(split.query), "gallery": len(split.gallery),
                "identities": len({r.pid for r in split.query})}

    return cached_step(folder, step)


def student_overrides(seed: int, arm: str, teacher_checkpoint: str | None) -> list[str]:
    """The ``main.py`` overrides of one student: the pair of a seed differs only in distill."""
    overrides = [f"experiment={STUDY_RECIPE}", f"seed={seed}", "logger=csv"]
    if arm == DISTILL:
        if not teacher_checkpoint:
            raise ReidsortError("the distill arm needs the teacher's checkpoint")
        overrides.append(f"jde.distill={{reid: {{path: '{teacher_checkpoint}'}}}}")
    elif arm != BASELINE:
        raise ReidsortError(f"unknown arm {arm!r}, expected one of {ARMS}")
    return overrides


def train_student(out: Path, python: str, data_dir: Path, seed: int, arm: str,
                  teacher_checkpoint: str, threads: int) -> dict[str, Any]:
    folder = out / "students" / f"{arm}-s{seed}"

    def step() -> dict[str, Any]:
        run_dir = folder / "run"
        command = main_py(python, *student_overrides(seed, arm, teacher_checkpoint),
                          f"torch_threads={threads}", f"paths.data_dir={data_dir}",
                          f"hydra.run.dir={run_dir}")
        seconds = run_logged(command, folder / "train.log")
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            raise ReidsortError(f"{arm} seed {seed}: no {checkpoint}")
        metrics = run_dir / "csv" / "metrics.csv"
        return {"checkpoint": str(checkpoint), "command": command, "seconds": seconds,
                "val_AP50": last_logged(metrics, "val/AP50"),
                "train_loss": last_logged(metrics, "train/loss_epoch"),
                "train_identity": last_logged(metrics, "train/identity_epoch")}

    return cached_step(folder, step)


def detection_ap(checkpoint: str, folders: Sequence[Path], threads: int) -> dict[str, Any]:
    """AP50 (and precision / recall at the tracker's confidence) of the FairMOT boxes on every
    frame of ``folders`` against their ground-truth people, per sequence and pooled."""
    import numpy as np

    from reidsort.data.prepare import load_sequences, pedestrian_mask
    from reidsort.detection.fairmot import FairMOTDetector
    from reidsort.jde.data import PEDESTRIAN_CLASSES
    from reidsort.jde.metrics import detection_scores

    detector = FairMOTDetector(checkpoint, conf_thres=AP_SCORE_THRESHOLD, device="cpu",
                               threads=threads)
    per_sequence: dict[str, Any] = {}
    pooled: list[tuple[Any, Any]] = []
    for seq in load_sequences(list(folders)):
        gt = seq.gt
        keep = pedestrian_mask(gt, PEDESTRIAN_CLASSES)
        frames = []
        frame_ids = list(range(1, seq.info.length + 1))
        for start in range(0, len(frame_ids), detector.batch_size):
            chunk = frame_ids[start:start + detector.batch_size]
            images = [_read_frame(seq.frame_path(frame_id)) for frame_id in chunk]
            for frame_id, found in zip(chunk, detector.detect_images(images)):
                boxes = gt.tlwh[keep & (gt.frame_ids == frame_id)].copy()
                boxes[:, 2:] += boxes[:, :2]  # tlwh -> xyxy
                frames.append((np.column_stack([found.xyxy, found.scores]).reshape(-1, 5),
                               boxes))
        scores = detection_scores(frames, conf_threshold=TRACK_CONF_THRESHOLD)
        # named as task=track names its sources (seqinfo.ini's name, not the folder's)
        per_sequence[seq.info.name or seq.name] = _scores_dict(scores)
        pooled += frames
    total = detection_scores(pooled, conf_threshold=TRACK_CONF_THRESHOLD)
    return {"pooled": _scores_dict(total), "per_sequence": per_sequence}


def _read_frame(path: Path) -> Any:
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise ReidsortError(f"unreadable frame {path}")
    return image


def _scores_dict(scores: Any) -> dict[str, float]:
    return {"AP50": scores.ap, "precision": scores.precision, "recall": scores.recall,
            "num_gt": float(scores.num_gt)}


def track_and_score(python: str, data_dir: Path, checkpoint: str, folders: Sequence[Path],
                    run_dir: Path, threads: int) -> tuple[dict[str, Any], list[str], float]:
    """``task=track detector=fairmot tracker=jde`` on ``folders`` (scored by TrackEval in the
    task); the combined and per-sequence rows of its ``mot_metrics.csv``."""
    command = main_py(python, "task=track", "detector=fairmot",
                      f"detector.ckpt_path={checkpoint}", f"detector.threads={threads}",
                      "detector.device=cpu", "tracker=jde",
                      f"source=[{','.join(str(f) for f in folders)}]", "mode=offline",
                      "task.video=false", "task.cache=false", "task.progress=false",
                      f"torch_threads={threads}", f"paths.data_dir={data_dir}",
                      f"hydra.run.dir={run_dir}")
    seconds = run_logged(command, run_dir.with_suffix(".log"))
    table = run_dir / "mot_metrics.csv"
    if not table.is_file():
        raise ReidsortError(f"task=track wrote no {table} (no ground truth found?)")
    rows: dict[str, dict[str, float]] = {}
    with table.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows[row["sequence"]] = {k: float(row[k]) for k in TRACK_METRICS}
    return rows, command, seconds


def evaluate_student(out: Path, python: str, data_dir: Path, seed: int, arm: str,
                     checkpoint: str, test_sets: Mapping[str, Sequence[Path]],
                     threads: int) -> dict[str, Any]:
    folder = out / "eval" / f"{arm}-s{seed}"

    def step() -> dict[str, Any]:
        result: dict[str, Any] = {"sets": {}, "commands": [], "seconds": {}}
        for name, folders in test_sets.items():
            started = time.perf_counter()
            detection = detection_ap(checkpoint, folders, threads)
            result["seconds"][f"{name}_ap"] = time.perf_counter() - started
            tracking, command, seconds = track_and_score(python, data_dir, checkpoint, folders,
                                                         folder / f"track_{name}", threads)
            result["commands"].append(command)
            result["seconds"][f"{name}_track"] = seconds
            result["sets"][name] = {"detection": detection, "tracking": tracking,
                                    "AP50": detection["pooled"]["AP50"],
                                    **{k: tracking["COMBINED"][k] for k in TRACK_METRICS}}
            print(f"  {arm} s{seed} {name}: AP50 {detection['pooled']['AP50']:.3f}  "
                  f"HOTA {tracking['COMBINED']['HOTA']:.3f}  IDF1 "
                  f"{tracking['COMBINED']['IDF1']:.3f}  IDSW {tracking['COMBINED']['IDSW']:.0f}",
                  flush=True)
        return result

    return cached_step(folder, step)


# ================================================================================ summary
def _fmt(pair: tuple[float, float], scale: float, decimals: int) -> str:
    mean, sd = pair
    if math.isnan(sd):
        return f"{scale * mean:.{decimals}f}"
    return f"{scale * mean:.{decimals}f} ± {scale * sd:.{decimals}f}"


def results_table(evaluations: Mapping[tuple[str, int], Mapping[str, Any]],
                  set_names: Sequence[str], seeds: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """The markdown table (scores in %, IDSW a count) and its numbers."""
    header = ("| set | metric | baseline | distill | distill - baseline per seed "
              f"({' / '.join(str(s) for s in seeds)}) | mean difference |")
    lines = [header, "|---|---|---:|---:|---:|---:|"]
    numbers: dict[str, Any] = {}
    for set_name in set_names:
        for key, label, scale, decimals in TABLE_ROWS:
            arms = {arm: {s: evaluations[(arm, s)]["sets"][set_name][key] for s in seeds}
                    for arm in ARMS}
            summary = paired_summary(arms[BASELINE], arms[DISTILL], DISTILL)
            numbers[f"{set_name}/{key}"] = summary
            per_seed = " / ".join(f"{scale * summary['differences'][s]:+.{decimals}f}"
                                  for s in seeds)
            lines.append(f"| {set_name} | {label} | {_fmt(summary['baseline'], scale, decimals)}"
                         f" | {_fmt(summary['distill'], scale, decimals)} | {per_seed} | "
                         f"{_fmt(summary['difference'], scale, decimals)} |")
    return "\n".join(lines) + "\n", numbers


def per_sequence_table(evaluations: Mapping[tuple[str, int], Mapping[str, Any]],
                       set_names: Sequence[str], seeds: Sequence[int]) -> str:
    """Per test sequence, each arm's mean over the seeds: AP50, IDF1, IDSW (where it helps)."""
    header = ("| sequence | AP50 baseline / distill | IDF1 baseline / distill | "
              "IDSW baseline / distill |")
    lines = [header, "|---|---:|---:|---:|"]
    for set_name in set_names:
        first = evaluations[(BASELINE, seeds[0])]["sets"][set_name]
        for seq in first["detection"]["per_sequence"]:
            cells = []
            for source, key, scale, decimals in (("detection", "AP50", 100.0, 1),
                                                 ("tracking", "IDF1", 100.0, 1),
                                                 ("tracking", "IDSW", 1.0, 1)):
                means = []
                for arm in ARMS:
                    values = []
                    for s in seeds:
                        block = evaluations[(arm, s)]["sets"][set_name][source]
                        row = (block["per_sequence"][seq] if source == "detection"
                               else block[seq])
                        values.append(row[key])
                    means.append(f"{scale * statistics.fmean(values):.{decimals}f}")
                cells.append(" / ".join(means))
            lines.append(f"| {seq} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def distill_curve(student: Mapping[str, Any]) -> list[float]:
    """The epoch means of the distillation term (1 - cos) of a student run (empty: none)."""
    metrics = Path(student["checkpoint"]).parents[1] / "csv" / "metrics.csv"
    with metrics.open(encoding="utf-8") as handle:
        return [float(row[DISTILL_COLUMN]) for row in csv.DictReader(handle)
                if row.get(DISTILL_COLUMN, "") not in ("", None)]


def _student_line(arm: str, seed: int, student: Mapping[str, Any]) -> str:
    curve = distill_curve(student)
    term = f"{curve[0]:.3f} / {curve[-1]:.3f}" if curve else "-"
    return (f"| {arm} | {seed} | {student['val_AP50']:.3f} | {student['train_identity']:.3f} | "
            f"{term} | {student['seconds']:.0f} s |")


# ================================================================================ main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (teacher, students, evaluations, results.md)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every run")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data",
                        help="where the synthetic sequences are rendered (paths.data_dir)")
    parser.add_argument("--shared-data", type=Path, default=REPO_ROOT.parent / "shared" / "data",
                        help="the real data (TUD-Campus, TUD-Stadtmitte under mot/)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for main.py")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    out, data_dir = args.out.resolve(), args.data_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    tud = [args.shared_data.resolve() / "mot" / name for name in TUD_SEQUENCES]
    missing = [str(p) for p in tud if not (p / "gt" / "gt.txt").is_file()]
    if missing:
        raise ReidsortError(f"TUD sequences with ground truth not found: {missing} "
                            "(--shared-data)")

    train_specs, val_specs = study_sources()
    train_folders = [render(data_dir, spec) for spec in train_specs]
    held_out = {*map(str, train_folders), *(str(render(data_dir, s)) for s in val_specs)}
    test_folders = [render(data_dir, {"type": "synthetic", **spec}) for spec in TEST_SEQUENCES]
    if held_out & set(map(str, test_folders)):
        raise ReidsortError("a test sequence is also a training or validation sequence")
    test_sets = {SYNTHETIC_SET: test_folders, TUD_SET: tud}

    teacher = train_teacher(out, args.python, data_dir, train_folders, args.threads)
    print(f"teacher: {teacher['checkpoint']} (held-out training-sequence people: mAP "
          f"{teacher['test_mAP']:.3f}, Rank-1 {teacher['test_rank1']:.3f})", flush=True)
    on_tud = teacher_on_tud(out, args.python, data_dir, teacher["checkpoint"], tud,
                            args.threads)
    students: dict[tuple[str, int], dict[str, Any]] = {}
    evaluations: dict[tuple[str, int], dict[str, Any]] = {}
    for seed in args.seeds:
        for arm in ARMS:
            students[(arm, seed)] = train_student(out, args.python, data_dir, seed, arm,
                                                  teacher["checkpoint"], args.threads)
            evaluations[(arm, seed)] = evaluate_student(
                out, args.python, data_dir, seed, arm, students[(arm, seed)]["checkpoint"],
                test_sets, args.threads)

    table, numbers = results_table(evaluations, list(test_sets), args.seeds)
    sequences = per_sequence_table(evaluations, list(test_sets), args.seeds)
    train_lines = "\n".join(_student_line(arm, s, students[(arm, s)])
                            for s in args.seeds for arm in ARMS)
    wall = time.perf_counter() - started
    steps = (sum(teacher["seconds"].values()) + sum(v["seconds"] for v in students.values())
             + sum(sum(v["seconds"].values()) for v in evaluations.values()))
    report = (
        f"# FairMOT distillation study ({STUDY_RECIPE}, seeds {args.seeds})\n\n"
        f"Machine: {machine_line()}; torch threads {args.threads}. Wall time of the steps "
        f"(teacher, students, scoring; whether run now or reused): {steps:.0f} s; this "
        f"invocation: {wall:.0f} s.\n\n"
        f"Teacher: {teacher['checkpoint']}: held-out training-sequence people mAP "
        f"{teacher['test_mAP']:.3f}, Rank-1 {teacher['test_rank1']:.3f}; train "
        f"{teacher['seconds']['train']:.0f} s. On the TUD people ({on_tud['identities']} "
        f"identities, {on_tud['queries']} queries / {on_tud['gallery']} gallery crops): mAP "
        f"{on_tud['mAP']:.3f}, Rank-1 {on_tud['rank1']:.3f}; colour histogram "
        f"{on_tud['histogram_mAP']:.3f} / {on_tud['histogram_rank1']:.3f}.\n\n"
        "Held-out sets (scores of last.ckpt, in %; IDSW a count; mean ± sd over seeds):\n\n"
        f"{table}\nPer sequence (mean over seeds):\n\n{sequences}\n"
        "| arm | seed | val AP50 (SYNTH-CPU-VAL, after the last epoch) | final train identity "
        "loss | distillation 1 - cos, first / last epoch | train wall time |\n"
        "|---|---:|---:|---:|---:|---:|\n" + train_lines + "\n")
    atomic_write_text(out / "results.md", report)
    atomic_write_text(out / "results.json", json.dumps(
        {"teacher": teacher, "teacher_on_tud": on_tud,
         "students": {f"{a}-s{s}": {**v, "distill_curve": distill_curve(v)}
                      for (a, s), v in students.items()},
         "evaluations": {f"{a}-s{s}": v for (a, s), v in evaluations.items()},
         "summary": numbers, "machine": machine_line(), "step_seconds": steps,
         "wall_seconds": wall},
        indent=1, sort_keys=True, default=float) + "\n")
    print("\n" + report, flush=True)
    print(f"results: {out / 'results.md'} and {out / 'results.json'}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ReidsortError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
