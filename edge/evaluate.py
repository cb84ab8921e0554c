"""`eval`: fit (if needed), score an MVTec-layout test set, and report metrics with pictures.

Any model stage: a PaDiM inspector, or a classifier, segmenter or multitask bundle. Decisions are
the stage's own; image AUROC ranks by its raw score (PaDiM: distance, classifier: P(NG),
segmenter: the mask area, ties broken by the peak defect probability). Models with masks add
``dice`` (mean over defective images of the predicted mask against the ground truth) and
``per_class`` Dice and IoU.

Writes to OUT: metrics.json (every number), curves.json (ROC/PR points), scores.jsonl (one line per
image), gallery.json + gallery/ (worst cases), and, with matplotlib, report.html, roc.png, scores.png.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .bundle import write_json
from .dataset import load_category
from .errors import DataError
from .imageio import read_mask
from .inspector import Inspector
from .metrics import (auroc, average_precision, binom_cdf, confusion, dense_ranks, dice_iou, f1_scores, pr_curve,
                      pro_auc, roc_curve)
from .report import report_available, write_report
from .report.gallery import CaseData, write_gallery
from .scoring import score_paths
from .stage import Inspection, ModelStage
from .supervised.calibration import DECIDE_BY

METRIC_SIDE = 512  # maps larger than this are reduced for pixel metrics, to bound memory
PIXEL_SAMPLE = 400_000  # pixels sampled (seeded) for the pixel PR curve, AP and ROC curve


@dataclass
class EvalResult:
    metrics: dict
    out: Path
    report: Path | None = None  # None when matplotlib (the `report` extra) is not installed


def _small(a: np.ndarray, nearest: bool) -> np.ndarray:
    h, w = a.shape[:2]
    f = METRIC_SIDE / max(h, w)
    if f >= 1:
        return a
    size = (max(1, int(w * f)), max(1, int(h * f)))
    return cv2.resize(a.astype(np.uint8) if nearest else a, size,
                      interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


@dataclass
class ScoredSet:
    """Scores, labels and (reduced) maps of a scored MVTec test set."""

    scores: np.ndarray
    labels: np.ndarray
    kinds: list[str]
    names: list[str]
    maps: list[np.ndarray]
    masks: list[np.ndarray]
    n_errors: int
    predicted: list[np.ndarray] = field(default_factory=list)
    decisions: list[bool] = field(default_factory=list)  # the stage's own NG decision per image
    rank: list[tuple[float, float]] = field(default_factory=list)  # what image AUROC ranks by (image_rank)
    has_maps: bool = True  # False: the stage gives no maps (a classifier)
    # models with masks, per defective image: Dice/IoU of the union mask and of each class's mask
    seg: list[dict] = field(default_factory=list)
    # segmenters, per image: each defect class's area in pixels at the model's input size (what min_area counts)
    class_areas: list[dict[str, float]] = field(default_factory=list)
    errors_by_kind: dict[str, int] = field(default_factory=dict)  # ERROR records: "good" / "defect" -> count

    @property
    def has_masks(self) -> bool:
        return any(m.any() for m in self.masks)

    def pixels(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        ps = np.concatenate([m.ravel() for m in self.maps])
        pl = np.concatenate([g.ravel() for g in self.masks])
        if limit and ps.size > limit:
            sub = np.random.default_rng(0).choice(ps.size, limit, replace=False)
            ps, pl = ps[sub], pl[sub]
        return ps, pl


def image_rank(stage: ModelStage, r: Inspection) -> tuple[float, float]:
    """What image AUROC ranks by: the raw score; for a segmenter (it decides by area) the area,
    ties broken by the peak defect probability, since many parts have no mask at all."""
    if getattr(stage, "decides_by_area", False):
        return float(r.raw_score), float(r.anomaly_map.max())
    return float(r.raw_score), 0.0


def score_category(category: str | Path, inspector: ModelStage, out: Path, batch_size: int = 8,
                   progress: Callable[[int], None] | None = None) -> ScoredSet:
    """Score CATEGORY/test/* with decisions written under ``out``; keep what metrics need."""
    cat = load_category(category, need_train=False)
    items = {it.path: it for it in cat.test}
    res = ScoredSet([], [], [], [], [], [], 0)

    def collect(path: Path, img: np.ndarray, r: Inspection) -> None:
        it = items[path]
        gt = read_mask(it.mask, img.shape[:2]) if it.mask else np.zeros(img.shape[:2], bool)
        if r.anomaly_map is None:
            res.has_maps = False
        amap = r.anomaly_map if r.anomaly_map is not None else np.zeros(img.shape[:2], np.float32)
        res.maps.append(_small(amap, False))
        res.masks.append(_small(gt, True).astype(bool))
        res.predicted.append(_small(r.mask > 0, True).astype(bool) if r.mask is not None
                             else np.zeros(res.maps[-1].shape, bool))
        res.scores.append(r.raw_score)
        res.decisions.append(r.decision == "NG")
        res.rank.append(image_rank(inspector, r))
        if it.is_defect and r.class_masks:  # supervised models with a mask head
            d, j = dice_iou(r.mask > 0, gt)
            res.seg.append({"kind": it.kind, "dice": d, "iou": j,
                            "classes": {c: dice_iou(m > 0, gt) for c, m in r.class_masks.items()}})
        if getattr(inspector, "decides_by_area", False):
            scale = inspector.area_scale(img.shape[:2])
            res.class_areas.append({c: a / scale for c, a in r.areas.items()})
        res.labels.append(it.is_defect)
        res.kinds.append(it.kind)
        res.names.append(str(path))

    def refused(path: Path, why: str) -> None:
        kind = "good" if not items[path].is_defect else "defect"
        res.errors_by_kind[kind] = res.errors_by_kind.get(kind, 0) + 1

    summary = score_paths(inspector, [t.path for t in cat.test], out, batch_size=batch_size, progress=progress,
                          on_result=collect, keep_records=False, on_error=refused)
    if not res.scores:
        raise DataError("no test image could be scored")
    res.scores = np.asarray(res.scores)
    res.labels = np.asarray(res.labels, bool)
    res.n_errors = summary.counts["ERROR"]
    return res


def model_details(stage) -> dict:
    """What a supervised model is, for the report (the same block as ``inspector_details``)."""
    d = stage.describe()
    th = d["threshold"]
    out = {"id": d["id"], "kind": d["kind"], "model": d["name"], "input": d["input"],
           "ok_class": d.get("ok_class"), "defect_classes": ", ".join(d["defect_classes"]) or None,
           "decides_by": DECIDE_BY[th["decides_by"]] if d["kind"] in ("segmenter", "multitask") else None,
           "threshold_method": th["method"], "ng_threshold": th.get("ng"), "mask_threshold": th.get("mask"),
           "min_area": ", ".join(f"{k} {v} px" for k, v in th.get("min_area", {}).items()) or None,
           "peak_threshold": th.get("peak") if th["decides_by"] == "peak" else None}
    return {k: v for k, v in out.items() if v is not None}


def _threshold_block(stage) -> dict:
    if isinstance(stage, Inspector):
        cal = stage.calibration
        expected = cal.details.get("expected_frr")
        return {"image": cal.image_threshold, "pixel": cal.pixel_threshold, "method": cal.method,
                **({"expected_frr": expected} if isinstance(expected, dict) else {})}
    th = stage.describe()["threshold"]
    # image: in raw-score units (P(NG), the largest defect probability, or area in input pixels); pixel: the mask
    # probability
    return {"image": stage.threshold, "pixel": th["mask"], "method": th["method"],
            "decides_by": th["decides_by"], **({"ng": th["ng"]} if "ng" in th else {}),
            **({"min_area": th["min_area"]} if "min_area" in th else {}),
            **({"peak": th["peak"]} if th["decides_by"] == "peak" else {})}


def _segmentation(ss: ScoredSet, classes: list[str]) -> dict:
    """dice (mean over defective images) and per-class Dice and IoU. A class is judged on the test
    images of the defect kind with its name; a class no kind is named after, on every defective image."""
    if not ss.seg:
        return {}
    kinds = {e["kind"] for e in ss.seg}
    per_class = {}
    for c in classes:
        rows = [e for e in ss.seg if e["kind"] == c] if c in kinds else ss.seg
        per_class[c] = {"dice": float(np.mean([e["classes"][c][0] for e in rows])),
                        "iou": float(np.mean([e["classes"][c][1] for e in rows])), "n_images": len(rows),
                        "judged_on": f"test/{c}" if c in kinds else "every defective image"}
    return {"dice": float(np.mean([e["dice"] for e in ss.seg])), "iou": float(np.mean([e["iou"] for e in ss.seg])),
            "n_segmented": len(ss.seg), "per_class": per_class}


REPORT_KEYS = ("id", "backbone", "input", "fitted_with", "d", "mode", "aggregate", "centre", "tiles", "n_images",
               "shrinkage", "eps", "threshold_method", "target_frr", "quantile", "margin")


def inspector_details(inspector: Inspector) -> dict:
    """What the inspector is, for the report: backbone, d, mode, N, threshold method."""
    d = inspector.describe()
    return {k: d[k] for k in REPORT_KEYS if d.get(k) is not None}


def _kind_block(k: str, s: np.ndarray, pred: np.ndarray, thr: float) -> dict:
    rate = float(pred.mean())
    return {"n": int(s.size), "ng": int(pred.sum()),
            ("false_reject_rate" if k == "good" else "detection_rate"): rate,
            "score_min": float(s.min() / thr), "score_median": float(np.median(s) / thr),
            "score_max": float(s.max() / thr)}


def _curves(s: np.ndarray, y: np.ndarray) -> dict:
    fpr, tpr = roc_curve(s, y)
    prec, rec = pr_curve(s, y)
    r = lambda a: [round(float(v), 5) for v in a]  # noqa: E731
    return {"roc": {"fpr": r(fpr), "tpr": r(tpr)}, "pr": {"precision": r(prec), "recall": r(rec)}}


def at_threshold(pred: np.ndarray, labels: np.ndarray, expected: dict | None, inspector: str = "INSPECTOR",
                 category: str = "CATEGORY") -> dict:
    """False-reject rate and recall at the inspector's own threshold, next to the rate `fit` expected.

    ``consistent_with_expected`` says whether the observed count of false rejects could come from a
    rate inside fit's 90% interval (a one-sided 5% binomial check at each end): with 30 good test
    images one false reject is already 3.3%, so the observed rate alone says little. ``inspector`` and
    ``category`` fill the commands the advice names.
    """
    good, bad = ~labels, labels
    frr = float(pred[good].mean()) if good.any() else None
    out = {"false_reject_rate": frr, "recall": float(pred[bad].mean()) if bad.any() else None,
           "n_good": int(good.sum()), "n_defect": int(bad.sum())}
    if isinstance(expected, dict) and frr is not None:  # expected itself is under metrics["threshold"]
        k, n = int(pred[good].sum()), int(good.sum())
        # some rate in [low, high] makes the count unremarkable: at least k is not too rare at the top of
        # the interval, and at most k is not too rare at its bottom
        out["consistent_with_expected"] = bool(1.0 - binom_cdf(k - 1, n, expected["high"]) >= 0.05
                                               and binom_cdf(k, n, expected["low"]) >= 0.05)
        if not out["consistent_with_expected"] and frr > expected["high"]:
            out["advice"] = TOO_MANY_FALSE_REJECTS.format(inspector=inspector, category=category)
    return out


TOO_MANY_FALSE_REJECTS = (
    "more good parts are rejected than fit expected: these good images differ from the ones fit saw "
    "(other material, lot, light or position). Add good images that show this variation "
    "(`edge-inspect fit --good NEW_OK --out {inspector} --update`), or set the threshold from labelled "
    "images (`edge-inspect calibrate {category} --inspector {inspector}`)")


def evaluate(category: str | Path, inspector: ModelStage, out: str | Path, batch_size: int = 8,
             progress: Callable[[int], None] | None = None) -> EvalResult:
    """Score CATEGORY/test with any model stage and write metrics.json, curves, scores and pictures."""
    out = Path(out)
    ss = score_category(category, inspector, out / "test-results", batch_size, progress)
    s, y, kinds = ss.scores, ss.labels, ss.kinds
    thr = inspector.threshold
    pred = np.asarray(ss.decisions, bool)  # the stage's own decisions (PaDiM: s >= thr)
    rank = dense_ranks(ss.rank)
    f1, macro = f1_scores(pred, y)
    has_masks = ss.has_masks and ss.has_maps
    pix_scores, pix_labels = ss.pixels()
    kind_arr = np.asarray(kinds)
    per_kind = {k: _kind_block(k, s[kind_arr == k], pred[kind_arr == k], thr) for k in sorted(set(kinds))}
    threshold = _threshold_block(inspector)
    metrics = {
        "category": str(Path(category)),
        "inspector": inspector.id,
        "n_images": int(s.size), "n_errors": ss.n_errors, "errors_by_kind": dict(ss.errors_by_kind),
        "kind": inspector.kind,
        "image_auroc": auroc(rank, y),
        "image_ap": average_precision(rank, y),
        "pixel_auroc": auroc(pix_scores, pix_labels) if has_masks else None,
        "pixel_ap": average_precision(*ss.pixels(PIXEL_SAMPLE)) if has_masks else None,
        "pro": pro_auc(ss.maps, ss.masks, 0.3) if has_masks else None,
        "threshold": threshold,
        "f1": f1, "macro_f1": macro,
        "at_threshold": at_threshold(pred, y, threshold.get("expected_frr") if isinstance(threshold, dict) else None,
                                     str(getattr(inspector, "root", "INSPECTOR")), str(category)),
        "confusion": confusion(pred, y),
        "per_kind": per_kind,
        "inspector_details": inspector_details(inspector) if isinstance(inspector, Inspector)
        else model_details(inspector),
        **_segmentation(ss, getattr(inspector, "defect_classes", [])),
    }
    if getattr(inspector, "decides_by_area", False):
        metrics["image_score"] = "largest defect area, ties broken by the peak defect probability"
        metrics["image_auroc_area_only"] = auroc(s, y)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    curves = {"image": _curves(rank, y)}
    if has_masks:
        curves["pixel"] = _curves(*ss.pixels(PIXEL_SAMPLE))
    write_json(out / "curves.json", curves)
    (out / "scores.jsonl").write_text("".join(
        json.dumps({"image": n, "kind": k, "raw_score": float(v), "score": float(v / thr)}) + "\n"
        for n, k, v in zip(ss.names, kinds, s)))
    write_gallery(out, [CaseData(n, k, bool(lab), float(v), a, p, g) for n, k, lab, v, a, p, g in
                        zip(ss.names, kinds, y, s, ss.maps, ss.predicted, ss.masks)],
                  thr, metrics["threshold"]["pixel"])
    report = None
    if report_available():
        report = write_report(out)
    return EvalResult(metrics, out, report)
