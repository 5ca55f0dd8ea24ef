"""The FairMOT distillation study (experiments/distill_study.py): its student recipe composes
with the study's values on the CPU recipe's data, the two arms of a seed differ only in the
distillation option (which composes into a valid ``distill`` config), the test sequences are
disjoint from the training and validation ones, detection AP per sequence under the names
task=track gives its sources, and the paired summary / table arithmetic."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, compose_config
from jde_samples import tiny_net, write_jde_checkpoint
from omegaconf import OmegaConf

from reidsort.data.synthetic.mot import ensure_synthetic_mot
from reidsort.jde.distill import distill_enabled, plain_config
from reidsort.utils.errors import ReidsortError

STUDY_SCRIPT = REPO_ROOT / "experiments" / "distill_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("distill_study", STUDY_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["distill_study"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("distill_study", None)


def test_student_recipe_is_the_cpu_recipe_smaller(tmp_path):
    study_cfg = compose_config(["experiment=fairmot_distill_study"], tmp_path / "a")
    cpu_cfg = compose_config(["experiment=fairmot_cpu"], tmp_path / "b")
    jde, cpu = study_cfg.jde, cpu_cfg.jde
    assert list(jde.data.input_size) == [192, 256]
    assert jde.max_epochs == 4 and list(jde.scheduler.milestones) == [3]
    assert study_cfg.trainer.check_val_every_n_epoch == 4  # validated once, at the end
    assert study_cfg.task.name == "jde" and jde.model.backbone == "mobilenet_v2"
    assert jde.distill is None
    # same data, model and optimiser as the CPU recipe
    for key in ("sources", "val_sources"):
        assert OmegaConf.to_container(jde.data[key]) == OmegaConf.to_container(cpu.data[key])
    assert jde.data.batch_size == cpu.data.batch_size
    assert OmegaConf.to_container(jde.model) == OmegaConf.to_container(cpu.model)
    assert jde.optimizer.lr == cpu.optimizer.lr and list(jde.freeze) == list(cpu.freeze)


def test_arms_of_a_seed_differ_only_in_distillation(study, tmp_path):
    baseline = study.student_overrides(2, study.BASELINE, "/teacher/last.ckpt")
    distill = study.student_overrides(2, study.DISTILL, "/teacher/last.ckpt")
    assert distill[:len(baseline)] == baseline and len(distill) == len(baseline) + 1
    assert "seed=2" in baseline
    cfg = compose_config(distill, tmp_path / "run")
    options = plain_config(OmegaConf.to_container(cfg.jde.distill))
    assert distill_enabled(options)
    assert options["reid"]["path"] == "/teacher/last.ckpt"
    assert options["reid"]["embedding_weight"] == 1.0
    assert options["reid"]["embedding_loss"] == "cosine"
    assert options["jde"] is None
    with pytest.raises(ReidsortError, match="teacher"):
        study.student_overrides(1, study.DISTILL, None)
    with pytest.raises(ReidsortError, match="unknown arm"):
        study.student_overrides(1, "both", "/t.ckpt")


def test_test_sequences_are_not_training_or_validation_sequences(study):
    train, val = study.study_sources()
    seen = {(s["seed"], s["name"]) for s in [*train, *val]}
    seeds = {seed for seed, _ in seen}
    names = {name for _, name in seen}
    for spec in study.TEST_SEQUENCES:
        assert spec["seed"] not in seeds and spec["name"] not in names
    assert len(train) == 12 and len(val) == 1


def test_paired_summary_is_per_seed_distill_minus_baseline(study):
    summary = study.paired_summary({1: 0.50, 2: 0.60, 3: 0.70}, {1: 0.55, 2: 0.58, 3: 0.79})
    assert summary["differences"] == pytest.approx({1: 0.05, 2: -0.02, 3: 0.09})
    mean, sd = summary["difference"]
    assert mean == pytest.approx(0.04)
    # sample sd of (0.05, -0.02, 0.09) around 0.04: sqrt((0.0001 + 0.0036 + 0.0025) / 2)
    assert sd == pytest.approx(math.sqrt(0.0031))
    assert summary["baseline"] == pytest.approx((0.60, 0.10))
    one = study.paired_summary({1: 1.0}, {1: 3.0, 2: 5.0})  # only seeds in both arms count
    assert one["differences"] == {1: 2.0} and math.isnan(one["difference"][1])


def test_results_table_rows(study):
    def evaluation(ap: float, idsw: float) -> dict:
        row = {"AP50": ap, "HOTA": 0.4, "IDF1": 0.5, "IDSW": idsw, "MOTA": 0.3, "AssA": 0.45}
        return {"sets": {"synthetic": row}}

    evaluations = {("baseline", 1): evaluation(0.80, 10), ("distill", 1): evaluation(0.82, 7),
                   ("baseline", 2): evaluation(0.70, 12), ("distill", 2): evaluation(0.69, 12)}
    table, numbers = study.results_table(evaluations, ["synthetic"], [1, 2])
    lines = table.splitlines()
    assert len(lines) == 2 + len(study.TABLE_ROWS)
    ap_line = next(line for line in lines if "| AP50 |" in line)
    assert "75.0 ± 7.1" in ap_line and "75.5 ± 9.2" in ap_line and "+2.0 / -1.0" in ap_line
    idsw = numbers["synthetic/IDSW"]
    assert idsw["differences"] == {1: -3.0, 2: 0.0}
    assert idsw["difference"][0] == pytest.approx(-1.5)


def test_last_logged_reads_the_last_value_of_a_column(study, tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,val/AP50,train/loss\n0,,3.0\n1,0.25,\n2,,2.0\n3,0.5,\n")
    assert study.last_logged(metrics, "val/AP50") == 0.5
    assert study.last_logged(metrics, "train/loss") == 2.0
    assert math.isnan(study.last_logged(metrics, "test/mAP"))


def test_detection_ap_names_sequences_as_task_track_does(study, tmp_path, synthetic_data_dir):
    # a constant heatmap logit and box size: every cell is a detection of one known size
    checkpoint = write_jde_checkpoint(tiny_net(seed=3, heat_bias=0.0, size_bias=(6.0, 12.0)),
                                      tmp_path / "last.ckpt")
    folders = [ensure_synthetic_mot(synthetic_data_dir, name=name, seed=seed, num_frames=2,
                                    width=128, height=96, num_people=3, num_pillars=0)
               for name, seed in (("DST-A", 1), ("DST-B", 2))]
    result = study.detection_ap(str(checkpoint), folders, threads=1)
    # the seqinfo names (task=track's source names), not the cached folders' hashed names
    assert sorted(result["per_sequence"]) == ["DST-A", "DST-B"]
    counts = []
    for folder in folders:
        gt = np.loadtxt(folder / "gt" / "gt.txt", delimiter=",", ndmin=2)
        counts.append(int((gt[:, 6] == 1).sum()))  # the people the evaluation considers
    assert [result["per_sequence"][n]["num_gt"] for n in ("DST-A", "DST-B")] == counts
    assert result["pooled"]["num_gt"] == sum(counts)
    for scores in (result["pooled"], *result["per_sequence"].values()):
        assert 0.0 <= scores["AP50"] <= 1.0
