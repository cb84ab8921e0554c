"""What one inspection leaves on disk and in the log; shared by `score` and the line runtime's storage.

Pure helpers: build the decision record for an inspection, and draw/write its overlay and mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .imageio import write_png
from .inspector import Inspection
from .records import DecisionRecord, utc_now
from .visualize import heat_overlay


def inspection_record(image: str, res: Inspection, inspector_id: str, *, mask: Path | None = None,
                      anomaly_map: Path | None = None, overlay: Path | None = None,
                      timings_ms: dict[str, float] | None = None, timestamp: str | None = None) -> DecisionRecord:
    """The decision record of one successful inspection (scores rounded as in results.jsonl)."""
    return DecisionRecord(image=image, decision=res.decision, score=round(res.score, 5),
                          raw_score=round(res.raw_score, 5), mask=str(mask) if mask else None,
                          anomaly_map=str(anomaly_map) if anomaly_map else None,
                          overlay=str(overlay) if overlay else None, inspector=inspector_id,
                          timestamp=timestamp or utc_now(),
                          timings_ms=res.timings_ms if timings_ms is None else timings_ms)


def overlay_image(img: np.ndarray, res: Inspection, threshold: float) -> np.ndarray:
    """Heat map + mask outline + "NG  score 1.23" caption."""
    return heat_overlay(img, res.anomaly_map, res.mask, threshold, f"{res.decision}  score {res.score:.2f}")


def write_overlay(path: Path, img: np.ndarray, res: Inspection, threshold: float) -> None:
    write_png(path, overlay_image(img, res, threshold))


def write_mask(path: Path, res: Inspection) -> None:
    write_png(path, res.mask)
