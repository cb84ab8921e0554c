"""`calibrate`: set thresholds from labelled data (F1-optimal, zero false rejects, or a target recall)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Callable

import numpy as np

from .evaluate import score_category
from .inspector import Inspector
from .inspector_dir import Calibration, replace_calibration
from .threshold import _best_f1, labelled_threshold


def calibrate_labelled(category: str | Path, inspector: Inspector, method: str = "f1", target_recall: float = 0.95,
                       out: str | Path | None = None, batch_size: int = 8,
                       progress: Callable[[int], None] | None = None) -> Calibration:
    """Score the labelled test set, choose thresholds, and write them into the inspector atomically.

    The pixel threshold is F1-optimal over ground-truth mask pixels when masks exist; otherwise it
    keeps its ratio to the image threshold.
    """
    work = Path(out) if out else inspector.root.with_name(inspector.root.name + "-calibration")
    ss = score_category(category, inspector, work, batch_size, progress)
    img_thr, info = labelled_threshold(ss.scores, ss.labels, method, target_recall)
    old = inspector.calibration
    if ss.has_masks:
        pix_thr, pix_f1 = _best_f1(*[a.astype(np.float64) if i == 0 else a for i, a in enumerate(ss.pixels(400_000))])
        info["pixel_f1"] = pix_f1
        pix_rule = "F1-optimal over ground-truth mask pixels"
    else:
        pix_thr = img_thr * old.pixel_threshold / old.image_threshold
        pix_rule = "kept the previous pixel/image threshold ratio (no ground-truth masks)"
    cal = Calibration(float(img_thr), float(pix_thr), method, {
        **info, "pixel_rule": pix_rule, "category": str(category),
        "previous": {"image_threshold": old.image_threshold, "pixel_threshold": old.pixel_threshold,
                     "method": old.method},
        "good_scores": old.details.get("good_scores", {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    replace_calibration(inspector.root, cal)
    return cal
