"""Generic synthetic defects made from good images, for choosing a model without defect images.

`fit --mode auto` needs to know which statistics would catch defects on *this* part, but a line
has good images only. So it plants generic, part-agnostic anomalies into held-out good images and
compares how well each candidate model separates them from the held-out good images. They are not
meant to look like any real defect, only to be local changes of the kinds defects make:

* ``paste``: a patch of another good image, from elsewhere and turned, blended in;
* ``blur``: the region loses its detail (a smudge, a worn or out-of-focus spot);
* ``noise``: the region gains grain (contamination, a rough spot);
* ``stain``: the region's brightness and colour shift smoothly (a stain, a burn mark);
* ``scratch``: a thin line of another brightness;
* ``warp``: the region's content is pushed a few percent of the image aside (a bent, shifted or
  misplaced piece). Only statistics that know where things belong can see it; on a texture it
  leaves a texture, as it should.

Each is blended in at a random strength (``MIN_STRENGTH``..1), so that some are faint: with only
clear defects, every model would separate them and the comparison would say nothing.
Sizes are relative to the image's shorter side, so they mean the same at any resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("paste", "blur", "noise", "stain", "scratch", "warp")
MIN_STRENGTH = 0.4


def _region(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A soft elliptical blob (float32 alpha in 0..1) somewhere in the central 80% of the image."""
    h, w = shape
    side = min(h, w)
    cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    ax = (int(max(2, rng.uniform(0.03, 0.09) * side)), int(max(2, rng.uniform(0.03, 0.09) * side)))
    alpha = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (int(cx), int(cy)), ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    soft = max(1.0, 0.01 * side)
    return cv2.GaussianBlur(alpha, (0, 0), soft)


def _scratch(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    side = min(h, w)
    length = rng.uniform(0.15, 0.35) * side
    x0, y0 = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
    ang = rng.uniform(0, np.pi)
    pts = [(x0 + t * length * np.cos(ang) + rng.normal(0, 0.02 * side),
            y0 + t * length * np.sin(ang) + rng.normal(0, 0.02 * side)) for t in np.linspace(-0.5, 0.5, 4)]
    alpha = np.zeros((h, w), np.float32)
    cv2.polylines(alpha, [np.asarray(pts, np.int32)], False, 1.0, max(1, int(round(0.008 * side))))
    return cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.003 * side))


def _warp(base: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Push the content under ``alpha`` by 4-8% of the shorter side in a random direction (smoothly, as a
    bent piece moves), and the mask of the pixels whose content really changed."""
    h, w = alpha.shape
    amount = rng.uniform(0.04, 0.08) * min(h, w)
    ang = rng.uniform(0, 2 * np.pi)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    dx, dy = np.float32(amount * np.cos(ang)), np.float32(amount * np.sin(ang))
    out = cv2.remap(base, gx - alpha * dx, gy - alpha * dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    changed = np.abs(out - base).max(axis=-1) if out.ndim == 3 else np.abs(out - base)
    return out, (alpha > 0.5) & (changed > 8.0)


def plant(img: np.ndarray, donor: np.ndarray, rng: np.random.Generator, kind: str | None = None
          ) -> tuple[np.ndarray, np.ndarray, str]:
    """One synthetic defect in a copy of ``img`` (8-bit BGR). Returns (image, mask bool, kind)."""
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    h, w = img.shape[:2]
    base = img.astype(np.float32)
    alpha = _scratch((h, w), rng) if kind == "scratch" else _region((h, w), rng)
    if kind == "warp":
        out, mask = _warp(base, alpha, rng)
        return np.clip(out, 0, 255).astype(np.uint8), mask, kind
    mask = alpha > 0.5
    alpha = alpha * rng.uniform(MIN_STRENGTH, 1.0)
    if kind == "paste":
        src = cv2.resize(donor, (w, h)) if donor.shape[:2] != (h, w) else donor
        src = np.rot90(src, int(rng.integers(1, 4))) if h == w else src[::-1, ::-1]
        dy, dx = int(rng.integers(h // 4, 3 * h // 4 + 1)), int(rng.integers(w // 4, 3 * w // 4 + 1))
        other = np.roll(src.astype(np.float32), (dy, dx), axis=(0, 1))
    elif kind == "blur":
        other = cv2.GaussianBlur(base, (0, 0), max(1.5, 0.02 * min(h, w)))
    elif kind == "noise":
        other = base + rng.normal(0, 40, base.shape).astype(np.float32)
    elif kind == "stain":
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        other = 0.45 * base + 0.55 * colour
    elif kind == "scratch":
        level = 235.0 if base.mean() < 128 else 20.0
        other = np.full_like(base, level)
    else:
        raise ValueError(f"unknown synthetic defect {kind!r} (known: {', '.join(KINDS)})")
    out = base * (1 - alpha[..., None]) + other * alpha[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), mask, kind
