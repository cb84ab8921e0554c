"""Image → normalised NCHW tensor, as the bundle's manifest says. Pure numpy/cv2."""

from __future__ import annotations

import cv2
import numpy as np

from .bundle import InputSpec


def to_tensor(img_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One 8-bit BGR image → (3, H, W) float32, resized to the model input and normalised."""
    h, w = spec.height, spec.width
    ih, iw = img_bgr.shape[:2]
    if (ih, iw) != (h, w):
        shrinking = ih > h and iw > w
        img_bgr = cv2.resize(img_bgr, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    img = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB) if spec.color == "RGB" else img_bgr
    x = img.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x *= 1.0 / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def batch_tensor(images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    return np.stack([to_tensor(im, spec) for im in images])
