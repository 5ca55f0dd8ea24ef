from pathlib import Path

import cv2
import numpy as np
import pytest

from reidsort.data.datasets import (
    camera_from_name,
    read_identity_folders,
    read_market1501,
    relabel,
    split_identities,
)
from reidsort.data.image_io import read_image_rgb
from reidsort.data.verify import drop_unreadable


def _write(path: Path, value: int = 128, shape=(16, 8, 3)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def test_camera_from_name():
    assert camera_from_name("0002_c3s1_000451_03.jpg") == 3
    assert camera_from_name("0001C6T0003F011.jpg") == 6
    assert camera_from_name("-1_c1s1_000000_00.jpg") == 1
    assert camera_from_name("frame_0001.png") is None


def test_market_reader_drops_junk_keeps_distractors(tmp_path):
    _write(tmp_path / "bounding_box_train" / "0002_c1s1_000001_00.jpg")
    _write(tmp_path / "bounding_box_train" / "0000_c1s1_000001_00.jpg")
    _write(tmp_path / "query" / "0005_c1s1_000001_00.jpg")
    _write(tmp_path / "bounding_box_test" / "0005_c2s1_000001_00.jpg")
    _write(tmp_path / "bounding_box_test" / "0000_c2s1_000002_00.jpg")
    _write(tmp_path / "bounding_box_test" / "-1_c2s1_000003_00.jpg")
    (tmp_path / "bounding_box_test" / "Thumbs.db").write_bytes(b"x")
    split = read_market1501(tmp_path)
    assert [r.pid for r in split.train] == [2]
    assert sorted(r.pid for r in split.gallery) == [0, 5]
    assert split.query[0].camid == 1


def test_market_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root"):
        read_market1501(tmp_path / "missing")
    _write(tmp_path / "bounding_box_train" / "frame1.jpg")
    with pytest.raises(ValueError, match="frame1.jpg"):
        read_market1501(tmp_path)


def test_market_reader_on_real_mini_market(shared_data):
    split = read_market1501(shared_data / "reid" / "mini_market1501")
    assert len(split.query) == 32 and len(split.gallery) == 32 and len(split.train) == 32
    assert len({r.pid for r in split.query}) == 16
    assert {r.pid for r in split.query} == {r.pid for r in split.gallery}
    assert not {r.pid for r in split.train} & {r.pid for r in split.query}


def test_identity_folders_and_split(tmp_path):
    for pid in range(6):
        for i in range(4):
            _write(tmp_path / f"person{pid}" / f"{pid:04d}_c{i % 2 + 1}s1_{i:06d}_00.jpg")
    records = read_identity_folders(tmp_path)
    assert len(records) == 24 and {r.camid for r in records} == {1, 2}
    split = split_identities(records, 0.5, seed=3)
    train_pids = {r.pid for r in split.train}
    val_pids = {r.pid for r in split.query} | {r.pid for r in split.gallery}
    assert len(train_pids) == 3 and len(val_pids) == 3 and not train_pids & val_pids
    assert len(split.query) == 3  # one query per validation identity
    for q in split.query:  # a true match in another camera exists
        assert any(g.pid == q.pid and g.camid != q.camid for g in split.gallery)
    assert split_identities(records, 0.5, seed=3) == split
    labels, mapping = relabel(split.train)
    assert sorted(set(labels)) == [0, 1, 2] and len(mapping) == 3


def test_identity_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="no identity sub-folders"):
        read_identity_folders(tmp_path)
    (tmp_path / "empty_id").mkdir()
    with pytest.raises(ValueError, match="empty_id"):
        read_identity_folders(tmp_path)


def test_split_needs_room_for_both_sides(tmp_path):
    for pid in range(2):
        for i in range(2):
            _write(tmp_path / f"p{pid}" / f"img{i}.png")
    records = read_identity_folders(tmp_path)
    with pytest.raises(ValueError, match="val_identities"):
        split_identities(records, 2, seed=0)


def test_bad_images_are_dropped_and_counted(tmp_path):
    good = _write(tmp_path / "p" / "good.jpg")
    gray = tmp_path / "p" / "gray.png"
    cv2.imwrite(str(gray), np.full((10, 5), 77, np.uint8))
    deep = tmp_path / "p" / "deep.png"
    cv2.imwrite(str(deep), np.full((10, 5, 3), 40000, np.uint16))
    rgba = tmp_path / "p" / "alpha.png"
    cv2.imwrite(str(rgba), np.full((10, 5, 4), 200, np.uint8))
    text = tmp_path / "p" / "text.jpg"
    text.write_text("not an image")
    truncated = tmp_path / "p" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:20])
    for path in (gray, deep, rgba):
        image = read_image_rgb(path)
        assert image is not None and image.shape[2] == 3 and image.dtype == np.uint8
    from reidsort.data.datasets import ImageRecord

    records = [ImageRecord(str(p), 0, 1) for p in (good, gray, deep, rgba, text, truncated)]
    kept, bad = drop_unreadable(records, num_threads=2)
    assert len(kept) == 4
    assert sorted(Path(b).name for b in bad) == ["text.jpg", "truncated.jpg"]
