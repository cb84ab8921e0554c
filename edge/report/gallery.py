"""The worst cases of an evaluation, as small pictures: input, heat map, predicted mask, ground truth.

``eval`` calls :func:`write_gallery` while it still holds the (reduced) maps and masks; it writes
``gallery/*.png`` and ``gallery.json``, which the report reads. OpenCV only, so it runs on the
line device too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..bundle import write_json
from ..imageio import read_image, write_png
from ..visualize import heat_overlay

GALLERY_JSON = "gallery.json"
TILE = 224  # longest side of each picture, pixels
GROUPS = {
    "missed": "Missed defects (defective parts the inspector passed), lowest score first",
    "false_reject": "False rejects (good parts the inspector rejected), highest score first",
    "low_margin": "Closest calls: good parts passed as OK with the least margin below the threshold",
    "hard_catch": "Hardest catches: defective parts rejected with the least margin above the threshold",
}


@dataclass(frozen=True)
class GalleryCase:
    """One case of the gallery; picture paths are relative to the eval folder."""

    group: str
    image: str
    kind: str
    score: float  # normalised, 1.0 = threshold (as in scores.jsonl)
    raw_score: float
    pictures: dict[str, str]  # input, heat, predicted, truth → relative PNG path
    predicted_pixels: int = 0  # how much of the (reduced) picture each mask covers
    truth_pixels: int = 0


@dataclass(frozen=True)
class CaseData:
    """What the gallery needs of one scored image (maps reduced as for the pixel metrics)."""

    image: str
    kind: str
    is_defect: bool
    raw_score: float
    anomaly_map: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray


def pick_cases(raw: np.ndarray, labels: np.ndarray, threshold: float, per_group: int = 4) -> dict[str, list[int]]:
    """Indices of the worst cases per group, worst first."""
    raw = np.asarray(raw, float)
    labels = np.asarray(labels, bool)
    ng = raw >= threshold
    missed = np.flatnonzero(labels & ~ng)
    false_rej = np.flatnonzero(~labels & ng)
    ok = np.flatnonzero(~ng & ~labels)  # good parts passed: a missed defect is already shown above
    caught = np.flatnonzero(labels & ng)
    return {
        "missed": missed[np.argsort(raw[missed], kind="stable")][:per_group].tolist(),
        "false_reject": false_rej[np.argsort(-raw[false_rej], kind="stable")][:per_group].tolist(),
        "low_margin": ok[np.argsort(threshold - raw[ok], kind="stable")][:per_group].tolist(),
        "hard_catch": caught[np.argsort(raw[caught], kind="stable")][:per_group].tolist(),
    }


def _fit(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    f = TILE / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST)


def _tint(base: np.ndarray, mask: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    """The image dimmed to grey, the mask's pixels in colour with a bright outline."""
    grey = cv2.cvtColor(cv2.cvtColor(base, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    out = (grey * 0.5).astype(np.uint8)
    m = mask.astype(bool)
    if m.any():
        out[m] = (0.35 * out[m] + 0.65 * np.asarray(bgr, float)).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, bgr, 1)
    return out


def case_pictures(c: CaseData, pixel_threshold: float) -> dict[str, np.ndarray]:
    h, w = c.anomaly_map.shape
    img = read_image(c.image)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    pred = cv2.resize(c.predicted.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    truth = cv2.resize(c.truth.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return {"input": _fit(img),
            "heat": _fit(heat_overlay(img, c.anomaly_map, None, pixel_threshold)),
            "predicted": _fit(_tint(img, pred, (40, 40, 255))),
            "truth": _fit(_tint(img, truth, (60, 220, 60)))}


def write_gallery(out: Path, cases: list[CaseData], image_threshold: float, pixel_threshold: float,
                  per_group: int = 4) -> list[GalleryCase]:
    """Pick the worst cases, write their pictures under ``out/gallery`` and list them in gallery.json."""
    picks = pick_cases(np.asarray([c.raw_score for c in cases]), np.asarray([c.is_defect for c in cases]),
                       image_threshold, per_group)
    (out / "gallery").mkdir(parents=True, exist_ok=True)
    listed: list[GalleryCase] = []
    for group, idx in picks.items():
        for rank, i in enumerate(idx):
            c = cases[i]
            rel = {}
            for what, pic in case_pictures(c, pixel_threshold).items():
                p = Path("gallery") / f"{group}-{rank:02d}-{what}.png"
                write_png(out / p, pic)
                rel[what] = p.as_posix()
            listed.append(GalleryCase(group, c.image, c.kind, float(c.raw_score / image_threshold),
                                      float(c.raw_score), rel, int(c.predicted.sum()), int(c.truth.sum())))
    write_json(out / GALLERY_JSON, {"groups": GROUPS, "image_threshold": image_threshold,
                                    "cases": [asdict(g) for g in listed]})
    return listed
