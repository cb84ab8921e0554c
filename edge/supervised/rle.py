"""Run-length encoded masks, as steel-defect datasets write them: ``ImageId,ClassId,EncodedPixels``.

Pixels are numbered from 1, top to bottom then left to right (column-major), and a mask is the
space-separated pairs ``start length`` of its runs: "1 3 10 2" is pixels 1-3 and 10-11. An empty
mask is the empty string.

``ClassId`` counts the model's defect classes from 1 in label-index order (the background of a
softmax head is not counted): a 4-class steel segmenter writes 1..4 whether its head is sigmoid
(labels 0..3) or softmax (labels 1..4 after background 0).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DataError

RLE_HEADER = ("ImageId", "ClassId", "EncodedPixels")


def rle_encode(mask: np.ndarray) -> str:
    """A 2-D mask (any non-zero = set) → "start length start length ..." (column-major, 1-indexed)."""
    flat = (np.asarray(mask) != 0).flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.r_[0, flat, 0]))  # run starts and ends, 0-indexed
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends))


def rle_decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    """ "start length ..." → a boolean (h, w) mask. Refuses runs that overlap or leave the image."""
    h, w = shape
    flat = np.zeros(h * w, bool)
    vals = text.split()
    if len(vals) % 2:
        raise DataError(f"run-length text has an odd number of values ({len(vals)}): it must be start/length pairs")
    try:
        nums = np.asarray([int(v) for v in vals], np.int64).reshape(-1, 2)
    except ValueError:
        raise DataError("run-length text must hold whole numbers only") from None
    last = 0
    for start, length in nums:
        if start < 1 or length < 1 or start <= last or start - 1 + length > h * w:
            raise DataError(f"run {start} {length} is out of order or outside a {h}x{w} mask")
        flat[start - 1:start - 1 + length] = True
        last = start - 1 + length
    return flat.reshape((h, w), order="F")


class RleWriter:
    """Appends one row per (image, defect class) to a CSV; an empty mask gets an empty EncodedPixels."""

    def __init__(self, path: Path, defect_classes: list[str]):
        self.class_ids = {name: i + 1 for i, name in enumerate(defect_classes)}
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        if self._file.tell() == 0:
            self._csv.writerow(RLE_HEADER)

    def write(self, image_id: str, masks: dict[str, np.ndarray]) -> None:
        for name, cid in self.class_ids.items():
            m = masks.get(name)
            self._csv.writerow([image_id, cid, "" if m is None else rle_encode(m)])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_rle_csv(path: str | Path) -> list[tuple[str, int, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != RLE_HEADER:
        raise DataError(f"{path}: not an {','.join(RLE_HEADER)} CSV")
    return [(r[0], int(r[1]), r[2]) for r in rows[1:]]
