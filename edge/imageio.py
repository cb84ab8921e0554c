"""Reading images and writing PNGs; finding images in folders."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import DataError, ImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as 8-bit BGR (grayscale and 16-bit inputs are converted).

    Raises :class:`ImageError` with the reason instead of returning None like cv2 does.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if not p.is_file():
        raise ImageError(f"{p}: not a file")
    data = np.fromfile(str(p), dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"{p}: file is empty")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f"{p}: cannot decode as an image (corrupt or unsupported format)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.shape[0] < 8 or img.shape[1] < 8:
        raise ImageError(f"{p}: image is only {img.shape[1]}x{img.shape[0]} pixels")
    return img


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as bool, optionally resized (nearest) to ``shape`` = (h, w)."""
    m = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ImageError(f"{path}: cannot decode ground-truth mask")
    if shape is not None and m.shape != tuple(shape):
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m > 127


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a PNG via a temp file and rename, so a reader never sees half a file."""
    path = Path(path)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ImageError(f"cannot encode {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)


def list_images(inputs: list[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of image paths.

    Files named explicitly are kept whatever their suffix (so an unreadable one gets an ERROR
    record rather than vanishing); folders contribute files with image suffixes.
    """
    out: list[Path] = []
    seen = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.glob("*")
            found = sorted(q for q in it if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
                           and not q.name.startswith("."))
        elif p.exists() or p.suffix.lower() in IMAGE_SUFFIXES:
            found = [p]
        else:
            raise DataError(f"{p}: no such file or folder")
        for q in found:
            if q not in seen:
                seen.add(q)
                out.append(q)
    return out
