"""`calibrate --model`: a supervised bundle's thresholds from a labelled folder, with the same
methods as PaDiM (edge/threshold.py: f1, zero-false-reject, recall).

The rule that decides (``decide_by``, see .calibration; ``--decide-by`` switches it) says which
threshold is calibrated:

* ``class`` (classifier, multitask): ``ng_threshold`` on P(NG);
* ``peak`` (segmenter, multitask): ``peak_threshold`` on each image's largest defect probability;
* ``area`` (segmenter, multitask): ``min_area`` per defect class, on each image's area of that class (pixels at the
  bundle's input size). A class named like a ``test/<kind>`` folder is judged on the good images
  and that kind's (a per-kind segmenter); when no class is named like a folder (one class
  ``defect``), every class is judged on all the defect images. A class with no folder of its name,
  beside classes that have one, keeps its min area. The mask threshold stays as it is. The part
  is NG when any class reaches its min area; recall and false rejects are given for that rule and
  per class.

The block is rewritten in the bundle's manifest atomically, the old values kept under ``previous``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError
from ..threshold import labelled_threshold
from .calibration import RULES, SupervisedCalibration, write_calibration
from .stage import SupervisedStage


@dataclass(frozen=True)
class SupervisedCalibrationReport:
    calibration: SupervisedCalibration
    previous: SupervisedCalibration
    what: str  # "ng_threshold" | "peak_threshold" | "min_area"
    info: dict[str, Any]


def calibrate_supervised(category: str | Path, stage: SupervisedStage, method: str = "f1",
                         target_recall: float = 0.95, out: str | Path | None = None, batch_size: int = 8,
                         progress: Callable[[int], None] | None = None,
                         decide_by: str | None = None) -> SupervisedCalibrationReport:
    """``decide_by`` ("class", "area" or "peak": one of the kind's ``RULES``) sets what decides from
    now on, and the thresholds of that rule are calibrated; None keeps the model's rule."""
    from ..evaluate import score_category

    previous = stage.calibration
    if decide_by is not None:
        if decide_by not in RULES[stage.kind]:
            raise DataError(f"--decide-by {decide_by}: a {stage.kind} decides by {' or '.join(RULES[stage.kind])} "
                            f"({stage.bundle.root})")
        stage = SupervisedStage(stage.bundle, dataclasses.replace(previous, decide_by=decide_by), stage.backend)
    old = stage.calibration
    root = stage.bundle.root
    work = Path(out) if out else root.with_name(root.name + "-calibration")
    if stage.decides_by_area:
        # score with a min area of 1 px for every class: each class's area is then its own score
        probe = SupervisedStage(stage.bundle, dataclasses.replace(
            old, min_area={c: 1 for c in old.min_area}, method="probe"), stage.backend)
        ss = score_category(category, probe, work, batch_size, progress)
        areas, per_class, info = per_class_min_areas(ss.class_areas, ss.kinds, old.min_area, method, target_recall)
        new = dataclasses.replace(old, min_area=areas, method=method)
        info = {**info, "per_class": per_class}
        ng = np.array([any(a.get(c, 0.0) >= areas[c] for c in areas) for a in ss.class_areas])
        what = "min_area"
    else:  # class or peak: the raw score is a probability, P(NG) or the largest defect probability
        ss = score_category(category, stage, work, batch_size, progress)
        thr, info = labelled_threshold(ss.scores, ss.labels, method, target_recall)
        thr = float(min(max(thr, 1e-6), 1.0))
        what = "peak_threshold" if stage.rule == "peak" else "ng_threshold"
        new = dataclasses.replace(old, method=method, **{what: thr})
        ng = np.asarray(ss.scores) >= thr
    # the rates at the thresholds actually written (min areas are rounded up to whole pixels)
    y = np.asarray(ss.labels, bool)
    info = {**info, "recall": float((ng & y).sum() / y.sum()), "false_reject_rate": float((ng & ~y).sum() / (~y).sum()),
            "n_good": int((~y).sum()), "n_defect": int(y.sum()), "category": str(category), "n_images": int(y.size)}
    new = dataclasses.replace(new, validation=info, previous={})
    write_calibration(root, new, previous)
    return SupervisedCalibrationReport(new, previous, what, info)


def per_class_min_areas(class_areas: list[dict[str, float]], kinds: list[str], current: dict[str, int],
                        method: str, target_recall: float) -> tuple[dict[str, int], dict[str, dict], dict]:
    """Each class's min area from its labelled areas (see the module doc for which images judge a
    class). Returns (min areas, per-class details, the threshold info of the first class judged)."""
    kinds_arr = np.asarray(kinds)
    good = kinds_arr == "good"
    named = [c for c in current if c in set(kinds)]
    areas, details, first = {}, {}, {}
    for c in current:
        if named and c not in named:
            areas[c] = current[c]
            details[c] = {"min_area": current[c], "kept": f"no test/{c} folder to judge it on"}
            continue
        sel = good | (kinds_arr == c) if named else np.ones(len(kinds), bool)
        scores = np.asarray([a.get(c, 0.0) for a in class_areas])[sel]
        y = ~good[sel]
        thr, info = labelled_threshold(scores, y, method, target_recall)
        areas[c] = max(1, math.ceil(thr))
        hit = scores >= areas[c]
        details[c] = {"min_area": areas[c], "judged_on": f"good and test/{c}" if named else "good and every defect",
                      "recall": float((hit & y).sum() / y.sum()), "false_reject_rate": float((hit & ~y).sum() / (~y).sum()),
                      "n_defect": int(y.sum()), "n_good": int((~y).sum())}
        first = first or {k: v for k, v in info.items() if k not in ("recall", "false_reject_rate", "n_good", "n_defect")}
    return areas, details, first
