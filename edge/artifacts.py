"""What one inspection leaves on disk and in the log; shared by `score` and the line runtime's storage.

Pure helpers: build the decision record for an inspection (or for an input that could not be
inspected), clean names for output files, and draw/write an inspection's overlay and mask.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from .imageio import write_image, write_png
from .stage import Inspection
from .records import DecisionRecord, utc_now
from .visualize import heat_overlay


def clean_name(text: str, fallback: str = "image") -> str:
    """A string made safe as one file-name part: runs of anything but letters, digits, . _ - become _."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or fallback


def inspection_record(image: str, res: Inspection, inspector_id: str, *, mask: Path | None = None,
                      anomaly_map: Path | None = None, overlay: Path | None = None,
                      timings_ms: dict[str, float] | None = None, timestamp: str | None = None,
                      class_masks: dict[str, str] | None = None) -> DecisionRecord:
    """The decision record of one successful inspection (scores rounded as in results.jsonl)."""
    return DecisionRecord(image=image, decision=res.decision, score=round(res.score, 5),
                          raw_score=round(res.raw_score, 5), mask=str(mask) if mask else None,
                          anomaly_map=str(anomaly_map) if anomaly_map else None,
                          overlay=str(overlay) if overlay else None, inspector=inspector_id,
                          timestamp=timestamp or utc_now(),
                          timings_ms=res.timings_ms if timings_ms is None else timings_ms,
                          label=res.label, classes={k: round(float(v), 5) for k, v in res.classes.items()},
                          areas={k: int(v) for k, v in res.areas.items()}, class_masks=dict(class_masks or {}),
                          stages=[dict(st) for st in res.stages])


def error_record(image: str, error: str, inspector_id: str | None, *, timings_ms: dict[str, float] | None = None,
                 timestamp: str | None = None) -> DecisionRecord:
    """The record of an input that could not be inspected: decision ERROR, with the reason."""
    return DecisionRecord(image=image, decision="ERROR", inspector=inspector_id, error=error or "no result",
                          timestamp=timestamp or utc_now(), timings_ms=dict(timings_ms or {}))


OVERLAY_SUFFIX = "_overlay.jpg"  # overlays are JPEG: they are for looking at (masks stay lossless PNG)
OVERLAY_PIXELS = 1024 * 1024  # overlays are for looking at: larger images are drawn 1/k the size, at most this


def overlay_scale(shape: tuple[int, int]) -> int:
    """k: an image of ``shape`` (h, w) is drawn at 1/k of its size in overlays, the smallest whole k that
    brings it to OVERLAY_PIXELS or under (1: at its own size). A 3872x3200 photo: 4 (968x800); a 1600x256
    strip: 1."""
    h, w = shape[:2]
    k = 1
    while (h // k) * (w // k) > OVERLAY_PIXELS and k < min(h, w):  # never below one pixel a side
        k += 1
    return k


def shrink_by(a: np.ndarray, k: int) -> np.ndarray:
    """``a`` (image or map) at 1/k of its size, each output pixel the mean of a k x k block (OpenCV's fast
    whole-factor area path); the last rows and columns that do not fill a block are left out."""
    if k == 1:
        return a
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return cv2.resize(a[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)


def overlay_image(img: np.ndarray, res: Inspection, threshold: float) -> np.ndarray:
    """Heat map + mask outline + "NG  score 1.23" caption (a classifier without maps: the caption only).
    An image over OVERLAY_PIXELS is drawn at 1/k of its size (:func:`overlay_scale`; a
    3872x3200 photo's overlay was ~0.6 s of CPU to draw and encode as a 2048-px PNG, ~0.05 s at 968x800);
    the mask PNG keeps the image's size. A mask pixel anywhere in a k x k block marks the block, so thin
    defects keep their outline."""
    caption = f"{res.decision}  score {res.score:.2f}" + (f"  {res.label}" if res.label else "")
    if res.map_threshold is not None:  # the map is in other units than the score (a probability)
        threshold = res.map_threshold
    amap, mask = res.anomaly_map, res.mask
    k = overlay_scale(img.shape)
    if k > 1:
        img = shrink_by(img, k)
        amap = None if amap is None else shrink_by(amap, k)
        mask = None if mask is None else (shrink_by(mask, k) > 0).astype(np.uint8) * 255
    if amap is None:
        return heat_overlay(img, np.zeros(img.shape[:2], np.float32), None, 1.0, caption)
    return heat_overlay(img, amap, mask, threshold, caption)


def write_overlay(path: Path, img: np.ndarray, res: Inspection, threshold: float) -> None:
    """The overlay as JPEG (``path`` ends in :data:`OVERLAY_SUFFIX`)."""
    write_image(path, overlay_image(img, res, threshold))


def write_mask(path: Path, res: Inspection) -> None:
    write_png(path, res.mask)
