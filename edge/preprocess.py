"""Image → normalised NCHW tensor, as the bundle's manifest says. Pure numpy/cv2."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .bundle import InputSpec
from .errors import ImageError

MAX_STRETCH = 2.0  # an image whose aspect ratio is this much off the model's is refused, not squashed


def check_aspect(shape: tuple[int, int], target: tuple[int, int], what: str = "the model's input") -> None:
    """Refuse resizing an image of ``shape`` (h, w) to ``target`` (h, w) when that would stretch it by more
    than MAX_STRETCH (a strip fed to a square model, a camera turned by 90°): such a frame cannot be judged
    by statistics fitted on the other shape. Milder differences (3872x3200 to 256x256) are resized."""
    (ih, iw), (h, w) = shape[:2], target
    if min(ih, iw, h, w) <= 0:
        return
    stretch = (iw / ih) / (w / h)
    stretch = max(stretch, 1.0 / stretch)
    if stretch > MAX_STRETCH:
        side = 32 * max(1, round(256 * (ih / min(ih, iw)) / 32)), 32 * max(1, round(256 * (iw / min(ih, iw)) / 32))
        raise ImageError(f"the image is {ih}x{iw} px (HxW) but {what} is {h}x{w}: resizing it would stretch it "
                         f"{stretch:.1f}x (more than {MAX_STRETCH:g}x is refused, not squashed)",
                         hint="turn the camera or the images to the model's orientation, or export a backbone of "
                              f"this shape (`edge-export backbone ... --size {side[0]}x{side[1]}`, HxW) and fit "
                              "on it")


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


def resize_to(img_bgr: np.ndarray, hw: tuple[int, int], check: bool = True) -> np.ndarray:
    """An image at (h, w), as the model input gets it: area averaging when shrinking, bilinear otherwise;
    an image whose shape is far from it is refused (:func:`check_aspect`) unless ``check`` is off."""
    h, w = hw
    ih, iw = img_bgr.shape[:2]
    if (ih, iw) == (h, w):
        return img_bgr
    if check:
        check_aspect((ih, iw), (h, w))
    shrinking = ih > h and iw > w
    return cv2.resize(img_bgr, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_tensor(img_bgr: np.ndarray, spec: InputSpec, out: np.ndarray | None = None, check: bool = True) -> np.ndarray:
    """One 8-bit BGR image → (3, H, W) float32, resized to the model input and normalised
    (into ``out`` when given). Channel order: the manifest's ``color``. An image whose shape is far
    from the input's is refused (:func:`check_aspect`) unless ``check`` is off (windows, checked once)."""
    h, w = spec.height, spec.width
    img_bgr = resize_to(img_bgr, (h, w), check)
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
