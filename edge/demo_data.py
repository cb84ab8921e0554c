"""Synthetic inspection data with known answers, in MVTec AD layout.

No public defect dataset is reachable from the line or from CI, so the demo and the tests
make their own: textured surfaces (brushed metal, woven fabric, cast grain) with planted
defects (scratches, spots, dents, contamination) and exact ground-truth masks.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .imageio import write_png

TEXTURES = ("metal", "fabric", "casting")
DEFECTS = ("scratch", "spot", "crack", "stain")


def texture(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A good part's surface as 8-bit BGR. Each call varies lighting, phase and noise."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "metal":  # brushed: horizontal streaks
        streak = cv2.GaussianBlur(rng.normal(0, 1, (h, 1)).astype(np.float32), (1, 0), 3)
        base = 140 + 18 * np.repeat(streak, w, axis=1) + rng.normal(0, 4, (h, w))
        base += 10 * np.sin(xx / w * np.pi + rng.uniform(0, 6))
        col = np.array([1.0, 1.0, 1.02])
    elif kind == "fabric":  # woven: crossed sinusoids
        p = rng.uniform(0, 2 * np.pi, 2)
        f = 2 * np.pi / 8.0
        base = 120 + 28 * np.sin(xx * f + p[0]) * np.sin(yy * f + p[1]) + rng.normal(0, 6, (h, w))
        col = np.array([0.75, 0.9, 1.1])
    elif kind == "casting":  # grainy blobs
        n = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
        n = cv2.resize(cv2.GaussianBlur(n, (0, 0), 1.2), (w, h), interpolation=cv2.INTER_CUBIC)
        base = 110 + 22 * n + rng.normal(0, 5, (h, w))
        col = np.array([0.95, 0.95, 0.95])
    else:
        raise ValueError(f"unknown texture {kind!r}; choose from {TEXTURES}")
    base = base * rng.uniform(0.92, 1.08)  # lighting drift between shots
    img = np.clip(base[..., None] * col[None, None, :], 0, 255)
    return img.astype(np.uint8)


def plant_defect(img: np.ndarray, kind: str, rng: np.random.Generator,
                 strength: tuple[float, float] = (0.3, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Draw a defect with a contrast drawn from ``strength`` (1.0 = bold); return (image, mask 0/255)."""
    h, w = img.shape[:2]
    out = img.copy()
    mask = np.zeros((h, w), np.uint8)
    s = min(h, w)
    cx, cy = int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h)
    if kind == "scratch":
        ang = rng.uniform(0, np.pi)
        L = rng.uniform(0.2, 0.4) * s
        p1 = (int(cx - L / 2 * np.cos(ang)), int(cy - L / 2 * np.sin(ang)))
        p2 = (int(cx + L / 2 * np.cos(ang)), int(cy + L / 2 * np.sin(ang)))
        t = max(2, s // 64)
        cv2.line(mask, p1, p2, 255, t)
        shade = rng.choice([-70, 70])
    elif kind == "spot":
        r = int(rng.uniform(0.04, 0.08) * s)
        cv2.circle(mask, (cx, cy), r, 255, -1)
        shade = -80
    elif kind == "crack":
        pts = [(cx, cy)]
        for _ in range(6):
            x, y = pts[-1]
            pts.append((int(np.clip(x + rng.integers(-s // 14, s // 14 + 1), 0, w - 1)),
                        int(np.clip(y + rng.integers(s // 40, s // 14 + 1), 0, h - 1))))
        cv2.polylines(mask, [np.array(pts, np.int32)], False, 255, max(2, s // 80))
        shade = -90
    elif kind == "stain":
        axes = (int(rng.uniform(0.05, 0.1) * s), int(rng.uniform(0.03, 0.07) * s))
        cv2.ellipse(mask, (cx, cy), axes, rng.uniform(0, 180), 0, 360, 255, -1)
        shade = None
    else:
        raise ValueError(f"unknown defect {kind!r}; choose from {DEFECTS}")
    m = mask > 0
    strength = rng.uniform(*strength)  # some defects are faint, as on a real line
    if shade is None:  # colour contamination
        tint = np.array([30, 90, 160], np.float32)
        a = 0.6 * strength
        out[m] = np.clip((1 - a) * out[m].astype(np.float32) + a * tint, 0, 255).astype(np.uint8)
    else:
        out[m] = np.clip(out[m].astype(np.int16) + int(shade * strength), 0, 255).astype(np.uint8)
    return out, mask


def make_category(root: str | Path, texture_kind: str = "metal", n_train: int = 40, n_test_good: int = 10,
                  n_per_defect: int = 6, defects: tuple[str, ...] = DEFECTS, size: tuple[int, int] = (256, 256),
                  seed: int = 0, strength: tuple[float, float] = (0.15, 0.8)) -> Path:
    """Write an MVTec-layout category with known defects; returns its root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "train" / "good").mkdir(parents=True, exist_ok=True)
    (root / "test" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        write_png(root / "train" / "good" / f"{i:03d}.png", texture(texture_kind, size, rng))
    for i in range(n_test_good):
        write_png(root / "test" / "good" / f"{i:03d}.png", texture(texture_kind, size, rng))
    for kind in defects:
        (root / "test" / kind).mkdir(parents=True, exist_ok=True)
        (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_defect):
            img, mask = plant_defect(texture(texture_kind, size, rng), kind, rng, strength)
            write_png(root / "test" / kind / f"{i:03d}.png", img)
            write_png(root / "ground_truth" / kind / f"{i:03d}_mask.png", mask)
    return root
