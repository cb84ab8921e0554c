"""`eval`: fit (if needed), score an MVTec-layout test set, and report metrics with pictures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .bundle import write_json
from .dataset import load_category
from .errors import DataError
from .imageio import read_mask, write_png
from .inspector import Inspector
from .metrics import auroc, confusion, f1_scores, pro_auc, roc_curve
from .scoring import score_paths
from .stage import Inspection
from .visualize import histogram_plot, roc_plot

METRIC_SIDE = 512  # maps larger than this are reduced for pixel metrics, to bound memory


@dataclass
class EvalResult:
    metrics: dict
    out: Path


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


def score_category(category: str | Path, inspector: Inspector, out: Path, batch_size: int = 8,
                   progress: Callable[[int], None] | None = None) -> ScoredSet:
    """Score CATEGORY/test/* with decisions written under ``out``; keep what metrics need."""
    cat = load_category(category, need_train=False)
    items = {it.path: it for it in cat.test}
    res = ScoredSet([], [], [], [], [], [], 0)

    def collect(path: Path, img: np.ndarray, r: Inspection) -> None:
        it = items[path]
        gt = read_mask(it.mask, img.shape[:2]) if it.mask else np.zeros(img.shape[:2], bool)
        res.maps.append(_small(r.anomaly_map, False))
        res.masks.append(_small(gt, True).astype(bool))
        res.scores.append(r.raw_score)
        res.labels.append(it.is_defect)
        res.kinds.append(it.kind)
        res.names.append(str(path))

    summary = score_paths(inspector, [t.path for t in cat.test], out, batch_size=batch_size, progress=progress,
                          on_result=collect, keep_records=False)
    if not res.scores:
        raise DataError("no test image could be scored")
    res.scores = np.asarray(res.scores)
    res.labels = np.asarray(res.labels, bool)
    res.n_errors = summary.counts["ERROR"]
    return res


def evaluate(category: str | Path, inspector: Inspector, out: str | Path, batch_size: int = 8,
             progress: Callable[[int], None] | None = None) -> EvalResult:
    out = Path(out)
    ss = score_category(category, inspector, out / "test-results", batch_size, progress)
    s, y, kinds = ss.scores, ss.labels, ss.kinds
    thr = inspector.calibration.image_threshold
    pred = s >= thr
    f1, macro = f1_scores(pred, y)
    has_masks = ss.has_masks
    pix_scores, pix_labels = ss.pixels()
    per_kind = {}
    for k in sorted(set(kinds)):
        sel = np.asarray([kk == k for kk in kinds])
        rate = float(pred[sel].mean())
        per_kind[k] = {"n": int(sel.sum()), "ng": int(pred[sel].sum()),
                       ("false_reject_rate" if k == "good" else "detection_rate"): rate}
    metrics = {
        "category": str(Path(category)),
        "inspector": inspector.id,
        "n_images": int(s.size), "n_errors": ss.n_errors,
        "image_auroc": auroc(s, y),
        "pixel_auroc": auroc(pix_scores, pix_labels) if has_masks else None,
        "pro": pro_auc(ss.maps, ss.masks, 0.3) if has_masks else None,
        "threshold": {"image": thr, "pixel": inspector.calibration.pixel_threshold,
                      "method": inspector.calibration.method},
        "f1": f1, "macro_f1": macro,
        "confusion": confusion(pred, y),
        "per_kind": per_kind,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    fpr, tpr = roc_curve(s, y)
    curves = {"image": (fpr, tpr, metrics["image_auroc"])}
    if has_masks:
        pf, pt = roc_curve(*ss.pixels(400_000))
        curves["pixel"] = (pf, pt, metrics["pixel_auroc"])
    write_png(out / "roc.png", roc_plot(curves))
    write_png(out / "scores.png", histogram_plot({"good": s[~y] / thr, "defect": s[y] / thr}, 1.0))
    (out / "scores.jsonl").write_text("".join(
        json.dumps({"image": n, "kind": k, "raw_score": float(v), "score": float(v / thr)}) + "\n"
        for n, k, v in zip(ss.names, kinds, s)))
    return EvalResult(metrics, out)
