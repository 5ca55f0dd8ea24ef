"""The dataset scanner: header checks per format, the walk, and the fingerprint cache."""

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

from reidsort.data import scan_cache
from reidsort.data.image_header import HeaderError, HeaderReason, read_image_header
from reidsort.data.scan import (
    CACHE_DIRNAME,
    INVALID,
    SKIPPED,
    VALID,
    Reason,
    ScanOptions,
    scan_dataset,
    walk,
)

PIXELS = np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)


def _encode(ext: str, image: np.ndarray = PIXELS, params=()) -> bytes:
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize("ext,params,fmt", [
    (".jpg", (), "jpeg"), (".png", (), "png"), (".bmp", (), "bmp"), (".tif", (), "tiff"),
    (".ppm", (), "netpbm"), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "webp"),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "webp"),  # lossless: VP8L
])
def test_header_size_of_every_format(tmp_path, ext, params, fmt):
    path = tmp_path / f"x{ext}"
    path.write_bytes(_encode(ext, PIXELS, params))
    header = read_image_header(path)
    assert (header.format, header.height, header.width) == (fmt, 40, 24)


def test_header_of_pil_written_variants(tmp_path):
    rgba = Image.fromarray(np.dstack([PIXELS, np.full((40, 24), 128, np.uint8)]), "RGBA")
    rgba.save(tmp_path / "a.webp", lossless=False)  # alpha: VP8X extended format
    exif = b"Exif\0\0" + b"\0" * 40
    Image.fromarray(PIXELS).save(tmp_path / "p.jpg", progressive=True, exif=exif)
    Image.fromarray(PIXELS[:, :, 0]).save(tmp_path / "g.pgm")
    # big-endian TIFF, width as SHORT and height as LONG (header only: enough for the parser)
    ifd = struct.pack(">H", 2) + struct.pack(">HHIHH", 256, 3, 1, 24, 0) \
        + struct.pack(">HHII", 257, 4, 1, 40) + b"\0\0\0\0"
    (tmp_path / "big_endian.tif").write_bytes(b"MM\0*" + struct.pack(">I", 8) + ifd)
    for name in ("a.webp", "p.jpg", "g.pgm", "big_endian.tif"):
        header = read_image_header(tmp_path / name)
        assert (header.height, header.width) == (40, 24), name


def test_header_failures(tmp_path):
    jpg = _encode(".jpg")
    png = _encode(".png")
    cases = {
        "text.jpg": (b"hello world, not an image", HeaderReason.UNRECOGNISED),
        "cut.jpg": (jpg[: len(jpg) // 2], HeaderReason.TRUNCATED),
        "cut_header.jpg": (jpg[:30], HeaderReason.TRUNCATED),
        "cut.png": (png[: len(png) - 20], HeaderReason.TRUNCATED),
        "no_ihdr.png": (png[:12] + b"XXXX" + png[16:], HeaderReason.CORRUPT),
        "sos_first.jpg": (b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 20 + b"\xff\xd9",
                          HeaderReason.CORRUPT),
        "cut.bmp": (_encode(".bmp")[:100], HeaderReason.TRUNCATED),
        "cut.ppm": (_encode(".ppm")[:200], HeaderReason.TRUNCATED),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(HeaderError) as info:
            read_image_header(tmp_path / name)
        assert info.value.reason == reason, name
    padded = tmp_path / "padded.jpg"  # bytes after the end marker are tolerated
    padded.write_bytes(jpg + b"\0" * 300)
    assert read_image_header(padded).width == 24


def _tree(base: Path) -> Path:
    """The test tree in ``base/root`` (returned), with a linked folder in ``base/external``."""
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "ok.jpg").write_bytes(_encode(".jpg"))
    (root / "a" / "b" / "ok.png").write_bytes(_encode(".png"))
    (root / "a" / "small.png").write_bytes(_encode(".png", PIXELS[:4, :3]))
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("hi")
    (root / ".hidden.jpg").write_bytes(_encode(".jpg"))
    (root / ".git").mkdir()
    (root / ".git" / "x.jpg").write_bytes(_encode(".jpg"))
    os.symlink("missing.jpg", root / "a" / "dangling.jpg")
    os.symlink("loop2.jpg", root / "a" / "loop1.jpg")
    os.symlink("loop1.jpg", root / "a" / "loop2.jpg")
    os.symlink("..", root / "a" / "b" / "up")  # folder loop
    os.symlink(root / "a" / "b", root / "again_b")  # a second way into a/b: listed once
    external = base / "external"
    external.mkdir()
    (external / "ok.png").write_bytes(_encode(".png"))
    os.symlink(external, root / "linked")  # a linked folder elsewhere is followed
    return root


EXPECTED = {
    ".git/": (SKIPPED, Reason.HIDDEN),
    ".hidden.jpg": (SKIPPED, Reason.HIDDEN),
    "a/b/ok.png": (VALID, ""),
    "a/b/up/": (SKIPPED, Reason.SYMLINK_LOOP),
    "a/dangling.jpg": (INVALID, Reason.BROKEN_SYMLINK),
    "a/empty.jpg": (INVALID, Reason.EMPTY),
    "a/loop1.jpg": (INVALID, Reason.SYMLINK_LOOP),
    "a/loop2.jpg": (INVALID, Reason.SYMLINK_LOOP),
    "a/ok.jpg": (VALID, ""),
    "a/small.png": (INVALID, Reason.TOO_SMALL),
    "again_b/": (SKIPPED, Reason.DUPLICATE_FOLDER),
    "linked/ok.png": (VALID, ""),
    "notes.txt": (SKIPPED, Reason.NOT_IMAGE),
}


def _by_path(result) -> dict:
    return {p: (s, r) for p, s, r in zip(result.paths, result.statuses, result.reasons)}


def test_walk_lists_dirs_and_stops_at_loops(tmp_path):
    root = _tree(tmp_path)
    listing = walk(root)
    assert set(listing.dirs) == {"a", "a/b", "linked"}
    assert len(listing.paths) == len(set(listing.paths)) == len(EXPECTED)
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        walk(tmp_path / "nope")


def test_scan_classifies_and_caches(tmp_path):
    root = _tree(tmp_path)
    first = scan_dataset(root, threads=2)
    assert _by_path(first) == EXPECTED
    assert not first.cache_hit and first.reused == 0
    assert first.counts() == {"files": 13, "valid": 3, "invalid": 5, "skipped": 5}
    assert first.reason_counts()[SKIPPED] == {"folder listed already (symlink)": 1, "hidden": 2,
                                              "not an image file": 1, "symlink loop": 1}
    assert first.reason_counts()[INVALID] == {"broken symlink": 1, "empty file": 1,
                                              "symlink loop": 2, "too small": 1}
    results = Path(first.cache_path)
    assert results.parent == root / CACHE_DIRNAME
    assert {p.name for p in results.parent.iterdir()} == {
        results.name, results.name.replace(".json", ".files.json")}

    again = scan_dataset(root)
    assert again.cache_hit and _by_path(again) == EXPECTED
    assert again.fingerprint == first.fingerprint

    # a changed file (same name) invalidates the cache; only that file is checked again
    (root / "a" / "ok.jpg").write_bytes(b"now text")
    changed = scan_dataset(root)
    assert not changed.cache_hit
    assert _by_path(changed)["a/ok.jpg"] == (INVALID, HeaderReason.UNRECOGNISED)
    assert changed.reused == 4  # the other image files: ok.png twice, small.png, empty.jpg
    assert changed.fingerprint != first.fingerprint

    # other options, other cache file; the first one stays valid
    paranoid = scan_dataset(root, ScanOptions(paranoid=True))
    assert not paranoid.cache_hit
    assert len(list((root / CACHE_DIRNAME).glob("scan_v*.json"))) == 4  # results + keys each
    assert scan_dataset(root).cache_hit


def test_tampered_or_foreign_cache_is_ignored(tmp_path):
    root = _tree(tmp_path)
    result = scan_dataset(root)
    path = Path(result.cache_path)
    data = json.loads(path.read_text())
    data["status"] = data["status"][:-1]  # columns of unequal length: not a cache we wrote
    path.write_text(json.dumps(data))
    rescanned = scan_dataset(root)
    assert not rescanned.cache_hit and rescanned.reused == 0
    assert _by_path(rescanned) == EXPECTED
    path.write_text("{not json")
    assert _by_path(scan_dataset(root)) == EXPECTED


def test_key_file_of_another_write_is_not_mixed_in(tmp_path):
    root = _tree(tmp_path)
    result = scan_dataset(root)
    keys = Path(result.cache_path[: -len(".json")] + ".files.json")
    stale = keys.read_text()
    (root / "a" / "ok.jpg").write_bytes(b"now text")
    scan_dataset(root)  # rewrites both files
    keys.write_text(stale)  # as if a crash had left the old key file behind
    (root / "a" / "b" / "ok.png").write_bytes(_encode(".png", PIXELS[:10]))
    again = scan_dataset(root)
    assert not again.cache_hit and again.reused == 0  # nothing reused from mismatched files
    assert _by_path(again)["a/ok.jpg"] == (INVALID, HeaderReason.UNRECOGNISED)


def test_paranoid_decodes(tmp_path):
    png = bytearray(_encode(".png"))
    idat = png.find(b"IDAT")
    png[idat + 10: idat + 30] = b"\xff" * 20  # broken pixel data, header and IEND intact
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "bad_pixels.png").write_bytes(bytes(png))
    (tmp_path / "p" / "good.png").write_bytes(_encode(".png"))
    quick = _by_path(scan_dataset(tmp_path, cache=False))
    assert quick["p/bad_pixels.png"] == (VALID, "")
    full = _by_path(scan_dataset(tmp_path, ScanOptions(paranoid=True), cache=False))
    assert full["p/bad_pixels.png"] == (INVALID, Reason.DECODE_FAILED)
    assert full["p/good.png"] == (VALID, "")


def test_too_large_is_decided_from_the_header(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 3751)) + _png_chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(bomb)
    result = scan_dataset(tmp_path, ScanOptions(paranoid=True), cache=False)
    assert _by_path(result)["bomb.png"] == (INVALID, Reason.TOO_LARGE)
    assert result.heights[0] == 30000


def _read_only(monkeypatch, root: Path) -> None:
    """Running as root ignores chmod, so a read-only root is simulated at the write call."""
    real = scan_cache.atomic_write_text

    def write(path, text, *args, **kwargs):
        if Path(path).is_relative_to(root):
            raise PermissionError(30, "Read-only file system", str(path))
        return real(path, text, *args, **kwargs)

    monkeypatch.setattr(scan_cache, "atomic_write_text", write)


def test_read_only_root_uses_the_fallback_cache(tmp_path, monkeypatch, caplog):
    root, fallback = _tree(tmp_path), tmp_path / "fallback"
    _read_only(monkeypatch, root)
    first = scan_dataset(root, fallback_cache_dir=fallback)
    assert first.cache_path and Path(first.cache_path).is_relative_to(fallback)
    assert not (root / CACHE_DIRNAME).exists()
    assert "not writable" in caplog.text
    second = scan_dataset(root, fallback_cache_dir=fallback)
    assert second.cache_hit and _by_path(second) == EXPECTED


def test_nowhere_to_cache_still_scans(tmp_path, monkeypatch, caplog):
    root = _tree(tmp_path)
    _read_only(monkeypatch, root)
    result = scan_dataset(root)
    assert result.cache_path is None and _by_path(result) == EXPECTED
    assert "scan cache not written" in caplog.text
    assert not scan_dataset(root).cache_hit


def test_unverified_listing_trusts_names(tmp_path):
    root = _tree(tmp_path)
    (root / "a" / "text.jpg").write_text("not an image")
    result = _by_path(scan_dataset(root, verify=False))
    assert result["a/text.jpg"] == (VALID, "")
    assert result["a/empty.jpg"] == (INVALID, Reason.EMPTY)
    assert not (root / CACHE_DIRNAME).exists()


def test_cmyk_and_16_bit_images_are_valid(tmp_path):
    buffer = io.BytesIO()
    Image.new("CMYK", (20, 30), (10, 200, 30, 0)).save(buffer, "JPEG")
    (tmp_path / "cmyk.jpg").write_bytes(buffer.getvalue())
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((30, 20, 3), 40000, np.uint16))
    result = _by_path(scan_dataset(tmp_path, ScanOptions(paranoid=True), cache=False))
    assert result == {"cmyk.jpg": (VALID, ""), "deep.png": (VALID, "")}


def test_permission_bits_make_a_root_read_only(tmp_path):
    """A dataset shipped read-only (r-x) is never written to, even by the superuser."""
    root, fallback = _tree(tmp_path), tmp_path / "fallback"
    os.chmod(root, 0o555)
    try:
        result = scan_dataset(root, fallback_cache_dir=fallback)
        assert not (root / CACHE_DIRNAME).exists()
        assert Path(result.cache_path).is_relative_to(fallback)
        assert oct(os.stat(result.cache_path).st_mode & 0o777) == "0o644"
        assert scan_dataset(root, fallback_cache_dir=fallback).cache_hit
    finally:
        os.chmod(root, 0o755)
