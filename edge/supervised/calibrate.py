"""`calibrate --model`: a supervised bundle's thresholds from a labelled folder, with the same
methods as PaDiM (edge/threshold.py: f1, zero-false-reject, recall).

* classifier, multitask: ``ng_threshold`` on P(NG);
* segmenter: ``min_area``, one value for every defect class, on each image's largest defect area
  (pixels at the bundle's input size). The mask threshold stays as it is.

The block is rewritten in the bundle's manifest atomically, the old values kept under ``previous``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..threshold import labelled_threshold
from .calibration import SupervisedCalibration, write_calibration
from .stage import SupervisedStage


@dataclass(frozen=True)
class SupervisedCalibrationReport:
    calibration: SupervisedCalibration
    previous: SupervisedCalibration
    what: str  # "ng_threshold" | "min_area"
    info: dict[str, Any]


def calibrate_supervised(category: str | Path, stage: SupervisedStage, method: str = "f1",
                         target_recall: float = 0.95, out: str | Path | None = None, batch_size: int = 8,
                         progress: Callable[[int], None] | None = None) -> SupervisedCalibrationReport:
    from ..evaluate import score_category

    old = stage.calibration
    root = stage.bundle.root
    work = Path(out) if out else root.with_name(root.name + "-calibration")
    area = None
    if stage.decides_by_area:
        # score with a min area of 1 px for every class: the raw score is then the largest area
        probe = SupervisedStage(stage.bundle, dataclasses.replace(
            old, min_area={c: 1 for c in old.min_area}, method="probe"), stage.backend)
        ss = score_category(category, probe, work, batch_size, progress)
        thr, info = labelled_threshold(ss.scores, ss.labels, method, target_recall)
        area = max(1, math.ceil(thr))
        new = dataclasses.replace(old, min_area={c: area for c in old.min_area}, method=method)
        what = "min_area"
    else:
        ss = score_category(category, stage, work, batch_size, progress)
        thr, info = labelled_threshold(ss.scores, ss.labels, method, target_recall)
        new = dataclasses.replace(old, ng_threshold=float(min(max(thr, 1e-6), 1.0)), method=method)
        what = "ng_threshold"
    # the rates at the threshold actually written (a min area is rounded up to whole pixels)
    cut = area if stage.decides_by_area else new.ng_threshold
    ng, y = np.asarray(ss.scores) >= cut, np.asarray(ss.labels, bool)
    info = {**info, "recall": float((ng & y).sum() / y.sum()), "false_reject_rate": float((ng & ~y).sum() / (~y).sum()),
            "category": str(category), "n_images": int(y.size)}
    new = dataclasses.replace(new, validation=info, previous={})
    write_calibration(root, new, old)
    return SupervisedCalibrationReport(new, old, what, info)
