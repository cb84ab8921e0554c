"""Thresholds: from good images only (the default: a target false-reject rate), or from labelled data.

Scores are Mahalanobis distances (raw). The threshold turns them into decisions; the CLI
reports ``score = raw / threshold`` so that 1.0 is the line between OK and NG for any part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .errors import DataError

LABELLED_METHODS = ("f1", "zero-false-reject", "recall")


@dataclass(frozen=True)
class ExpectedFRR:
    """The false-reject rate a good-only threshold is expected to give on new good parts.

    ``value`` is the expectation under the fitted model, [``low``, ``high``] a 90% interval that
    reflects how few good images the model rests on; ``observed`` is the share of the held-out
    good scores at or above the threshold (a check on the model, itself noisy at small N).
    """

    value: float
    low: float
    high: float
    target: float
    n: int
    observed: float
    model: str = "log-normal held-out scores"

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "target": self.target, "n": self.n,
                "observed_held_out": self.observed, "model": self.model}

    @property
    def too_few_images(self) -> bool:
        """The interval reaches over three times the target: N is too small for the target."""
        return self.high > 3 * self.target


DRAWS = 20000  # posterior draws for the expected rate; seeded, so the same scores always give the same numbers


def _normal_sf(z: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc, otypes=[float])(z / math.sqrt(2.0))


def frr_threshold(good_scores, target_frr: float = 0.01, seed: int = 0) -> tuple[float, ExpectedFRR]:
    """Threshold from held-out good scores at a target false-reject rate.

    An image score is the maximum of a map, positive and right-skewed; its logarithm is modelled as
    normal. The threshold is the fitted model's (1 − target) quantile: the point estimate at the
    target. What it will give on new good parts is reported rather than assumed:
    the expected rate is the mean of P(score ≥ threshold) over the posterior of (mean, spread), with
    its 5–95% range, so with few images it sits above the target and the interval is wide (the
    caller warns). Needs at least 3 scores.
    """
    s = np.asarray(good_scores, dtype=np.float64)
    s = s[np.isfinite(s) & (s > 0)]
    if s.size < 3:
        raise DataError(f"a threshold needs at least 3 held-out good scores, got {s.size}",
                        hint="fit with more good images (20 or more)")
    if not 0 < target_frr < 0.5:
        raise DataError(f"target false-reject rate {target_frr} must be between 0 and 0.5",
                        hint="e.g. --target-frr 0.01 for one good part in a hundred")
    n = s.size
    ell = np.log(s)
    m, sd = float(ell.mean()), max(float(ell.std(ddof=1)), 1e-6)
    z = NormalDist().inv_cdf(1.0 - target_frr)
    thr = math.exp(m + sd * z)
    rng = np.random.default_rng(seed)
    sigma = sd * np.sqrt((n - 1) / rng.chisquare(n - 1, DRAWS))
    mu = m + sigma / np.sqrt(n) * rng.standard_normal(DRAWS)
    frr = _normal_sf((math.log(thr) - mu) / sigma)
    est = ExpectedFRR(float(frr.mean()), float(np.quantile(frr, 0.05)), float(np.quantile(frr, 0.95)),
                      float(target_frr), int(n), float((s >= thr).mean()))
    return thr, est


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
