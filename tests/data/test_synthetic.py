"""Synthetic person renderer and Market-1501-style dataset writer."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from reidsort.data.synthetic import (
    GENERATOR_VERSION,
    META_FILENAME,
    CameraStyle,
    Facing,
    Occluder,
    PersonAppearance,
    UpperPattern,
    apply_camera_effects,
    draw_person,
    ensure_synthetic_market1501,
    read_synthetic_meta,
    render_person_crop,
    write_market1501,
)
from reidsort.data.synthetic import market as market_module

#: Market-1501 file names: pid, camera, sequence, frame, detection index.
MARKET_FILE = re.compile(r"^(\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
SPLITS = ("bounding_box_train", "query", "bounding_box_test")
SMALL = dict(
    num_identities=8, num_cameras=3, images_per_identity_camera=2, height=64, width=32,
    train_fraction=0.5,
)


def _parse_split(folder: Path) -> list[tuple[int, int, str]]:
    records = []
    for path in sorted(folder.iterdir()):
        match = MARKET_FILE.match(path.name)
        assert match, f"not a Market-1501 name: {path.name}"
        records.append((int(match.group(1)), int(match.group(2)), path.name))
    return records


def _tree_bytes(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


# --- appearance and cameras -----------------------------------------------------------------------
def test_appearance_is_deterministic_in_identity_and_seed():
    assert PersonAppearance.sample(7, seed=3) == PersonAppearance.sample(7, seed=3)
    assert PersonAppearance.sample(7, seed=3) != PersonAppearance.sample(7, seed=4)
    assert PersonAppearance.sample(7, seed=3) != PersonAppearance.sample(8, seed=3)


def test_identities_differ_but_share_colours():
    people = [PersonAppearance.sample(i) for i in range(60)]
    assert len(set(people)) == 60
    # a modest palette: colours repeat across identities, so colour alone is ambiguous ...
    upper_colours = [p.upper.colour_bgr for p in people]
    assert len(set(upper_colours)) < len(upper_colours) / 3
    # ... while the layout (colour per body part, pattern, accessories) mostly separates them
    layouts = {
        (p.upper.colour_bgr, p.upper.pattern, p.lower.colour_bgr, p.lower.kind, p.backpack_bgr)
        for p in people
    }
    assert len(layouts) >= 50
    assert len({p.upper.pattern for p in people}) == len(UpperPattern)


def test_camera_style_is_deterministic_per_camera():
    assert CameraStyle.sample(2, seed=0) == CameraStyle.sample(2, seed=0)
    assert CameraStyle.sample(2, seed=0) != CameraStyle.sample(3, seed=0)
    assert CameraStyle.sample(2, seed=0) != CameraStyle.sample(2, seed=1)
    with pytest.raises(ValueError, match="camera_id"):
        CameraStyle.sample(-1)


def test_camera_white_balance_tints_the_image():
    camera = dataclasses.replace(
        CameraStyle.sample(1), channel_gains_bgr=(1.3, 1.0, 0.7), brightness=1.0, contrast=1.0,
        blur_sigma=0.0, noise_sigma=0.0, resolution_factor=1.0, jpeg_quality=95,
    )
    grey = np.full((64, 32, 3), 120, np.uint8)
    blue, green, red = apply_camera_effects(grey, camera, np.random.default_rng(0)).mean((0, 1))
    assert blue > green + 15 and green > red + 15


# --- crops ----------------------------------------------------------------------------------------
def test_render_person_crop_is_deterministic_in_rng():
    person, camera = PersonAppearance.sample(4), CameraStyle.sample(1)
    first = render_person_crop(person, camera, np.random.default_rng(11), 128, 64)
    again = render_person_crop(person, camera, np.random.default_rng(11), 128, 64)
    other = render_person_crop(person, camera, np.random.default_rng(12), 128, 64)
    assert first.shape == (128, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 1.0


def test_render_person_crop_size_and_identity_matter():
    camera = CameraStyle.sample(2)
    crop_a = render_person_crop(
        PersonAppearance.sample(1), camera, np.random.default_rng(5), 96, 48,
        facing=Facing.FRONT, phase=0.0, occluder=Occluder.NONE,
    )
    crop_b = render_person_crop(
        PersonAppearance.sample(2), camera, np.random.default_rng(5), 96, 48,
        facing=Facing.FRONT, phase=0.0, occluder=Occluder.NONE,
    )
    assert crop_a.shape == (96, 48, 3)
    # same background, pose and camera noise: only the person differs, in the centre
    centre = (slice(20, 80), slice(12, 36))
    assert np.abs(crop_a[centre].astype(int) - crop_b[centre]).mean() > 5.0
    with pytest.raises(ValueError, match="crop size"):
        render_person_crop(PersonAppearance.sample(1), camera, np.random.default_rng(0), 8, 8)


# --- draw_person ----------------------------------------------------------------------------------
def _noise_frame(height: int = 120, width: int = 100) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "box_xyxy",
    [(20.0, 10.0, 60.0, 110.0), (-25.0, 30.0, 30.0, 160.0), (70.4, -40.2, 130.0, 60.0)],
)
def test_draw_person_only_touches_its_box(box_xyxy):
    frame = _noise_frame()
    before = frame.copy()
    draw_person(frame, PersonAppearance.sample(3), box_xyxy, 1.0, Facing.RIGHT,
                np.random.default_rng(0))
    x1, y1, x2, y2 = (int(round(c)) for c in box_xyxy)
    inside = np.zeros(frame.shape[:2], bool)
    inside[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    changed = np.any(frame != before, axis=2)
    assert not changed[~inside].any()
    assert changed[inside].mean() > 0.15  # a person was drawn in the visible part of the box


def test_draw_person_outside_frame_and_bad_input():
    frame = _noise_frame()
    before = frame.copy()
    draw_person(frame, PersonAppearance.sample(3), (200, 10, 240, 100), 0.0, Facing.FRONT)
    np.testing.assert_array_equal(frame, before)
    with pytest.raises(ValueError, match="x2 > x1"):
        draw_person(frame, PersonAppearance.sample(3), (50, 10, 40, 100), 0.0, Facing.FRONT)
    with pytest.raises(ValueError, match="4 finite numbers"):
        draw_person(frame, PersonAppearance.sample(3), (0, 0, 10), 0.0, Facing.FRONT)
    with pytest.raises(ValueError, match="uint8"):
        draw_person(frame.astype(np.float32), PersonAppearance.sample(3), (0, 0, 40, 90), 0.0,
                    Facing.FRONT)


def test_draw_person_without_rng_is_deterministic():
    frames = [np.zeros((100, 60, 3), np.uint8) for _ in range(2)]
    for frame in frames:
        draw_person(frame, PersonAppearance.sample(9), (10, 5, 50, 95), 2.0, Facing.LEFT)
    np.testing.assert_array_equal(frames[0], frames[1])


def _count_colour(image: np.ndarray, channel: int) -> int:
    """Pixels that are strongly of one pure primary colour (0=blue, 1=green, 2=red)."""
    others = [c for c in range(3) if c != channel]
    pure = (image[..., channel] > 100) & np.all(image[..., others] < 40, axis=2)
    return int(pure.sum())


def test_facing_decides_what_is_visible():
    """A logo is seen from the front only; a backpack mostly from behind."""
    base = PersonAppearance.sample(1)
    person = dataclasses.replace(
        base,
        upper=dataclasses.replace(
            base.upper, colour_bgr=(128, 128, 128), pattern=UpperPattern.LOGO_BLOCK,
            pattern_colour_bgr=(0, 230, 0),
        ),
        backpack_bgr=(0, 0, 230), bag_bgr=None, scarf_bgr=None, hat_bgr=None,
    )
    views = {}
    for facing in (Facing.FRONT, Facing.BACK):
        frame = np.full((200, 100, 3), 128, np.uint8)
        draw_person(frame, person, (8, 4, 92, 196), 0.5, facing)
        views[facing] = frame
    assert _count_colour(views[Facing.FRONT], 1) > 100
    assert _count_colour(views[Facing.BACK], 1) == 0
    assert _count_colour(views[Facing.BACK], 2) > 4 * max(_count_colour(views[Facing.FRONT], 2), 1)


# --- Market-1501 writer ---------------------------------------------------------------------------
def test_write_market1501_layout_and_protocol(tmp_path):
    root = tmp_path / "synthetic_market"
    summary = write_market1501(root, seed=0, **SMALL)
    assert sorted(p.name for p in root.iterdir()) == sorted([*SPLITS, META_FILENAME])
    train, query, gallery = (_parse_split(root / split) for split in SPLITS)

    train_ids = {pid for pid, _, _ in train}
    test_ids = {pid for pid, _, _ in query + gallery}
    assert train_ids == {1, 2, 3, 4} and test_ids == {5, 6, 7, 8}

    cameras_of: dict[int, set[int]] = defaultdict(set)
    for pid, cam, _ in train + query + gallery:
        cameras_of[pid].add(cam)
        assert 1 <= cam <= SMALL["num_cameras"]
    assert all(len(cams) >= 2 for cams in cameras_of.values())

    # one query per test identity and camera; every query has a true match in another camera
    query_keys = [(pid, cam) for pid, cam, _ in query]
    assert len(query_keys) == len(set(query_keys))
    assert set(query_keys) == {(pid, cam) for pid in test_ids for cam in cameras_of[pid]}
    for pid, cam in query_keys:
        assert any(g_pid == pid and g_cam != cam for g_pid, g_cam, _ in gallery)

    image = cv2.imread(str(root / "query" / query[0][2]))
    assert image.shape == (SMALL["height"], SMALL["width"], 3)

    meta = json.loads((root / META_FILENAME).read_text())
    assert meta["version"] == GENERATOR_VERSION
    assert meta["params"]["num_identities"] == SMALL["num_identities"]
    assert meta["counts"] == {
        "num_train_images": len(train), "num_train_identities": len(train_ids),
        "num_query_images": len(query), "num_gallery_images": len(gallery),
        "num_test_identities": len(test_ids), "num_cameras": SMALL["num_cameras"],
    }
    assert summary["counts"] == meta["counts"]
    assert read_synthetic_meta(root) == meta


def test_write_market1501_is_deterministic(tmp_path):
    first = _tree_bytes(Path(write_market1501(tmp_path / "a", seed=3, **SMALL)["root"]))
    again = _tree_bytes(Path(write_market1501(tmp_path / "b", seed=3, workers=2, **SMALL)["root"]))
    other = _tree_bytes(Path(write_market1501(tmp_path / "c", seed=4, **SMALL)["root"]))
    assert first == again
    assert first.keys() != other.keys() or first != other


def test_write_market1501_is_atomic(tmp_path, monkeypatch):
    real_encode = market_module._encode_jpeg
    calls = {"n": 0}

    def failing_encode(image, quality):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("disk on fire")
        return real_encode(image, quality)

    monkeypatch.setattr(market_module, "_encode_jpeg", failing_encode)
    root = tmp_path / "market"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_market1501(root, **SMALL)
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written staging folder left behind


def test_write_market1501_existing_root(tmp_path):
    root = tmp_path / "market"
    write_market1501(root, **SMALL)
    (root / "stray.txt").write_text("left over")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_market1501(root, **SMALL)
    write_market1501(root, overwrite=True, seed=1, **SMALL)
    assert not (root / "stray.txt").exists()
    assert read_synthetic_meta(root)["params"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["market"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(images_per_identity_camera=1), "images_per_identity_camera"),
        (dict(num_cameras=10), "num_cameras"),
        (dict(train_fraction=1.0), "train_fraction"),
        (dict(num_identities=2, train_fraction=0.1), "empty train or test"),
        (dict(max_cameras_per_identity=5), "max_cameras_per_identity"),
    ],
)
def test_write_market1501_rejects_bad_parameters(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        write_market1501(tmp_path / "market", **{**SMALL, **bad})
    assert not (tmp_path / "market").exists()


def test_ensure_reuses_matching_dataset_and_regenerates_otherwise(tmp_path, monkeypatch):
    root = tmp_path / "market"
    first = ensure_synthetic_market1501(root, **SMALL)
    calls = []
    real_write = market_module.write_market1501

    def counting_write(*args, **kwargs):
        calls.append(kwargs)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(market_module, "write_market1501", counting_write)
    assert ensure_synthetic_market1501(root, **SMALL)["counts"] == first["counts"]
    assert calls == []
    ensure_synthetic_market1501(root, **{**SMALL, "seed": 5})
    assert len(calls) == 1 and read_synthetic_meta(root)["params"]["seed"] == 5
    # an older generator version is regenerated too
    meta = read_synthetic_meta(root)
    (root / META_FILENAME).write_text(json.dumps({**meta, "version": GENERATOR_VERSION - 1}))
    ensure_synthetic_market1501(root, **{**SMALL, "seed": 5})
    assert len(calls) == 2 and read_synthetic_meta(root)["version"] == GENERATOR_VERSION
    with pytest.raises(ValueError, match="unknown synthetic dataset parameters"):
        ensure_synthetic_market1501(root, num_people=3)


def test_names_follow_real_market1501(shared_data, tmp_path):
    """Our names have the same structure as the real Market-1501 crops in the shared data."""
    real = shared_data / "reid" / "mini_market1501"
    real_files = [p for split in SPLITS for p in sorted((real / split).glob("*.jpg"))]
    assert real_files and all(MARKET_FILE.match(p.name) for p in real_files)
    real_shape = cv2.imread(str(real_files[0])).shape
    root = write_market1501(tmp_path / "m", **{**SMALL, "height": real_shape[0],
                                                "width": real_shape[1]})["root"]
    ours = [p for split in SPLITS for p in (Path(root) / split).glob("*.jpg")]
    assert ours and all(MARKET_FILE.match(p.name) for p in ours)
    assert cv2.imread(str(ours[0])).shape == real_shape
