"""On the held-out split: predictions, the thresholds the bundle ships with, and the metrics.

Decisions are those the device makes from the manifest's ``calibration`` block:

* class head: NG when P(NG) >= ``ng_threshold``, P(NG) being the softmax probability of the
  defect label;
* mask head: sigmoid at the model's resolution, probabilities resized bilinearly (half-pixel
  centres, as cv2.INTER_LINEAR in ``edge.supervised.heads``) to the input size; a pixel belongs to
  class c when its probability is >= ``mask_threshold``; by area, the image is NG when some class
  c has an area (pixels at the input size) >= ``min_area[c]``; by peak, when some class's largest
  pixel probability is >= ``peak_threshold``.

A model decides by the rule of its kind (``edge.supervised.calibration.RULES``: class head, mask
areas, mask peaks) that ranks the validation images best (``decide_by``; every rule's AUROC is in
``validation``; a tie goes to the rule listed first).

The decision thresholds (``ng_threshold``, ``min_area``, ``peak_threshold``) maximise F1 on the
validation images weighted as a line sees them (``good_share`` of the parts good, 0.9 by default), not as the
labelled folder holds them: a folder collected for training is mostly defects, and F1 on it
rejects many good parts once most parts are good. ``validation`` reports the false-reject rate and
recall at the thresholds written, and F1 on that line mix beside the plain counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from edge.metrics import auroc, confusion, dense_ranks, f1_scores
from edge.supervised.calibration import AUROC_KEYS, RULES

MASK_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class Predictions:
    p_ng: np.ndarray | None  # (N,) from the class head
    mask_prob: np.ndarray | None  # (N, C, H, W) float32 at the input size


def predict(module: torch.nn.Module, x: np.ndarray, kind: str, ng_index: int | None, batch: int = 8) -> Predictions:
    module.eval()
    with torch.no_grad():
        outs = [module(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)]
    return collect(outs, kind, ng_index, tuple(x.shape[-2:]))


def collect(outs: list[tuple[torch.Tensor, ...]], kind: str, ng_index: int | None, size: tuple[int, int]
            ) -> Predictions:
    """Predictions from the model's outputs, batch by batch, for images of ``size`` (H, W)."""
    p_ng, probs = [], []
    with torch.no_grad():
        for o in outs:
            if kind in ("classifier", "multitask"):
                p_ng.append(torch.softmax(o[0].float(), 1)[:, ng_index].numpy())
            if kind in ("segmenter", "multitask"):
                p = F.interpolate(torch.sigmoid(o[-1].float()), size=size, mode="bilinear", align_corners=False)
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


def line_f1_threshold(scores: np.ndarray, positive: np.ndarray, good_share: float) -> float:
    """The threshold (NG when score >= it) with the best F1 on a line where ``good_share`` of the
    parts are good: each good image stands for ``good_share / n_good`` of the parts, each defective
    one for ``(1 - good_share) / n_defect``."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    w = np.where(positive, (1 - good_share) / positive.sum(), good_share / (~positive).sum())
    order = np.argsort(-scores, kind="stable")
    s, y, wo = scores[order], positive[order], w[order]
    tp, fp = np.cumsum(wo * y), np.cumsum(wo * ~y)
    last = np.r_[s[1:] != s[:-1], True]  # only cut between distinct scores
    f1 = np.where(last, 2 * tp / np.maximum(tp + fp + (1 - good_share), 1e-12), -1.0)
    i = int(np.argmax(f1))
    nxt = s[i + 1] if i + 1 < s.size else s[i] - 1.0
    return float((s[i] + nxt) / 2 if nxt < s[i] else s[i])


def _min_area(area: np.ndarray, positive: np.ndarray, good_share: float) -> int:
    if positive.all() or not positive.any():
        return max(1, int(np.ceil(np.median(area[positive]) / 2))) if positive.any() else 1
    return max(1, int(np.ceil(line_f1_threshold(area, positive, good_share))))


def calibrate(kind: str, pred: Predictions, is_defect: np.ndarray, mask: np.ndarray | None,
              mask_names: tuple[str, ...], good_share: float = 0.9) -> dict:
    """The manifest's ``calibration`` block, thresholds and metrics measured on these images, the
    thresholds chosen for a line with ``good_share`` of the parts good."""
    val: dict = {"n": int(len(is_defect)), "n_defect": int(is_defect.sum())}
    cal: dict = {"method": "validation-f1", "line_good_share": good_share}
    rules: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # rule → (what image AUROC ranks by, NG)
    if pred.p_ng is not None:
        ng_thr = line_f1_threshold(pred.p_ng, is_defect, good_share) if is_defect.any() and (~is_defect).any() \
            else 0.5
        ng_thr = float(np.clip(ng_thr, 0.0, 1.0))  # "everything NG" comes back below the lowest score
        cal["ng_threshold"] = ng_thr
        rules["class"] = (pred.p_ng, pred.p_ng >= ng_thr)
    if pred.mask_prob is not None:
        dices = {t: mean_dice(pred.mask_prob, mask, is_defect, t) for t in MASK_THRESHOLDS}
        t = max(MASK_THRESHOLDS, key=lambda k: (np.nan_to_num(dices[k][0], nan=-1.0), -abs(k - 0.5)))
        binar = pred.mask_prob >= t
        areas = binar.reshape(len(binar), binar.shape[1], -1).sum(-1).astype(np.float64)  # (N, C)
        union_thr = _min_area(areas.max(1), is_defect, good_share)
        min_area = {}
        for c, name in enumerate(mask_names):
            has_c = np.array([(m == c + 1).any() for m in mask])
            min_area[name] = _min_area(areas[:, c], has_c, good_share) if has_c.any() else union_thr
        thr = np.array([min_area[n] for n in mask_names], np.float64)
        rel = (areas / thr).max(1)  # >= 1: NG
        peak = pred.mask_prob.max(axis=(1, 2, 3)).astype(np.float64)  # the largest defect probability
        peak_thr = line_f1_threshold(peak, is_defect, good_share) if is_defect.any() and (~is_defect).any() \
            else t
        peak_thr = round(float(np.clip(peak_thr, 1e-6, 1.0)), 6)  # as written, so the rates below are its own
        cal.update(mask_threshold=t, min_area=min_area, peak_threshold=peak_thr)
        val.update(dice=dices[t][0], per_class_dice=dict(zip(mask_names, dices[t][1])))
        rules["area"] = (dense_ranks(zip(rel, peak)), rel >= 1.0)  # area, ties by the peak (as eval ranks)
        rules["peak"] = (peak, peak >= peak_thr)
    rule = _pick_rule({r: rules[r][0] for r in RULES[kind] if r in rules}, is_defect, val)
    if pred.mask_prob is not None:
        cal["decide_by"] = rule
    rank, pred_ng = rules[rule]
    f1, macro = f1_scores(pred_ng, is_defect)
    c = confusion(pred_ng, is_defect)
    fr = c["fp"] / max(c["fp"] + c["tn"], 1)
    rec = c["tp"] / max(c["tp"] + c["fn"], 1)
    line_f1 = 2 * (1 - good_share) * rec / max((1 - good_share) * (1 + rec) + good_share * fr, 1e-12)
    val.update(f1=f1, macro_f1=macro, image_auroc=auroc(rank, is_defect), confusion=c,
               false_reject_rate=fr, recall=rec, line_f1=line_f1)
    cal["validation"] = _clean(val)
    return cal


def _pick_rule(ranks: dict[str, np.ndarray], is_defect: np.ndarray, val: dict) -> str:
    """The rule (``ranks``' keys, in the order of ``RULES``) whose scores rank these images best by
    image AUROC; a tie goes to the first. A class head on features pooled over the whole image can
    miss the small defects its own mask head finds (measured: validation image AUROC 0.62 from the
    class head against 0.82 from the areas, on a real-photo part); a mask's area is 0 on every part
    whose mask stays empty, where its peak probability still ranks them. With more than one rule,
    every rule's AUROC goes in ``val``."""
    aurocs = {r: auroc(x, is_defect) for r, x in ranks.items()}
    if len(aurocs) > 1:
        val.update({AUROC_KEYS[r]: a for r, a in aurocs.items()})
    best = next(iter(aurocs))
    for r, a in aurocs.items():
        if np.isfinite(a) and (not np.isfinite(aurocs[best]) or a > aurocs[best]):
            best = r
    return best


def _clean(d):
    """Floats rounded, NaN as None (JSON has no NaN)."""
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    if isinstance(d, float):
        return None if np.isnan(d) else round(d, 4)
    return d


def selection_score(kind: str, cal: dict) -> float:
    """What picks the checkpoint. Classifier: image F1 (AUROC breaks ties). Mask heads: the mean of
    image AUROC and Dice, the two numbers a segmenter is judged by; both are threshold-free or
    nearly so, where F1 at a threshold fitted on the same few validation images is noisy."""
    v = cal["validation"]
    if kind == "classifier":
        return v["f1"] + 0.01 * (v["image_auroc"] or 0)
    return 0.5 * (v["image_auroc"] or 0) + 0.5 * (v["dice"] or 0)
