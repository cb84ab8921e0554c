"""On the held-out split: predictions, the thresholds the bundle ships with, and the metrics.

Decisions are those the device makes from the manifest's ``calibration`` block:

* class head: NG when P(NG) >= ``ng_threshold``, P(NG) being the softmax probability of the
  defect label;
* mask head: sigmoid at the model's resolution, probabilities resized bilinearly (half-pixel
  centres, as cv2.INTER_LINEAR in ``edge.supervised.heads``) to the input size; a pixel belongs to
  class c when its probability is >= ``mask_threshold``; the image is NG when some class c has an
  area (pixels at the input size) >= ``min_area[c]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from edge.metrics import auroc, confusion, f1_scores
from edge.threshold import labelled_threshold

MASK_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class Predictions:
    p_ng: np.ndarray | None  # (N,) from the class head
    mask_prob: np.ndarray | None  # (N, C, H, W) float32 at the input size


def predict(module: torch.nn.Module, x: np.ndarray, kind: str, ng_index: int | None, batch: int = 8) -> Predictions:
    p_ng, probs = [], []
    module.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i:i + batch])
            outs = module(xb)
            if kind in ("classifier", "multitask"):
                p_ng.append(torch.softmax(outs[0], 1)[:, ng_index].numpy())
            if kind in ("segmenter", "multitask"):
                p = F.interpolate(torch.sigmoid(outs[-1]), size=xb.shape[-2:], mode="bilinear", align_corners=False)
                probs.append(p.numpy())
    return Predictions(np.concatenate(p_ng) if p_ng else None, np.concatenate(probs) if probs else None)


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    s = pred.sum() + gt.sum()
    return float(2 * (pred & gt).sum() / s) if s else 1.0


def mean_dice(prob: np.ndarray, mask: np.ndarray, is_defect: np.ndarray, t: float) -> tuple[float, list[float]]:
    """(mean Dice of the union defect mask over defective images, mean Dice per class over the images
    holding that class)."""
    pred = prob >= t
    union = [_dice(pred[i].any(0), mask[i] > 0) for i in np.flatnonzero(is_defect)]
    per_class = []
    for c in range(prob.shape[1]):
        having = [i for i in range(len(mask)) if (mask[i] == c + 1).any()]
        per_class.append(float(np.mean([_dice(pred[i, c], mask[i] == c + 1) for i in having])) if having
                         else float("nan"))
    return float(np.mean(union)) if union else float("nan"), per_class


def _min_area(area: np.ndarray, positive: np.ndarray) -> int:
    if positive.all() or not positive.any():
        return max(1, int(np.ceil(np.median(area[positive]) / 2))) if positive.any() else 1
    thr, _ = labelled_threshold(area, positive, "f1")
    return max(1, int(np.ceil(thr)))


def calibrate(kind: str, pred: Predictions, is_defect: np.ndarray, mask: np.ndarray | None,
              mask_names: tuple[str, ...]) -> dict:
    """The manifest's ``calibration`` block, thresholds and metrics measured on these images."""
    val: dict = {"n": int(len(is_defect)), "n_defect": int(is_defect.sum())}
    cal: dict = {"method": "validation-f1"}
    score = pred_ng = None
    if pred.mask_prob is not None:
        dices = {t: mean_dice(pred.mask_prob, mask, is_defect, t) for t in MASK_THRESHOLDS}
        t = max(MASK_THRESHOLDS, key=lambda k: (np.nan_to_num(dices[k][0], nan=-1.0), -abs(k - 0.5)))
        binar = pred.mask_prob >= t
        areas = binar.reshape(len(binar), binar.shape[1], -1).sum(-1).astype(np.float64)  # (N, C)
        union_thr = _min_area(areas.max(1), is_defect)
        min_area = {}
        for c, name in enumerate(mask_names):
            has_c = np.array([(m == c + 1).any() for m in mask])
            min_area[name] = _min_area(areas[:, c], has_c) if has_c.any() else union_thr
        thr = np.array([min_area[n] for n in mask_names], np.float64)
        rel = (areas / thr).max(1)  # >= 1: NG
        cal.update(mask_threshold=t, min_area=min_area)
        val.update(dice=dices[t][0], per_class_dice=dict(zip(mask_names, dices[t][1])))
        score, pred_ng = rel, rel >= 1.0
    if pred.p_ng is not None:
        ng_thr, _ = labelled_threshold(pred.p_ng, is_defect, "f1")
        ng_thr = float(np.clip(ng_thr, 0.0, 1.0))  # "everything NG" comes back below the lowest score
        cal["ng_threshold"] = ng_thr
        score, pred_ng = pred.p_ng, pred.p_ng >= ng_thr  # multitask decides by its class head
    f1, macro = f1_scores(pred_ng, is_defect)
    val.update(f1=f1, macro_f1=macro, image_auroc=auroc(score, is_defect), confusion=confusion(pred_ng, is_defect))
    cal["validation"] = _clean(val)
    return cal


def _clean(d):
    """Floats rounded, NaN as None (JSON has no NaN)."""
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    if isinstance(d, float):
        return None if np.isnan(d) else round(d, 4)
    return d


def selection_score(kind: str, cal: dict) -> float:
    """What picks the checkpoint: image F1, and for mask heads also Dice (equal weight)."""
    v = cal["validation"]
    if kind == "classifier":
        return v["f1"] + 0.01 * (v["image_auroc"] or 0)
    return 0.5 * v["f1"] + 0.5 * (v["dice"] or 0)
