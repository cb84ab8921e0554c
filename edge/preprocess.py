"""Image → normalised NCHW tensor, as the bundle's manifest says. Pure numpy/cv2."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .bundle import InputSpec


def _tables(spec: InputSpec) -> np.ndarray:
    """(3, 256) float32: the normalised value of every 8-bit level, per channel in BGR order.

    A lookup per pixel replaces scale, subtract, divide and the transpose copy.
    """
    return _tables_for(tuple(spec.mean), tuple(spec.std), spec.color)


@lru_cache(maxsize=16)
def _tables_for(mean: tuple, std: tuple, color: str) -> np.ndarray:
    v = np.arange(256, dtype=np.float64) / 255.0
    m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    t = ((v[None, :] - m[:, None]) / s[:, None]).astype(np.float32)
    t = t[::-1].copy() if color == "RGB" else t  # the image is BGR
    t.setflags(write=False)
    return t


def to_tensor(img_bgr: np.ndarray, spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """One 8-bit BGR image → (3, H, W) float32, resized to the model input and normalised
    (into ``out`` when given). Channel order: the manifest's ``color``."""
    h, w = spec.height, spec.width
    ih, iw = img_bgr.shape[:2]
    if (ih, iw) != (h, w):
        shrinking = ih > h and iw > w
        img_bgr = cv2.resize(img_bgr, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if out is None:
        out = np.empty((3, h, w), np.float32)
    lut = _tables(spec)
    for c in range(3):
        # BGR plane c goes to output channel 2 - c for RGB models (the table is in BGR order already)
        dst = out[2 - c] if spec.color == "RGB" else out[c]
        np.take(lut[c], img_bgr[:, :, c], out=dst)
    return out


def batch_tensor(images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    out = np.empty((len(images), 3, spec.height, spec.width), np.float32)
    for i, im in enumerate(images):
        to_tensor(im, spec, out[i])
    return out
