"""Defects planted into a clean capture, each with its exact mask.

Every planter takes the capture (float32 RGB in [0, 1], size×size), a :class:`Site` (where the part
is and a donor of foreign material) and a severity in [0, 1] that moves size and contrast from
subtle to clear. It returns the defective image and the soft alpha of what it changed; the mask is
where that alpha is at least one half. Planters are written to look like what a line sees: thin
curved scratches, pasted foreign material matched to the local colour, smudges, stains that let the
texture show through, pits with a shaded rim, specks and fibres, bent or missing parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import cv2
import numpy as np

Donor = Callable[[np.random.Generator, int], np.ndarray]  # (rng, side) → side×side float32 RGB


@dataclass(frozen=True)
class Site:
    """Where defects may go (a probability map over the image) and where foreign material comes from."""

    where: np.ndarray  # (size, size) float64, sums to 1
    donor: Donor

    @staticmethod
    def of(clean: np.ndarray, donor: Donor, on_structure: bool) -> Site:
        s = clean.shape[0]
        w = np.ones((s, s))
        if on_structure:  # positioned parts: on the part, where there is detail, not the background
            g = cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY)
            mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
            mag = cv2.GaussianBlur(mag, (0, 0), s / 24)
            w = mag / mag.max() + 0.05
        m = int(0.1 * s)
        edge = np.zeros((s, s))
        edge[m:s - m, m:s - m] = 1
        w = w * edge
        return Site(w / w.sum(), donor)

    def place(self, rng: np.random.Generator) -> tuple[float, float]:
        s = self.where.shape[0]
        k = rng.choice(self.where.size, p=self.where.ravel())
        return float(k % s) + rng.uniform(-0.5, 0.5), float(k // s) + rng.uniform(-0.5, 0.5)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


SUPER = 4  # shapes are drawn at 4× and reduced, for anti-aliased edges


def _reduce(canvas: np.ndarray, s: int) -> np.ndarray:
    return cv2.resize(canvas.astype(np.float32) / 255.0, (s, s), interpolation=cv2.INTER_AREA)


def blob(s: int, cx: float, cy: float, radius: float, rng: np.random.Generator, feather: float = 1.0) -> np.ndarray:
    """Irregular filled shape (a wobbly, stretched ellipse) as a soft alpha."""
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 6):
        r += rng.uniform(0, 0.5 / k) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    ax, ay, rot = rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0, np.pi)
    x, y = r * np.cos(t) * ax * radius, r * np.sin(t) * ay * radius
    px = cx + x * np.cos(rot) - y * np.sin(rot)
    py = cy + x * np.sin(rot) + y * np.cos(rot)
    canvas = np.zeros((s * SUPER, s * SUPER), np.uint8)
    cv2.fillPoly(canvas, [np.round(np.stack([px, py], 1) * SUPER).astype(np.int32)], 255, cv2.LINE_AA)
    a = _reduce(canvas, s)
    return cv2.GaussianBlur(a, (0, 0), feather) if feather > 0 else a


def curve(s: int, cx: float, cy: float, length: float, width: float, rng: np.random.Generator) -> np.ndarray:
    """A gently curved line (cubic Bézier) as a soft alpha."""
    ang = rng.uniform(0, np.pi)
    d = np.array([np.cos(ang), np.sin(ang)]) * length / 2
    n = np.array([-d[1], d[0]])
    p0, p3 = np.array([cx, cy]) - d, np.array([cx, cy]) + d
    p1 = p0 + d * 0.66 + n * rng.uniform(-0.5, 0.5)
    p2 = p0 + d * 1.33 + n * rng.uniform(-0.5, 0.5)
    t = np.linspace(0, 1, 64)[:, None]
    pts = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3
    canvas = np.zeros((s * SUPER, s * SUPER), np.uint8)
    cv2.polylines(canvas, [np.round(pts * SUPER).astype(np.int32)], False, 255,
                  max(1, int(round(width * SUPER))), cv2.LINE_AA)
    return _reduce(canvas, s)


def scratch(img, site, sev, rng):
    s = img.shape[0]
    cx, cy = site.place(rng)
    a = curve(s, cx, cy, s * _lerp(0.12, 0.45, sev), max(0.8, s / 256 * _lerp(1.0, 2.5, sev)), rng)
    sign = rng.choice([-1.0, 1.0])
    return img + (sign * _lerp(0.06, 0.30, sev) * a)[..., None], a


def patch(img, site, sev, rng):
    """Foreign material pasted in: a piece of another photo, matched towards the local colour."""
    s = img.shape[0]
    cx, cy = site.place(rng)
    a = blob(s, cx, cy, s * _lerp(0.04, 0.11, sev), rng, feather=s / 256 * 1.5)
    piece = site.donor(rng, s)
    sel = a > 0.5
    keep = _lerp(0.75, 0.2, sev)  # how much of the local colour statistics the piece takes on
    for c in range(3):
        mu_l, mu_p = img[..., c][sel].mean(), piece[..., c][sel].mean()
        sd_l, sd_p = img[..., c][sel].std() + 1e-3, piece[..., c][sel].std() + 1e-3
        matched = (piece[..., c] - mu_p) / sd_p * sd_l + mu_l
        piece[..., c] = keep * matched + (1 - keep) * piece[..., c]
    return img * (1 - a[..., None]) + piece * a[..., None], a


def smudge(img, site, sev, rng):
    """A local smear: blurred, slightly hazed."""
    s = img.shape[0]
    cx, cy = site.place(rng)
    a = blob(s, cx, cy, s * _lerp(0.05, 0.13, sev), rng, feather=s / 256 * 3)
    soft = cv2.GaussianBlur(img, (0, 0), s / 256 * _lerp(1.5, 4.0, sev))
    haze = soft + (soft.mean() - soft) * _lerp(0.0, 0.3, sev) + rng.uniform(-0.04, 0.04)
    return img * (1 - a[..., None]) + haze * a[..., None], a


STAIN_TINTS = np.array([[1.0, 0.72, 0.45], [0.8, 0.7, 0.55], [1.0, 0.95, 0.6], [0.7, 0.75, 0.8], [0.95, 0.6, 0.55]],
                       np.float32)


def stain(img, site, sev, rng):
    """Discolouration that the texture shows through, with a slightly darker rim."""
    s = img.shape[0]
    cx, cy = site.place(rng)
    a = blob(s, cx, cy, s * _lerp(0.05, 0.15, sev), rng, feather=s / 256 * 2.5)
    rim = np.clip(a - cv2.erode(a, np.ones((3, 3), np.uint8), iterations=max(1, s // 128)), 0, 1)
    tint = STAIN_TINTS[rng.integers(len(STAIN_TINTS))]
    k = _lerp(0.35, 0.85, sev)
    stained = img * (1 - k + k * tint) - 0.1 * k * rim[..., None]
    return img * (1 - a[..., None]) + stained * a[..., None], a


def hole(img, site, sev, rng):
    """Missing material: a dark rough pit, shadowed on the lit side, its far rim catching the light."""
    s = img.shape[0]
    cx, cy = site.place(rng)
    a = blob(s, cx, cy, s * _lerp(0.02, 0.06, sev), rng, feather=s / 256 * 0.8)
    depth = cv2.GaussianBlur(a, (0, 0), s / 256 * 2)
    light = np.array([np.cos(0.8), np.sin(0.8)])
    shade = cv2.Sobel(depth, cv2.CV_32F, 1, 0) * light[0] + cv2.Sobel(depth, cv2.CV_32F, 0, 1) * light[1]
    local = float((img.mean(2) * a).sum() / max(a.sum(), 1e-6))
    bottom = local * _lerp(0.55, 0.15, sev) + rng.normal(size=a.shape).astype(np.float32) * 0.03
    out = img * (1 - a[..., None]) + bottom[..., None] * a[..., None]
    out = out + (np.clip(shade, 0, None) * local * _lerp(0.3, 0.8, sev))[..., None]
    return out, np.maximum(a, np.clip(shade * 4, 0, 1))


def particle(img, site, sev, rng):
    """Foreign particles: a few specks and fibres, dark or light."""
    s = img.shape[0]
    a_all = np.zeros((s, s), np.float32)
    out = img.copy()
    cx, cy = site.place(rng)
    for _ in range(rng.integers(1, 4)):
        px, py = cx + rng.normal() * s * 0.04, cy + rng.normal() * s * 0.04
        if rng.random() < 0.5:
            a = blob(s, px, py, s / 256 * _lerp(1.5, 4.0, sev), rng, feather=0.5)
        else:
            a = curve(s, px, py, s / 256 * _lerp(8, 30, sev), max(0.7, s / 256 * 1.2), rng)
        colour = rng.uniform(0.0, 0.25, 3) if rng.random() < 0.7 else rng.uniform(0.7, 1.0, 3)
        opacity = _lerp(0.5, 0.95, sev)
        out = out * (1 - opacity * a[..., None]) + colour.astype(np.float32) * opacity * a[..., None]
        a_all = np.maximum(a_all, a)
    return out, a_all


def bent(img, site, sev, rng):
    """A bent or displaced part: the content of a region pushed sideways or twisted, smoothly."""
    s = img.shape[0]
    cx, cy = site.place(rng)
    radius = s * _lerp(0.06, 0.14, sev)
    gx, gy = np.meshgrid(np.arange(s, dtype=np.float32), np.arange(s, dtype=np.float32))
    w = np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * (radius / 1.6) ** 2)).astype(np.float32)
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * np.pi)
        amp = s / 256 * _lerp(3.0, 9.0, sev)
        mx, my = gx - np.cos(ang) * amp * w, gy - np.sin(ang) * amp * w
    else:
        th = np.deg2rad(_lerp(8, 25, sev)) * rng.choice([-1, 1]) * w
        dx, dy = gx - cx, gy - cy
        mx, my = cx + dx * np.cos(th) - dy * np.sin(th), cy + dx * np.sin(th) + dy * np.cos(th)
    out = cv2.remap(img, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT101)
    change = cv2.GaussianBlur(np.abs(out - img).max(2), (0, 0), s / 256 * 1.5)
    a = np.clip(change / 0.08, 0, 1) * (w > 0.15)
    return out, cv2.GaussianBlur(a.astype(np.float32), (0, 0), s / 256)


def missing(img, site, sev, rng):
    """A missing piece of the part: the region filled in from its surroundings (what is behind it)."""
    s = img.shape[0]
    cx, cy = site.place(rng)
    a = blob(s, cx, cy, s * _lerp(0.03, 0.08, sev), rng, feather=s / 256)
    u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    hole_mask = (cv2.dilate((a > 0.05).astype(np.uint8), np.ones((3, 3), np.uint8)) * 255)
    filled = cv2.inpaint(u8, hole_mask, max(3, s // 40), cv2.INPAINT_TELEA).astype(np.float32) / 255
    return img * (1 - a[..., None]) + filled * a[..., None], a


PLANTERS = {"scratch": scratch, "patch": patch, "smudge": smudge, "stain": stain, "hole": hole,
            "particle": particle, "bent": bent, "missing": missing}

MIN_CHANGE = 0.025  # mean absolute change inside the mask: a defect that changed nothing is redrawn


def plant(kind: str, img: np.ndarray, site: Site, sev: float, rng: np.random.Generator,
          tries: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(defective image clipped to [0, 1], bool mask). Redrawn until the mask is non-empty and visible."""
    s = img.shape[0]
    min_px = max(4, int(2.5e-4 * s * s))
    best = None
    for _ in range(tries):
        out, a = PLANTERS[kind](img, site, sev, rng)
        out = np.clip(out, 0, 1).astype(np.float32)
        mask = a >= 0.5
        if mask.sum() < min_px:
            continue
        change = float(np.abs(out - img).max(2)[mask].mean())
        if change >= MIN_CHANGE:
            return out, mask
        if best is None or change > best[0]:
            best = (change, out, mask)
    if best is None:
        raise RuntimeError(f"could not plant a {kind} defect with a non-empty mask")
    return best[1], best[2]
