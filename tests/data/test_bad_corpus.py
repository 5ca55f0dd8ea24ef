"""The bad-input corpus: every kind of broken file real Re-ID downloads contain, in one
folder-per-identity tree. Each is classified as expected, the report counts match, and a tiny
training run on the tree completes."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_TRAIN, compose_config
from reidsort.data.scan import INVALID, SKIPPED, VALID, Reason, scan_dataset
from reidsort.tasks.scan import scan as scan_task

VALID_FILES = 27
INVALID_FILES = 8
SKIPPED_FILES = 3


def _jpeg(value: int, shape=(48, 24, 3)) -> bytes:
    image = np.full(shape, value, np.uint8)
    image[::4] = 255 - value  # stripes: not a flat image
    return cv2.imencode(".jpg", image)[1].tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def build_corpus(root: Path) -> dict[str, tuple[str, str]]:
    """Write the corpus under ``root``; return ``{relative path: (status, reason)}``."""
    expected: dict[str, tuple[str, str]] = {}

    def put(rel: str, data: bytes, status: str = VALID, reason: str = "") -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[rel] = (status, reason)

    for pid, name in enumerate(["alice", "bob", "carol", "frank", "grace"]):
        for i in range(4):
            put(f"{name}/{name}_{i}.jpg", _jpeg(30 + 40 * pid + i))
    put("dave/only.jpg", _jpeg(5))  # an identity with one image
    (root / "erin").mkdir()  # an empty identity folder
    put("bob/nested/deeper/bob_4.jpg", _jpeg(71))  # nested folders belong to bob

    # odd but valid images
    gray = cv2.imencode(".png", np.full((48, 24), 90, np.uint8))[1].tobytes()
    put("alice/gray.png", gray)
    put("alice/alpha.png", cv2.imencode(".png", np.full((48, 24, 4), 120, np.uint8))[1].tobytes())
    put("alice/deep16.png", cv2.imencode(".png", np.full((48, 24, 3), 40000, np.uint16))[1]
        .tobytes())
    cmyk = io.BytesIO()
    Image.new("CMYK", (24, 48), (10, 200, 30, 0)).save(cmyk, "JPEG")
    put("alice/cmyk.jpg", cmyk.getvalue())
    put("alice/huge.jpg", _jpeg(33, (3000, 4000, 3)))  # 12 megapixels: large but fine

    # broken files
    good = _jpeg(100)
    put("alice/zero.jpg", b"", INVALID, Reason.EMPTY)
    put("alice/truncated.jpg", good[: len(good) // 2], INVALID, "truncated")
    put("alice/text.jpg", b"<html>404 Not Found</html>", INVALID,
        "not an image (unrecognised header)")
    put("alice/tiny.png", cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes(),
        INVALID, Reason.TOO_SMALL)
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 1, 0, 0, 0, 0)  # decompression bomb
    put("alice/bomb.png", b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 5001)) + _png_chunk(b"IEND", b""),
        INVALID, Reason.TOO_LARGE)

    # not images, links
    put("README.md", b"# my dataset\n", SKIPPED, Reason.NOT_IMAGE)
    put("bob/notes.txt", b"bob wears blue", SKIPPED, Reason.NOT_IMAGE)
    os.symlink("gone.jpg", root / "bob" / "broken.jpg")
    expected["bob/broken.jpg"] = (INVALID, Reason.BROKEN_SYMLINK)
    os.symlink("loop_b.jpg", root / "bob" / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "bob" / "loop_b.jpg")
    expected["bob/loop_a.jpg"] = expected["bob/loop_b.jpg"] = (INVALID, Reason.SYMLINK_LOOP)
    os.symlink("..", root / "bob" / "up")
    expected["bob/up/"] = (SKIPPED, Reason.SYMLINK_LOOP)
    return expected


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, dict[str, tuple[str, str]]]:
    root = tmp_path / "corpus"
    return root, build_corpus(root)


def test_every_file_is_classified_as_expected(corpus):
    root, expected = corpus
    for paranoid in (False, True):
        from reidsort.data.scan import ScanOptions

        result = scan_dataset(root, ScanOptions(paranoid=paranoid), cache=False)
        found = {p: (s, r) for p, s, r in zip(result.paths, result.statuses, result.reasons)}
        assert found == expected
    counts = {status: sum(1 for s, _ in expected.values() if s == status)
              for status in (VALID, INVALID, SKIPPED)}
    assert counts == {VALID: VALID_FILES, INVALID: INVALID_FILES, SKIPPED: SKIPPED_FILES}


def test_scan_task_report_counts_match(corpus, tmp_path, capsys):
    root, expected = corpus
    cfg = compose_config(["task=scan", "data=folder", f"data.root={root}", "min_samples=2",
                          "data.val_identities=2", "seed=2"], tmp_path / "run")
    metrics = scan_task(cfg)
    report = json.loads((tmp_path / "run" / "scan_report.json").read_text())
    scan = report["scans"][0]
    assert scan["counts"] == {"files": len(expected), "valid": VALID_FILES,
                              "invalid": INVALID_FILES, "skipped": SKIPPED_FILES}
    assert sorted((i["path"], i["reason"]) for i in scan["invalid"]) == sorted(
        (p, r) for p, (s, r) in expected.items() if s == INVALID)
    assert scan["reasons"]["invalid"]["symlink loop"] == 2
    reader = report["reader"]
    assert reader["splits"]["train"] == {"images": VALID_FILES, "identities": 6}
    assert reader["notes"]["empty_identity_folders"] == [str(root / "erin")]
    assert sum(len(v) for v in reader["invalid_images_dropped"].values()) == INVALID_FILES
    used = report["used"]
    dave = 4  # folders numbered 1.. in name order: alice bob carol dave erin frank grace
    assert used["dropped_identities_min_samples"] == {str(dave): 1}  # seed 2 keeps dave in train
    assert metrics["scan/invalid"] == INVALID_FILES and metrics["data/dropped_identities"] == 1
    assert metrics["data/train_identities"] == 3  # 6 - 2 held out - dave
    out = capsys.readouterr().out
    assert "symlink loop" in out and "empty identity folders: 1" in out


def test_fail_on_invalid_exits_with_code_2(corpus, tmp_path):
    root, _ = corpus
    cfg = compose_config(["task=scan", "data=folder", f"data.root={root}",
                          "fail_on_invalid=true"], tmp_path / "run")
    with pytest.raises(SystemExit) as info:
        scan_task(cfg)
    assert info.value.code == 2
    clean = tmp_path / "clean"
    for name in ("a", "b"):
        (clean / name).mkdir(parents=True)
        for i in range(2):
            (clean / name / f"{i}.jpg").write_bytes(_jpeg(10 * i + 50))
    cfg = compose_config(["task=scan", "data=folder", f"data.root={clean}", "fail_on_invalid=true",
                          "data.val_identities=1"], tmp_path / "run2")
    assert scan_task(cfg)["scan/invalid"] == 0


def test_training_on_the_corpus_completes(corpus, tmp_path):
    import torch

    from reidsort.tasks.train import train

    torch.set_num_threads(1)
    root, _ = corpus
    tiny = [o for o in TINY_TRAIN if not o.startswith("data.synthetic")]
    cfg = compose_config([*tiny, "data=folder", f"data.root={root}", "data.val_identities=2",
                          "data.p=2", "data.k=2", "data.image_size=[64,32]", "seed=0",
                          "task.histogram_baseline=true"], tmp_path / "run")
    metrics = train(cfg)
    assert metrics["data/unreadable_images"] == INVALID_FILES
    assert metrics["data/train_identities"] == 4
    assert 0.0 <= metrics["val/mAP"] <= 1.0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    # the scan of the training run was cached for the next run
    assert scan_dataset(root).cache_hit
