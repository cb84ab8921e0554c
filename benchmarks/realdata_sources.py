"""Real photographs shipped inside installed wheels, and how one "capture" of a part is made from them.

Nothing is downloaded: the photos are files inside scikit-image, scikit-learn and matplotlib. A
capture is a warp of the source photo (position, rotation, scale) followed, after any defect is
planted, by what a camera adds (exposure, white balance, shading, blur, sensor noise).

* aligned parts: the same region every time, with a jitter of a few pixels, a degree or two and a
  couple of percent of scale, plus a smooth elastic wobble of about a pixel (part-to-part variation);
* surfaces: a crop at a random position, any rotation and ±8% scale, taken from a region of the
  source reserved for that split (train and test crops never share a source pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np


def _package_dir(module: str) -> Path:
    import importlib

    try:
        return Path(importlib.import_module(module).__file__).parent
    except ImportError as e:
        raise SystemExit(f"the real-photo data set needs {module.split('.')[0]}: "
                         "pip install 'edge-inspect[bench]'") from e


def photo_path(name: str) -> Path:
    """``skimage:brick.png``, ``sklearn:flower.jpg`` or ``matplotlib:grace_hopper.jpg`` → its file."""
    where, _, fname = name.partition(":")
    if where == "skimage":
        base = _package_dir("skimage.data")
    elif where == "sklearn":
        base = _package_dir("sklearn.datasets") / "images"
    elif where == "matplotlib":
        import matplotlib

        base = Path(matplotlib.get_data_path()) / "sample_data"
    else:
        raise ValueError(f"unknown photo source {name!r}")
    path = base / fname
    if not path.is_file():
        raise SystemExit(f"{path} is missing: reinstall {where} (its wheel ships this photo)")
    return path


@lru_cache(maxsize=16)
def load_photo(name: str) -> np.ndarray:
    """The photo as float32 RGB in [0, 1] (grey photos become three equal channels)."""
    img = cv2.imread(str(photo_path(name)), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot decode {photo_path(name)}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    img.setflags(write=False)
    return img


@dataclass(frozen=True)
class Region:
    """A rectangle of the source photo, in its pixels: x0, y0, width, height."""

    x: int
    y: int
    w: int
    h: int

    def halves(self) -> tuple[Region, Region]:
        """Split along the longer side: (first, second), disjoint."""
        if self.w >= self.h:
            a = self.w // 2
            return Region(self.x, self.y, a, self.h), Region(self.x + a, self.y, self.w - a, self.h)
        a = self.h // 2
        return Region(self.x, self.y, self.w, a), Region(self.x, self.y + a, self.w, self.h - a)


def warp_crop(src: np.ndarray, cx: float, cy: float, side: float, angle_deg: float, size: int) -> np.ndarray:
    """The square of ``side`` source pixels centred at (cx, cy), rotated by ``angle_deg``, as size×size."""
    f = size / side
    if f < 1:  # shrink the source first, so the warp does not alias
        src = cv2.resize(src, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        cx, cy, side, f = cx * f, cy * f, side * f, 1.0
    m = cv2.getRotationMatrix2D((cx, cy), angle_deg, f)
    m[:, 2] += (size / 2.0 - cx, size / 2.0 - cy)
    return cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def elastic(img: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random displacement of up to about ``amplitude`` pixels."""
    h, w = img.shape[:2]
    coarse = rng.normal(size=(2, 5, 5)).astype(np.float32)
    dx, dy = (cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) * amplitude for c in coarse)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def aligned_capture(src: np.ndarray, roi: Region, size: int, rng: np.random.Generator) -> np.ndarray:
    """One photograph of the positioned part: the ROI with small pose jitter and wobble."""
    px = roi.w / size  # source pixels per output pixel
    cx = roi.x + roi.w / 2 + rng.uniform(-3, 3) * px
    cy = roi.y + roi.h / 2 + rng.uniform(-3, 3) * px
    side = max(roi.w, roi.h) * rng.uniform(0.98, 1.02)
    img = warp_crop(src, cx, cy, side, rng.uniform(-2.0, 2.0), size)
    return elastic(img, rng, 0.6 * size / 256)


def surface_capture(src: np.ndarray, region: Region, side: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A crop of the surface anywhere in ``region`` (which holds it at every rotation), any angle."""
    s = side * rng.uniform(0.92, 1.08)
    r = s * 0.7072  # half the diagonal: the rotated square stays inside the region
    if side * 1.08 * 1.4143 > min(region.w, region.h):
        raise ValueError(f"a crop of side {side} at any rotation does not fit in {region}")
    cx = rng.uniform(region.x + r, region.x + region.w - r)
    cy = rng.uniform(region.y + r, region.y + region.h - r)
    return warp_crop(src, cx, cy, s, rng.uniform(0, 360), size)


def camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a camera adds to a capture: exposure, contrast, gamma, white balance, shading, blur, noise.

    float32 RGB in [0, 1] → uint8 RGB.
    """
    h, w = img.shape[:2]
    out = img * rng.uniform(0.92, 1.08)  # exposure
    m = out.mean()
    out = (out - m) * rng.uniform(0.92, 1.08) + m  # contrast
    out = np.clip(out, 0, 1) ** rng.uniform(0.92, 1.08)  # gamma
    out = out * rng.uniform(0.96, 1.04, size=3).astype(np.float32)  # white balance
    gx, gy = np.meshgrid(np.linspace(-1, 1, w, dtype=np.float32), np.linspace(-1, 1, h, dtype=np.float32))
    a, b = rng.uniform(-0.04, 0.04, size=2)
    out = out * (1 + a * gx + b * gy)[..., None]  # uneven lighting
    sigma = rng.uniform(0.0, 0.8) * w / 256
    if sigma > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    read, shot = rng.uniform(0.004, 0.015), rng.uniform(0.005, 0.02)
    out = out + rng.normal(size=out.shape).astype(np.float32) * np.sqrt(read ** 2 + shot ** 2 * np.clip(out, 0, 1))
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
