"""Image and pixel AUROC, PRO, F1 and macro-F1: plain numpy, checked against direct formulas in tests."""

from __future__ import annotations

import math

import cv2
import numpy as np


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    # ties share the mean of their positions
    boundaries = np.r_[0, np.flatnonzero(xs[1:] != xs[:-1]) + 1, xs.size]
    for a, b in zip(boundaries[:-1], boundaries[1:]):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    return ranks


def dense_ranks(keys) -> np.ndarray:
    """Ranks of (primary, tie-break) pairs in lexicographic order, equal pairs sharing one rank: an
    image score ranked with its ties broken (a segmenter's defect area, then its peak probability)."""
    keys = [tuple(float(v) for v in k) for k in keys]
    order = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.asarray([order[k] for k in keys], np.float64)


def auroc(scores, labels) -> float:
    """Area under the ROC curve (Mann–Whitney U), ties counted as half. Labels: 1 = anomalous."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    if s.size > 200_000:  # histogram-free fast path for pixel AUROC: sort once, ties by unique
        uniq, inv = np.unique(s, return_inverse=True)
        pos_c = np.bincount(inv, weights=y, minlength=uniq.size)
        neg_c = np.bincount(inv, weights=~y, minlength=uniq.size)
        neg_below = np.cumsum(neg_c) - neg_c
        u = float((pos_c * (neg_below + 0.5 * neg_c)).sum())
        return u / (npos * nneg)
    r = _average_ranks(s)
    return float((r[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def roc_curve(scores, labels, max_points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    keep = np.r_[ss[1:] != ss[:-1], True]
    tp = np.cumsum(ys)[keep]
    fp = np.cumsum(~ys)[keep]
    tpr = np.r_[0, tp / max(y.sum(), 1)]
    fpr = np.r_[0, fp / max((~y).sum(), 1)]
    if fpr.size > max_points:
        idx = np.unique(np.linspace(0, fpr.size - 1, max_points).astype(int))
        fpr, tpr = fpr[idx], tpr[idx]
    return fpr, tpr


def pro_auc(maps: list[np.ndarray], masks: list[np.ndarray], fpr_limit: float = 0.3, steps: int = 300) -> float:
    """Per-region overlap, integrated over false-positive rate 0..fpr_limit, normalised to 0..1.

    Each connected ground-truth region counts equally, whatever its size (Bergmann et al.).
    Thresholds are chosen on the good pixels so the FPR axis is sampled evenly.
    """
    neg = np.concatenate([m[~g].ravel() for m, g in zip(maps, masks)])
    regions = []
    for m, g in zip(maps, masks):
        if not g.any():
            continue
        n, lab = cv2.connectedComponents(g.astype(np.uint8), connectivity=8)
        for k in range(1, n):
            regions.append(np.sort(m[lab == k]))
    if not regions or neg.size == 0:
        return float("nan")
    fprs = np.linspace(0, fpr_limit, steps + 1)
    neg_sorted = np.sort(neg)
    # threshold t_k with FPR(t_k) = fprs[k]: the (1 - fpr) quantile of good pixels
    idx = np.clip(np.ceil((1 - fprs) * neg_sorted.size).astype(int) - 1, 0, neg_sorted.size - 1)
    thr = neg_sorted[idx]
    pro = np.zeros_like(fprs)
    for r in regions:
        pro += 1.0 - np.searchsorted(r, thr, side="right") / r.size
    pro /= len(regions)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    return float(trapezoid(pro, fprs) / fpr_limit)


def confusion(pred_ng, labels) -> dict[str, int]:
    p = np.asarray(pred_ng).astype(bool)
    y = np.asarray(labels).astype(bool)
    return {"tp": int((p & y).sum()), "fp": int((p & ~y).sum()), "tn": int((~p & ~y).sum()),
            "fn": int((~p & y).sum())}


def f1_scores(pred_ng, labels) -> tuple[float, float]:
    """(F1 of the NG class, macro-F1 over OK and NG)."""
    c = confusion(pred_ng, labels)

    def f1(tp, fp, fn):
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0

    f_ng = f1(c["tp"], c["fp"], c["fn"])
    f_ok = f1(c["tn"], c["fn"], c["fp"])
    return float(f_ng), float((f_ng + f_ok) / 2)


def pr_curve(scores, labels, max_points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) of the defect class at every distinct threshold, highest first.

    Starts at recall 0 with the precision of the highest score, so the plotted curve begins
    at the left edge.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    keep = np.r_[ss[1:] != ss[:-1], True]
    tp = np.cumsum(ys)[keep].astype(np.float64)
    fp = np.cumsum(~ys)[keep].astype(np.float64)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(int(y.sum()), 1)
    precision = np.r_[precision[:1] if precision.size else 1.0, precision]
    recall = np.r_[0.0, recall]
    if recall.size > max_points:
        idx = np.unique(np.linspace(0, recall.size - 1, max_points).astype(int))
        precision, recall = precision[idx], recall[idx]
    return precision, recall


def average_precision(scores, labels) -> float:
    """AP of the defect class: Σ (Rₙ − Rₙ₋₁)·Pₙ over distinct thresholds (ties count together)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    npos = int(y.sum())
    if npos == 0 or npos == y.size:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    keep = np.r_[ss[1:] != ss[:-1], True]
    tp = np.cumsum(ys)[keep].astype(np.float64)
    fp = np.cumsum(~ys)[keep].astype(np.float64)
    precision = tp / (tp + fp)
    recall = tp / npos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def dice_iou(pred, truth) -> tuple[float, float]:
    """Dice (2|A∩B| / (|A|+|B|)) and IoU (|A∩B| / |A∪B|) of two boolean masks; both empty → (1, 1)."""
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    inter, total = int((p & t).sum()), int(p.sum() + t.sum())
    if total == 0:
        return 1.0, 1.0
    return 2 * inter / total, inter / (total - inter)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    return float(sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(min(k, n) + 1)))


def binomial_interval(k: int, n: int, level: float = 0.9) -> tuple[float, float]:
    """The exact (Clopper-Pearson) ``level`` interval of a rate seen as ``k`` in ``n``: the rates
    under which seeing at least k (for the bottom) or at most k (for the top) is not rarer than
    (1 − level) / 2. With 80 held-out good images and 16 above a gate, 20% is seen and 13-29% is
    what the line may give."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"a binomial interval needs 0 <= k <= n and n > 0, not k={k}, n={n}")
    tail = (1.0 - level) / 2

    def solve(rising, target: float) -> float:  # the p in [0, 1] where rising(p) reaches target
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if rising(mid) < target else (lo, mid)
        return (lo + hi) / 2

    low = 0.0 if k == 0 else solve(lambda p: 1.0 - binom_cdf(k - 1, n, p), tail)  # P(X ≥ k) = tail
    high = 1.0 if k == n else solve(lambda p: 1.0 - binom_cdf(k, n, p), 1.0 - tail)  # P(X ≤ k) = tail
    return low, high
