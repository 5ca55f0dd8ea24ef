"""Cheap image checks without decoding: format from the magic bytes, size from the header, and
a truncation test on the file's tail.

Decoding a 128x64 JPEG costs ~100 us; reading its first bytes and its last few costs a few us.
That catches what real Re-ID downloads contain (zero-byte files, text saved as ``.jpg``,
interrupted downloads, 1x1 placeholders) at listing speed; a full decode is the scanner's
``paranoid`` mode. The parsers follow the published file-format layouts (JPEG ITU T.81 markers,
PNG IHDR/IEND chunks, BMP BITMAPINFOHEADER, RIFF/WebP VP8/VP8L/VP8X, TIFF IFD0, Netpbm).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

#: Bytes read from the start of a file: enough for every header parsed here except JPEG
#: (whose frame header may follow a large EXIF block; it is then found by seeking).
HEAD_BYTES = 64
#: Bytes read from the end of a file to find an end marker behind trailing padding.
TAIL_BYTES = 1024
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                              0xCE, 0xCF})
#: JPEG markers without a length field.
JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
JPEG_EOI = b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END_CHUNK = b"IEND"
TIFF_WIDTH_TAG, TIFF_HEIGHT_TAG = 256, 257
TIFF_SHORT, TIFF_LONG = 3, 4
NETPBM_CHANNELS = {b"P5": 1, b"P6": 3}


class HeaderError(Exception):
    """The file is not a readable image; ``reason`` is one of the :class:`HeaderReason` values."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HeaderReason:
    """Why a header check failed (short, stable strings: reports count files by them)."""

    UNRECOGNISED = "not an image (unrecognised header)"
    CORRUPT = "corrupt header"
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


def _u16be(data: bytes, offset: int) -> int:
    return struct.unpack_from(">H", data, offset)[0]


def _read_exact(f: BinaryIO, count: int) -> bytes:
    data = f.read(count)
    if len(data) != count:
        raise HeaderError(HeaderReason.TRUNCATED)
    return data


def _tail(f: BinaryIO, size: int, count: int = TAIL_BYTES) -> bytes:
    f.seek(max(0, size - count))
    return f.read(count)


def _jpeg(f: BinaryIO, size: int) -> ImageHeader:
    f.seek(2)
    header: ImageHeader | None = None
    while header is None:
        byte = _read_exact(f, 1)
        if byte != b"\xff":
            raise HeaderError(HeaderReason.CORRUPT)
        marker = _read_exact(f, 1)[0]
        while marker == 0xFF:  # fill bytes before a marker
            marker = _read_exact(f, 1)[0]
        if marker in JPEG_STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            raise HeaderError(HeaderReason.CORRUPT)
        length = _u16be(_read_exact(f, 2), 0)
        if length < 2:
            raise HeaderError(HeaderReason.CORRUPT)
        if marker in JPEG_SOF_MARKERS:
            segment = _read_exact(f, 5)
            header = ImageHeader("jpeg", _u16be(segment, 3), _u16be(segment, 1))
        else:
            f.seek(length - 2, os.SEEK_CUR)
    # entropy-coded data never holds 0xFF 0xD9 (0xFF is stuffed), so its presence near the end
    # means the file was written to completion; trailing padding after it is tolerated
    if JPEG_EOI not in _tail(f, size):
        raise HeaderError(HeaderReason.TRUNCATED)
    return header


def _png(f: BinaryIO, head: bytes, size: int) -> ImageHeader:
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise HeaderError(HeaderReason.CORRUPT)
    width, height = struct.unpack_from(">II", head, 16)
    if PNG_END_CHUNK not in _tail(f, size, 64):
        raise HeaderError(HeaderReason.TRUNCATED)
    return ImageHeader("png", width, height)


def _bmp(head: bytes, size: int) -> ImageHeader:
    if len(head) < 26:
        raise HeaderError(HeaderReason.TRUNCATED)
    file_size, = struct.unpack_from("<I", head, 2)
    dib_size, = struct.unpack_from("<I", head, 14)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack_from("<hh", head, 18)
    elif dib_size >= 40:
        width, height = struct.unpack_from("<ii", head, 18)
    else:
        raise HeaderError(HeaderReason.CORRUPT)
    if file_size and size < file_size:
        raise HeaderError(HeaderReason.TRUNCATED)
    return ImageHeader("bmp", width, abs(height))  # negative height = top-down rows


def _webp(head: bytes, size: int) -> ImageHeader:
    if len(head) < 30:
        raise HeaderError(HeaderReason.TRUNCATED)
    riff_size, = struct.unpack_from("<I", head, 4)
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
    elif chunk == b"VP8L":
        if head[20] != 0x2F:
            raise HeaderError(HeaderReason.CORRUPT)
        bits = int.from_bytes(head[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise HeaderError(HeaderReason.CORRUPT)
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", head, 26))
    else:
        raise HeaderError(HeaderReason.CORRUPT)
    if size < riff_size + 8:
        raise HeaderError(HeaderReason.TRUNCATED)
    return ImageHeader("webp", width, height)


def _tiff(f: BinaryIO, head: bytes) -> ImageHeader:
    endian = "<" if head[:2] == b"II" else ">"
    ifd_offset, = struct.unpack_from(endian + "I", head, 4)
    f.seek(ifd_offset)
    count, = struct.unpack(endian + "H", _read_exact(f, 2))
    entries = _read_exact(f, 12 * count)
    found: dict[int, int] = {}
    for i in range(count):
        tag, kind = struct.unpack_from(endian + "HH", entries, 12 * i)
        if tag in (TIFF_WIDTH_TAG, TIFF_HEIGHT_TAG):
            fmt = "H" if kind == TIFF_SHORT else "I" if kind == TIFF_LONG else None
            if fmt is None:
                raise HeaderError(HeaderReason.CORRUPT)
            found[tag], = struct.unpack_from(endian + fmt, entries, 12 * i + 8)
    if len(found) != 2:
        raise HeaderError(HeaderReason.CORRUPT)
    return ImageHeader("tiff", found[TIFF_WIDTH_TAG], found[TIFF_HEIGHT_TAG])


def _netpbm(f: BinaryIO, size: int) -> ImageHeader:
    f.seek(0)
    text = f.read(256)
    tokens: list[bytes] = []
    position = 0
    while len(tokens) < 4 and position < len(text):  # magic, width, height, maxval
        if text[position:position + 1] == b"#":  # comment to the end of the line
            end = text.find(b"\n", position)
            position = len(text) if end < 0 else end + 1
        elif text[position:position + 1].isspace():
            position += 1
        else:
            start = position
            while position < len(text) and not text[position:position + 1].isspace():
                position += 1
            tokens.append(text[start:position])
    try:
        width, height, maxval = (int(t) for t in tokens[1:4])
    except ValueError:  # a non-number, or fewer than three numbers
        raise HeaderError(HeaderReason.CORRUPT) from None
    if maxval <= 0:
        raise HeaderError(HeaderReason.CORRUPT)
    channels = NETPBM_CHANNELS[tokens[0]]
    pixel_bytes = width * height * channels * (2 if maxval > 255 else 1)
    if size < position + 1 + pixel_bytes:  # one whitespace byte ends the header
        raise HeaderError(HeaderReason.TRUNCATED)
    return ImageHeader("netpbm", width, height)


def read_image_header(path: str | os.PathLike, size: int | None = None) -> ImageHeader:
    """Format and size of the image at ``path`` from its header; raises :class:`HeaderError`.

    Also checks that the file is complete where the format makes that cheap (JPEG end marker,
    PNG ``IEND`` chunk, BMP/WebP/Netpbm declared sizes). ``OSError`` propagates.
    """
    with open(path, "rb") as f:
        if size is None:
            size = os.fstat(f.fileno()).st_size
        head = f.read(HEAD_BYTES)
        try:
            if head[:3] == b"\xff\xd8\xff":
                return _jpeg(f, size)
            if head[:8] == PNG_SIGNATURE:
                return _png(f, head, size)
            if head[:2] == b"BM":
                return _bmp(head, size)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp(head, size)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff(f, head)
            if head[:2] in NETPBM_CHANNELS:
                return _netpbm(f, size)
        except struct.error:
            raise HeaderError(HeaderReason.TRUNCATED) from None
    raise HeaderError(HeaderReason.UNRECOGNISED)
