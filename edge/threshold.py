"""Thresholds: from good images only (the default), or from labelled data.

Scores are Mahalanobis distances (raw). The threshold turns them into decisions; the CLI
reports ``score = raw / threshold`` so that 1.0 is the line between OK and NG for any part.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

LABELLED_METHODS = ("f1", "zero-false-reject", "recall")


def good_only_threshold(good_scores: np.ndarray, quantile: float = 0.99, margin: float = 0.25) -> float:
    """Threshold from held-out good scores: a high quantile, pushed out by a margin of the spread.

    threshold = q + margin · (q − median). The held-out images were scored with statistics that
    never saw them, so they behave like new good parts on the line.
    """
    s = np.asarray(good_scores, dtype=np.float64)
    if s.size == 0:
        raise DataError("no held-out good scores to calibrate from")
    q = float(np.quantile(s, quantile))
    return q + margin * max(q - float(np.median(s)), 0.0)


def _best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Threshold maximising F1 of the NG class (NG when score >= threshold)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.int64)
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    pos = y.sum()
    last = np.r_[s[1:] != s[:-1], True]  # only cut between distinct scores
    f1 = np.where(last, 2 * tp / np.maximum(tp + fp + pos, 1), -1.0)
    i = int(np.argmax(f1))
    nxt = s[i + 1] if i + 1 < s.size else s[i] - 1.0
    return float((s[i] + nxt) / 2 if nxt < s[i] else s[i]), float(f1[i])


def labelled_threshold(scores, labels, method: str = "f1", target_recall: float = 0.95) -> tuple[float, dict]:
    """Threshold from labelled scores (label 1 = defect/NG). Returns (threshold, info)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise DataError("labelled calibration needs both good and defect images",
                        hint="check that test/good and at least one test/<defect> folder have images")
    good, bad = scores[~labels], scores[labels]
    if method == "f1":
        thr, f1 = _best_f1(scores, labels)
        info = {"f1": f1}
    elif method == "zero-false-reject":
        top = good.max()
        above = bad[bad > top]
        thr = float((top + above.min()) / 2) if above.size else float(np.nextafter(top, np.inf))
        info = {"note": "smallest threshold with no good part rejected"}
    elif method == "recall":
        if not 0 < target_recall <= 1:
            raise DataError(f"target recall {target_recall} must be in (0, 1]")
        k = int(np.ceil(target_recall * bad.size))
        thr = float(np.sort(bad)[::-1][k - 1])
        info = {"target_recall": target_recall}
    else:
        raise DataError(f"unknown calibration method {method!r}", hint=f"use one of {', '.join(LABELLED_METHODS)}")
    ng = scores >= thr
    info.update({
        "recall": float((ng & labels).sum() / labels.sum()),
        "false_reject_rate": float((ng & ~labels).sum() / (~labels).sum()),
        "n_good": int((~labels).sum()), "n_defect": int(labels.sum()),
    })
    return thr, info
