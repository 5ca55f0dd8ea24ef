"""Readers of the public dataset layouts, the scan-read-filter pipeline, and task=convert."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate

from conftest import compose_config
from reidsort.data.datasets import read_dataset, read_identity_folders, read_market1501
from reidsort.data.loading import ScanSettings, finalize_split, load_dataset
from reidsort.tasks.convert import convert

JPEG = cv2.imencode(".jpg", np.full((32, 16, 3), 90, np.uint8))[1].tobytes()


def _put(root: Path, *rels: str, data: bytes = JPEG) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_dukemtmc_names(tmp_path):
    _put(tmp_path, "bounding_box_train/0001_c2_f0046182.jpg",
         "bounding_box_train/0001_c3_f0046999.jpg",
         "query/0005_c1_f0000001.jpg", "bounding_box_test/0005_c8_f0000101.jpg",
         "bounding_box_test/0000_c2_f0000200.jpg")
    split = read_dataset("dukemtmc", tmp_path)
    assert [(r.pid, r.camid) for r in split.train] == [(1, 2), (1, 3)]
    assert sorted((r.pid, r.camid) for r in split.gallery) == [(0, 2), (5, 8)]
    with pytest.raises(FileNotFoundError, match="DukeMTMC-reID split folder not found"):
        read_dataset("dukemtmc", tmp_path / "bounding_box_train")


def _msmt(root: Path, train_dir: str = "train", test_dir: str = "test") -> None:
    train = ["0000/0000_000_01_0303morning_0015_0.jpg", "0000/0000_001_05_0303morning_0020_1.jpg",
             "0001/0001_000_15_0303noon_0100_0.jpg"]
    val = ["0002/0002_000_02_0303noon_0200_0.jpg"]
    query = ["0000/0000_000_03_0113morning_0001_0.jpg"]
    gallery = ["0000/0000_004_07_0113noon_0050_0.jpg", "0001/0001_000_03_0113noon_0001_0.jpg"]
    for folder, names in ((train_dir, train + val), (test_dir, query + gallery)):
        _put(root, *(f"{folder}/{n}" for n in names))
    for name, items in (("list_train", train), ("list_val", val), ("list_query", query),
                        ("list_gallery", gallery)):
        lines = [f"{n} {int(n[:4])}\n" for n in items]
        if name == "list_gallery":
            lines.append("0009/0009_000_01_0113noon_0001_0.jpg 9\n")  # listed, not on disk
        (root / f"{name}.txt").write_text("".join(lines))


@pytest.mark.parametrize("dirs", [("train", "test"), ("mask_train_v2", "mask_test_v2")])
def test_msmt17_list_files(tmp_path, dirs):
    _msmt(tmp_path, *dirs)
    loaded = load_dataset("msmt17", tmp_path)
    split = loaded.split
    assert [(r.pid, r.camid) for r in split.train] == [(1, 1), (1, 5), (2, 15), (3, 2)]
    assert [(r.pid, r.camid) for r in split.query] == [(1, 3)]
    assert [(r.pid, r.camid) for r in split.gallery] == [(1, 7), (2, 3)]
    assert loaded.notes["listed_images_missing"] == 1
    assert all(Path(r.path).is_file() for r in split.train + split.query + split.gallery)


def test_msmt17_errors(tmp_path):
    _msmt(tmp_path)
    (tmp_path / "list_query.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_query.txt"):
        load_dataset("msmt17", tmp_path)
    (tmp_path / "list_query.txt").write_text("0000/0000_000_03_0113morning_0001_0.jpg\n")
    with pytest.raises(ValueError, match="list_query.txt:1"):
        load_dataset("msmt17", tmp_path)


def _mars_name(pid: str, cam: int, tracklet: int, frame: int) -> str:
    return f"{pid}C{cam}T{tracklet:04d}F{frame:03d}.jpg"


def test_mars_with_official_info(tmp_path):
    from scipy.io import savemat

    _put(tmp_path, *(f"bbox_train/0002/{_mars_name('0002', c, 1, f)}" for c in (1, 2)
                     for f in range(1, 3)))
    _put(tmp_path, f"bbox_train/00-1/{_mars_name('00-1', 1, 1, 1)}")  # junk
    test_names = []
    tracks = []
    for pid, cam, tracklet in (("0005", 1, 1), ("0005", 3, 2), ("0000", 2, 3), ("00-1", 2, 4)):
        start = len(test_names) + 1
        for f in range(1, 4):
            test_names.append(_mars_name(pid, cam, tracklet, f))
        tracks.append([start, len(test_names), -1 if pid == "00-1" else int(pid), cam])
    _put(tmp_path, *(f"bbox_test/{n[:4]}/{n}" for n in test_names))
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "test_name.txt").write_text("\n".join(test_names) + "\n")
    savemat(tmp_path / "info" / "tracks_test_info.mat", {"track_test_info": np.array(tracks)})
    savemat(tmp_path / "info" / "query_IDX.mat", {"query_IDX": np.array([[1]])})
    loaded = load_dataset("mars", tmp_path)
    split = loaded.split
    assert {(r.pid, r.camid) for r in split.train} == {(2, 1), (2, 2)}
    assert len(split.train) == 4 and loaded.notes["junk_images_dropped"] == 1
    # one image per tracklet: the middle frame; the junk tracklet is left out
    assert [os.path.basename(r.path) for r in split.query] == ["0005C1T0001F002.jpg"]
    assert [os.path.basename(r.path) for r in split.gallery] == ["0005C3T0002F002.jpg",
                                                                "0000C2T0003F002.jpg"]


def test_mars_without_info_and_training_only(tmp_path):
    for pid in ("0003", "0004"):
        _put(tmp_path, *(f"bbox_test/{pid}/{_mars_name(pid, c, c, f)}" for c in (1, 2)
                         for f in (1, 2)))
        _put(tmp_path, *(f"bbox_train/1{pid[1:]}/{_mars_name('1' + pid[1:], 1, 1, f)}"
                         for f in (1, 2)))
    split = load_dataset("mars", tmp_path).split
    assert {r.pid for r in split.query} == {3, 4} and len(split.query) == 2
    assert len(split.gallery) == 6
    for q in split.query:  # a true match in another camera exists
        assert any(g.pid == q.pid and g.camid != q.camid for g in split.gallery)
    import shutil

    shutil.rmtree(tmp_path / "bbox_test")
    loaded = load_dataset("mars", tmp_path)
    assert not loaded.split.query
    with pytest.raises(ValueError, match="val_identities"):
        finalize_split(loaded, val_identities=None, seed=0, min_samples=None, root=tmp_path)


def test_mini_mars_as_mars_and_as_folders(shared_data):
    root = shared_data / "reid" / "mini_mars"
    loaded = load_dataset("mars", root, settings=ScanSettings(cache=False))
    folders = read_identity_folders(root / "bbox_train")
    assert len(loaded.split.train) == len(folders) == 1719
    # numeric identity folders keep their numbers: the same pids both ways
    assert sorted((Path(r.path).name, r.pid, r.camid) for r in loaded.split.train) == \
        sorted((Path(r.path).name, r.pid, r.camid) for r in folders)
    assert len({r.pid for r in folders}) == 16


def test_folder_reader_pids_and_nesting(tmp_path):
    _put(tmp_path, "b/x.jpg", "b/cam2/y.jpg", "a/0001_c3s1_000001_00.jpg", "top.jpg")
    (tmp_path / "empty").mkdir()
    records = read_identity_folders(tmp_path)
    assert [(Path(r.path).name, r.pid, r.camid) for r in records] == [
        ("0001_c3s1_000001_00.jpg", 1, 3), ("y.jpg", 2, -1), ("x.jpg", 2, -1)]
    numeric = tmp_path / "numeric"
    _put(numeric, "0007/a.jpg", "0012/b.jpg")
    assert [r.pid for r in read_identity_folders(numeric)] == [7, 12]


def test_load_dataset_drops_and_counts_invalid_files(tmp_path):
    _put(tmp_path, "bounding_box_train/0001_c1s1_000001_00.jpg",
         "bounding_box_train/0001_c2s1_000001_00.jpg", "query/0002_c1s1_000001_00.jpg",
         "bounding_box_test/0002_c2s1_000001_00.jpg", "gt_bbox/0003_c1s1_000001_00.jpg")
    _put(tmp_path, "bounding_box_train/0001_c3s1_000001_00.jpg", data=JPEG[:100])
    _put(tmp_path, "gt_bbox/0003_c2s1_000001_00.jpg", data=b"")  # not part of the dataset
    loaded = load_dataset("market1501", tmp_path)
    assert len(loaded.split.train) == 2
    assert loaded.invalid["train"] == [
        (str(tmp_path / "bounding_box_train/0001_c3s1_000001_00.jpg"), "truncated")]
    assert loaded.num_invalid == 1  # the broken file outside the split folders is not counted
    assert loaded.notes["images_outside_split_folders"] == 2
    assert loaded.scans[0].counts()["invalid"] == 2  # ...but the scan reports it
    # the name-only reader keeps the truncated file (no content checks) but not empty files
    assert len(read_market1501(tmp_path).train) == 3


def test_datamodule_min_samples_and_report(tmp_path):
    for pid, count in ((1, 3), (2, 1), (3, 2), (4, 4)):
        _put(tmp_path / "ids", *(f"p{pid}/{i}.jpg" for i in range(count)))
    cfg = compose_config(["data=folder", f"data.root={tmp_path / 'ids'}", "data.val_identities=1",
                          "data.min_samples=2", "data.p=2", "seed=3"], tmp_path / "run")
    dm = instantiate(cfg.data)
    dm.setup()
    report = dm.report()
    # seed 3 holds out p4; p2 (one image) is dropped from training, p1 and p3 stay
    assert report["used"]["dropped_identities_min_samples"] == {"2": 1}
    assert {r.pid for r in dm.split.train} == {1, 3} and len(dm.split.train) == 5
    assert {r.pid for r in dm.split.query} == {4}
    assert dm.summary()["dropped_identities"] == 1
    json.dumps(report)  # JSON-ready


def test_convert_task_round_trip(shared_data, tmp_path):
    source = shared_data / "reid" / "mini_market1501"
    out = tmp_path / "folders"
    cfg = compose_config(["task=convert", "data=market1501", f"data.root={source}",
                          f"task.out={out}", "data.scan.cache=false"], tmp_path / "run")
    metrics = convert(cfg)
    assert metrics["convert/query_images"] == 32 and metrics["convert/gallery_images"] == 32
    original = read_market1501(source)
    for name in ("train", "query", "gallery"):
        back = read_identity_folders(out / name)
        assert sorted((Path(r.path).name, r.pid, r.camid) for r in back) == sorted(
            (Path(r.path).name, r.pid, r.camid) for r in getattr(original, name))
        assert all(Path(r.path).is_symlink() for r in back)
    meta = json.loads((out / "convert_meta.json").read_text())
    assert meta["mode"] == "symlink"
    with pytest.raises(Exception, match="overwrite"):
        convert(cfg)


def test_convert_copies_and_renames_names_without_cameras(tmp_path):
    _msmt(tmp_path / "msmt")
    out = tmp_path / "out"
    cfg = compose_config(["task=convert", "data=msmt17", f"data.root={tmp_path / 'msmt'}",
                          f"task.out={out}", "task.mode=copy", "task.splits=[train]"],
                         tmp_path / "run")
    convert(cfg)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert files == ["train/0001/0001_c1_0000_000_01_0303morning_0015_0.jpg",
                     "train/0001/0001_c5_0000_001_05_0303morning_0020_1.jpg",
                     "train/0002/0002_c15_0001_000_15_0303noon_0100_0.jpg",
                     "train/0003/0003_c2_0002_000_02_0303noon_0200_0.jpg"]
    assert not any(p.is_symlink() for p in out.rglob("*.jpg"))
    assert {(r.pid, r.camid) for r in read_identity_folders(out / "train")} == {
        (1, 1), (1, 5), (2, 15), (3, 2)}


def test_scan_task_on_real_mini_market(shared_data, tmp_path):
    from reidsort.tasks.scan import scan

    root = shared_data / "reid" / "mini_market1501"
    cfg = compose_config(["task=scan", "data=market1501", f"data.root={root}"], tmp_path / "run",
                         data_dir=tmp_path / "data")
    metrics = scan(cfg)
    # 2 of the 16 training identities (val_identities 0.1) validate; query/gallery = test
    assert metrics["data/train_identities"] == 14 and metrics["data/val_query_identities"] == 2
    assert metrics["data/train_images"] + metrics["data/val_query_images"] \
        + metrics["data/val_gallery_images"] == 32
    assert metrics["data/test_query_images"] == metrics["data/test_gallery_images"] == 32
    assert metrics["scan/invalid"] == 0
    assert metrics["scan/valid"] == 96
    report = json.loads((tmp_path / "run" / "scan_report.json").read_text())
    cache_path = report["scans"][0]["cache"]["path"]
    if not os.access(root, os.W_OK) or not os.stat(root).st_mode & 0o222:
        # the shared data is read-only: the cache went to paths.data_dir, never into it
        assert cache_path.startswith(str(tmp_path / "data"))
        assert not (root / ".reidsort_cache").exists()
    assert scan(cfg)["scan/valid"] == 96
    again = json.loads((tmp_path / "run" / "scan_report.json").read_text())
    assert again["scans"][0]["cache"]["hit"]
