"""A positioned test part (plate, holes, slot, rib) and folders of it moved a little: what registration
(edge/registration.py) finds something to correct in. Shared by the registration and cascade tests."""

from __future__ import annotations

import cv2
import numpy as np


def part(size: int = 256, seed: int = 0) -> np.ndarray:
    """A machined part: plate, holes, a slot and a rib, with a little grain."""
    rng = np.random.default_rng(seed)
    s = size / 256
    img = np.full((size, size, 3), 70, np.uint8)
    cv2.rectangle(img, (int(40 * s), int(50 * s)), (int(215 * s), int(200 * s)), (170, 170, 175), -1)
    cv2.circle(img, (int(80 * s), int(90 * s)), int(18 * s), (40, 40, 40), -1)
    cv2.circle(img, (int(175 * s), int(160 * s)), int(12 * s), (40, 40, 40), -1)
    cv2.rectangle(img, (int(110 * s), int(120 * s)), (int(190 * s), int(132 * s)), (90, 90, 95), -1)
    cv2.line(img, (int(60 * s), int(180 * s)), (int(140 * s), int(70 * s)), (210, 210, 215), max(1, int(5 * s)))
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def moved(img: np.ndarray, angle_deg: float, dx: float, dy: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def part_folder(root, n: int, size: int = 64, seed: int = 0):
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = moved(part(size, seed=i), rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-2, 2))
        cv2.imwrite(str(root / f"{i:03d}.png"), img)
    return sorted(root.glob("*.png"))
