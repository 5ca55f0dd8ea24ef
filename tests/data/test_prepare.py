"""task=prepare: Re-ID crops (Market-1501 layout) and FairMOT labels from MOT ground truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import compose_config
from reidsort.data.datasets import read_market1501
from reidsort.data.prepare import PrepareOptions, prepare_reid_from_mot
from reidsort.tasks.prepare import prepare
from reidsort.utils.errors import ReidsortError

WIDTH, HEIGHT = 200, 160


def _sequence(root: Path, name: str, frames: int, rows: list[str]) -> Path:
    seq = root / name
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=25\nseqLength={frames}\n"
        f"imWidth={WIDTH}\nimHeight={HEIGHT}\nimExt=.jpg\n")
    rng = np.random.default_rng(len(name))
    for frame in range(1, frames + 1):
        image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        cv2.imwrite(str(seq / "img1" / f"{frame:06d}.jpg"), image)
    (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return seq


def _mot16_rows() -> list[str]:
    rows = []
    for f in range(1, 13):
        rows.append(f"{f},1,10,20,30,80,1,1,1.0")  # kept
        rows.append(f"{f},2,60,30,25,70,1,1,{0.1 if f <= 6 else 0.9}")  # occluded first half
        rows.append(f"{f},3,100,40,40,40,1,3,1.0")  # a car
        rows.append(f"{f},4,120,20,30,80,0,1,1.0")  # flagged ignore
        rows.append(f"{f},5,150,10,12,20,1,1,1.0")  # too small
        rows.append(f"{f},6,-50,20,60,90,1,1,1.0")  # mostly outside the image
    return rows


def _mot15_rows() -> list[str]:
    # MOT15 layout: no class, no visibility, -1 placeholders for the world coordinates
    return [f"{f},{t},{20 + 60 * t},{30},{28},{75},1,-1,-1,-1" for f in range(1, 9)
            for t in (1, 2)]


@pytest.fixture
def sequences(tmp_path) -> list[Path]:
    return [_sequence(tmp_path / "mot", "SEQ-A", 12, _mot16_rows()),
            _sequence(tmp_path / "mot", "SEQ-B", 8, _mot15_rows())]


OPTIONS = PrepareOptions(frame_step=1, min_height=40, min_width=15, test_identities=2, seed=1)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg"))


def test_filters_ids_cameras_and_split(sequences, tmp_path):
    out = tmp_path / "out"
    meta = prepare_reid_from_mot(sequences, out, OPTIONS)
    # pids over pedestrian tracks (class 1 or no class, not ignored) by (sequence, track id)
    assert [(i["pid"], i["sequence"], i["track_id"]) for i in meta["identities"]] == [
        (1, "SEQ-A", 1), (2, "SEQ-A", 2), (3, "SEQ-A", 5), (4, "SEQ-A", 6),
        (5, "SEQ-B", 1), (6, "SEQ-B", 2)]
    assert meta["boxes_skipped"] == {
        "between_frame_steps": 0, "identity_with_too_few_crops": 0,
        "ignored_or_not_pedestrian": 24, "low_visibility": 6, "mostly_outside_image": 12,
        "too_small": 12}
    split = read_market1501(out)
    crops = {pid: sum(r.pid == pid for r in split.train + split.query + split.gallery)
             for pid in range(1, 7)}
    assert crops == {1: 12, 2: 6, 3: 0, 4: 0, 5: 8, 6: 8}
    train_pids = {r.pid for r in split.train}
    test_pids = {r.pid for r in split.query}
    assert len(test_pids) == 2 and not train_pids & test_pids
    assert train_pids | test_pids == {1, 2, 5, 6}
    assert {r.pid for r in split.gallery} == test_pids
    sequence_of = {1: 1, 2: 1, 5: 2, 6: 2}
    for r in split.train:
        assert r.camid == sequence_of[r.pid]  # camera = sequence index
    for pid in test_pids:
        queries = sorted((r for r in split.query if r.pid == pid), key=lambda r: r.camid)
        cam = sequence_of[pid]
        assert [q.camid for q in queries] == [cam, cam + 2]  # early half, late half
        frames = [int(Path(r.path).name.split("_")[2]) for r in split.gallery + split.query
                  if r.pid == pid]
        early_query = int(Path(queries[0].path).name.split("_")[2])
        late_query = int(Path(queries[1].path).name.split("_")[2])
        assert early_query == min(frames) and late_query == max(frames)
        for q in queries:  # the Market protocol finds a match in the other "camera"
            assert any(g.pid == pid and g.camid != q.camid for g in split.gallery)
    # crops are the ground-truth boxes (x 10, y 20, 30 x 80) cut from their frames
    [crop_path] = out.glob("*/0001_c*s1_000003_00.jpg")
    crop = cv2.imread(str(crop_path)).astype(np.float64)
    frame = cv2.imread(str(sequences[0] / "img1" / "000003.jpg")).astype(np.float64)
    assert crop.shape[:2] == (80, 30)
    assert np.abs(crop - frame[20:100, 10:40]).mean() < np.abs(crop - frame[30:110, 12:42]).mean()


def test_more_queries_per_half_are_spread_over_each_half(sequences, tmp_path):
    options = PrepareOptions(frame_step=1, min_height=40, min_width=15, test_identities=1,
                             queries_per_half=3, seed=1)
    prepare_reid_from_mot(sequences[:1], tmp_path / "out", options, fairmot_labels=False)
    split = read_market1501(tmp_path / "out")
    # SEQ-A: track 1 (12 crops, frames 1-12) is the only identity with 2 x (3 + 1) crops
    query_frames = sorted(int(Path(r.path).name.split("_")[2]) for r in split.query)
    # early half 1-6: indices 0, 2, 4 from its start; late half 7-12: the same from its end
    assert query_frames == [1, 3, 5, 8, 10, 12]
    assert {r.camid for r in split.query if int(Path(r.path).name.split("_")[2]) <= 6} == {1}
    assert len(split.gallery) == 6 and {r.pid for r in split.query + split.gallery} == {1}
    with pytest.raises(ValueError, match="the 14 crops a query/gallery identity needs"):
        prepare_reid_from_mot(sequences[:1], tmp_path / "x", PrepareOptions(
            frame_step=1, min_height=40, min_width=15, test_identities=1, queries_per_half=6))
    with pytest.raises(ValueError, match="queries_per_half must be >= 1"):
        prepare_reid_from_mot(sequences[:1], tmp_path / "y", PrepareOptions(queries_per_half=0))


def test_frame_step_and_thresholds(sequences, tmp_path):
    options = PrepareOptions(frame_step=3, min_height=40, min_width=15, min_visibility=0.05,
                             test_identities=1, seed=0)
    prepare_reid_from_mot(sequences, tmp_path / "out", options, fairmot_labels=False)
    split = read_market1501(tmp_path / "out")
    frames = {int(Path(r.path).name.split("_")[2])
              for r in split.train + split.query + split.gallery}
    assert frames == {1, 4, 7, 10}
    # visibility 0.1 passes min_visibility 0.05: track 2 keeps all four sampled frames
    assert sum(r.pid == 2 for r in split.train + split.query + split.gallery) == 4
    assert not (tmp_path / "out" / "labels_with_ids").exists()


def test_output_is_deterministic(sequences, tmp_path):
    for out in ("a", "b"):
        prepare_reid_from_mot(sequences, tmp_path / out, OPTIONS, threads=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                     if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*")
                     if p.is_file())
    assert files_a == files_b and len(files_a) > 40
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_fairmot_labels(sequences, tmp_path):
    out = tmp_path / "out"
    meta = prepare_reid_from_mot(sequences, out, OPTIONS)
    lines = (out / "labels_with_ids" / "SEQ-A" / "img1" / "000001.txt").read_text().splitlines()
    # every pedestrian box not flagged ignore: tracks 1, 2, 5, 6 (no size/visibility filter)
    assert [line.split()[:2] for line in lines] == [["0", "1"], ["0", "2"], ["0", "3"], ["0", "4"]]
    values = [float(v) for v in lines[0].split()[2:]]
    assert values == pytest.approx([(10 + 15) / WIDTH, (20 + 40) / HEIGHT, 30 / WIDTH,
                                    80 / HEIGHT], abs=1e-6)
    b_lines = (out / "labels_with_ids" / "SEQ-B" / "img1" / "000008.txt").read_text().split("\n")
    assert [line.split()[1] for line in b_lines if line] == ["5", "6"]
    listed = (out / "mot.train").read_text().split()
    assert len(listed) == 20 and listed[0] == "images/SEQ-A/img1/000001.jpg"
    for rel in listed:  # FairMOT's rule: label path = image path with images -> labels_with_ids
        image = out / rel
        assert image.is_symlink() and image.resolve().is_file()
        label = Path(str(out / rel).replace("/images/", "/labels_with_ids/")).with_suffix(".txt")
        assert label.is_file()
    assert meta["fairmot"] == {"images": 20, "boxes": 4 * 12 + 2 * 8, "identities": 6,
                               "list": "mot.train"}


def test_prepare_task_and_its_errors(sequences, tmp_path):
    out = tmp_path / "out"
    seqs = ",".join(str(s) for s in sequences)
    cfg = compose_config(["task=prepare", f"task.sequences=[{seqs}]", f"task.out={out}",
                          "task.frame_step=1", "task.min_height=40", "task.test_identities=2"],
                         tmp_path / "run")
    metrics = prepare(cfg)
    assert metrics["prepare/query_images"] == 4 and metrics["prepare/query_identities"] == 2
    assert json.loads((out / "prepare_meta.json").read_text())["counts"]["query"]["images"] == 4
    with pytest.raises(ReidsortError, match="overwrite"):
        prepare(cfg)
    # a missing frame fails the run and leaves nothing behind
    os.remove(sequences[1] / "img1" / "000003.jpg")
    broken = tmp_path / "broken"
    with pytest.raises(ValueError, match="000003.jpg"):
        prepare_reid_from_mot(sequences, broken, OPTIONS)
    assert not broken.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".broken")]
    with pytest.raises(ValueError, match="cannot hold out"):
        prepare_reid_from_mot(sequences[:1], tmp_path / "x",
                              PrepareOptions(frame_step=4, min_height=40, test_identities=1))


def test_prepare_on_real_tud_sequences(shared_data, tmp_path):
    from reidsort.tracking.mot_io import read_mot_ground_truth

    seqs = [shared_data / "mot" / "TUD-Campus", shared_data / "mot" / "TUD-Stadtmitte"]
    options = PrepareOptions(frame_step=5, seed=42)
    meta = prepare_reid_from_mot(seqs, tmp_path / "out", options, threads=2)
    split = read_market1501(tmp_path / "out")
    # expected crops computed directly from the gt files
    expected = 0
    for seq in seqs:
        gt = read_mot_ground_truth(seq / "gt" / "gt.txt")
        for frame, (x, y, w, h) in zip(gt.frame_ids, gt.tlwh):
            if (frame - 1) % 5:
                continue
            cx1, cy1, cx2, cy2 = max(x, 0), max(y, 0), min(x + w, 640), min(y + h, 480)
            inside = (cx2 - cx1) * (cy2 - cy1) / (w * h)
            if inside >= 0.75 and np.ceil(cy2) - np.floor(cy1) >= 50:
                expected += 1
    assert len(split.train) + len(split.query) + len(split.gallery) == expected
    assert meta["fairmot"]["boxes"] == 359 + 1156  # every gt box of both sequences
    assert len({i["pid"] for i in meta["identities"]}) == 8 + 10
    assert {r.camid for r in split.train} <= {1, 2}
    assert not {r.pid for r in split.train} & {r.pid for r in split.query}
    assert len(split.query) == 2 * len({r.pid for r in split.query})
    for q in split.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in split.gallery)


@pytest.mark.slow
def test_a_model_trained_on_prepared_tud_data_learns(shared_data, tmp_path):
    """A few CPU minutes of training on the prepared TUD data (12 training identities) lift
    retrieval far above the untrained network; the colour-histogram baseline is reported for
    comparison (on these two single-camera sequences the model only reaches it on some splits:
    benchmarks/RESULTS.md, "Re-ID data from TUD-Campus + TUD-Stadtmitte")."""
    import lightning as L
    import torch
    from hydra.utils import instantiate

    from reidsort.reid.baseline import histogram_baseline
    from reidsort.tasks.train import build_module

    torch.set_num_threads(2)
    seqs = [shared_data / "mot" / "TUD-Campus", shared_data / "mot" / "TUD-Stadtmitte"]
    out = tmp_path / "tud"
    prepare_reid_from_mot(seqs, out, PrepareOptions(frame_step=2, test_identities=6, seed=42),
                          fairmot_labels=False)
    cfg = compose_config([
        "data=market1501", f"data.root={out}", "data.image_size=[64,32]", "data.augment.pad=4",
        "data.p=6", "data.k=4", "data.batches_per_epoch=25", "data.num_workers=0",
        "model=resnet18", "model.backbone.stripes=4", "model.backbone.pretrained=null",
        "optimizer.lr=3e-3", "trainer.max_epochs=8", "scheduler.warmup_epochs=1",
        # all 12 identities train; the prepared query/gallery is the test split
        "data.val_identities=null", "seed=42"], tmp_path / "run", data_dir=tmp_path / "data")
    L.seed_everything(42)
    dm = instantiate(cfg.data)
    dm.setup()
    module = build_module(cfg, dm.num_classes)
    trainer = L.Trainer(accelerator="cpu", max_epochs=8, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    before = trainer.test(module, datamodule=dm, verbose=False)[0]["test/mAP"]
    trainer.fit(module, datamodule=dm)
    after = trainer.test(module, datamodule=dm, verbose=False)[0]["test/mAP"]
    hist = histogram_baseline(dm.final.test_query, dm.final.test_gallery).mAP
    print(f"TUD query/gallery mAP: untrained {before:.3f}, trained {after:.3f}, "
          f"colour histogram {hist:.3f}")
    assert after > before + 0.08, (before, after, hist)


def test_the_readme_tud_prepare_command_gives_the_counts_the_readme_states(shared_data, tmp_path):
    from test_readme_commands import README, overrides_of, readme_command_lines

    (command,) = [c for c in readme_command_lines() if "task=prepare" in c and "TUD-" in c]
    (overrides,) = overrides_of(command.replace("../shared/data", str(shared_data)))
    overrides = [o for o in overrides if not o.startswith("task.out=")]
    metrics = prepare(compose_config([*overrides, f"task.out={tmp_path / 'tud'}"],
                                     tmp_path / "run"))
    count = {key.removeprefix("prepare/"): int(value) for key, value in metrics.items()}
    readme = " ".join(README.read_text().split())
    assert (f"{count['bounding_box_train_images']} training crops of "
            f"{count['bounding_box_train_identities']} identities") in readme
    assert (f"query / gallery of {count['query_images']} / {count['bounding_box_test_images']} "
            f"images of {count['query_identities']} other identities") in readme
