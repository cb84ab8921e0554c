"""An image's width and height from its header bytes, without decoding it.

Used to refuse images over the pixel limit before a decoder allocates them (a 30,000 × 30,000
PNG is a few MB on disk and 2.7 GB decoded). Knows PNG, JPEG, BMP, WebP, TIFF and PNM; returns
None for anything else (the decoder's own limit then applies). Never raises on any input.
"""

from __future__ import annotations

import struct


def image_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the format is unknown or the header is cut short."""
    b = bytes(data[:64 * 1024]) if len(data) > 64 * 1024 else bytes(data)
    try:
        for probe in (_png, _jpeg, _bmp, _webp, _tiff, _pnm):
            size = probe(b)
            if size is not None:
                return size
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _png(b: bytes):
    if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR":
        return struct.unpack(">II", b[16:24])
    return None


def _jpeg(b: bytes):
    if b[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", b[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        if length < 2:
            return None
        i += 2 + length
    return None


def _bmp(b: bytes):
    if b[:2] != b"BM" or len(b) < 26:
        return None
    (hsize,) = struct.unpack("<I", b[14:18])
    if hsize == 12:
        w, h = struct.unpack("<HH", b[18:22])
    else:
        w, h = struct.unpack("<ii", b[18:26])
    return abs(w), abs(h)


def _webp(b: bytes):
    if b[:4] != b"RIFF" or b[8:12] != b"WEBP":
        return None
    chunk = b[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(b[24:27], "little") + 1
        h = int.from_bytes(b[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _tiff(b: bytes):
    if b[:4] == b"II*\x00":
        e = "<"
    elif b[:4] == b"MM\x00*":
        e = ">"
    else:
        return None
    (ifd,) = struct.unpack(e + "I", b[4:8])
    (n,) = struct.unpack(e + "H", b[ifd:ifd + 2])
    dims = {}
    for k in range(n):
        off = ifd + 2 + 12 * k
        tag, typ = struct.unpack(e + "HH", b[off:off + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            value = struct.unpack(e + ("H" if typ == 3 else "I"), b[off + 8:off + (10 if typ == 3 else 12)])[0]
            dims[tag] = value
    if 256 in dims and 257 in dims:
        return dims[256], dims[257]
    return None


def _pnm(b: bytes):
    if len(b) < 3 or b[0:1] != b"P" or b[1:2] not in b"123456":
        return None
    fields: list[int] = []
    for line in b[2:].split(b"\n"):
        for tok in line.split(b"#")[0].split():
            fields.append(int(tok))
            if len(fields) == 2:
                return fields[0], fields[1]
    return None
