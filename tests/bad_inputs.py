"""A folder holding every kind of bad and odd-but-valid input a line engineer's folder can contain."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def huge_png(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A valid 1-bit grayscale PNG of width x height (a few hundred KB; 2.7 GB once decoded to BGR)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = bytearray()
    block = row * 1000
    for _ in range(height // 1000):
        idat += comp.compress(block)
    idat += comp.compress(row * (height % 1000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b""))
    return path


def part(rng: np.random.Generator, h: int = 64, w: int = 64) -> np.ndarray:
    """An RGB test picture with distinct colours (so conversions can be checked)."""
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = 200
    img[..., 1] = 50
    img[..., 2] = rng.integers(40, 60, (h, w))
    img[:8, :8] = (0, 255, 0)  # a green corner marks the top-left
    return img


def odd_valid(folder: Path, rng: np.random.Generator) -> dict[str, str]:
    """Odd but valid images; returns name → how it is converted."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rgb = part(rng)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "deep16.png"), bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([bgr, np.full(bgr.shape[:2], 9, np.uint8)]))
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=8).save(folder / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the viewer turns it 90° clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(folder / "exif-rotated.jpg", exif=exif, quality=95)
    cv2.imwrite(str(folder / "wide.png"), cv2.resize(bgr, (4000, 40)))
    return {"gray.png": "gray copied to 3 channels", "deep16.png": "top 8 bits", "rgba.png": "alpha dropped",
            "cmyk.jpg": "CMYK to BGR", "palette.png": "palette colours", "exif-rotated.jpg": "turned upright",
            "wide.png": "read as it is; scoring refuses it (100x too wide for a square model: stretched, not judged)"}


def bad_folder(folder: Path, good_image: Path) -> dict[str, str]:
    """Bad inputs; returns name → a piece of the ERROR reason each must get."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good_image.read_bytes()
    (folder / "zero.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    (folder / "text.png").write_text("this is not a picture\n")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    (folder / "folder.png").mkdir()
    (folder / "folder.png" / "inside.png").write_bytes(data)  # not scanned: its parent is no image
    os.mkfifo(folder / "pipe.png")
    huge_png(folder / "huge.png")
    (folder / "tiny.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    return {"zero.png": "file is empty", "truncated.png": "cannot decode", "text.png": "cannot decode",
            "dangling.png": "dangling symbolic link", "folder.png": "is a directory",
            "pipe.png": "not a regular file", "huge.png": "30000x30000 = 900 MP, over the 100 MP limit",
            "tiny.png": "only 4x4 pixels"}


def encode_png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()

