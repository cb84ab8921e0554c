import numpy as np
import pytest

from edge.errors import DataError
from edge.metrics import auroc, confusion, f1_scores, pro_auc, roc_curve
import math

from edge.errors import DataError
from edge.threshold import frr_threshold, labelled_threshold


def _auroc_pairs(s, y):
    pos, neg = s[y], s[~y]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


@pytest.mark.parametrize("n", [10, 57])
def test_auroc_equals_pairwise_definition(n):
    rng = np.random.default_rng(n)
    s = np.round(rng.normal(size=n), 1)  # ties included
    y = rng.random(n) < 0.4
    assert auroc(s, y) == pytest.approx(_auroc_pairs(s, y))


def test_auroc_large_path_matches_small_path():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=250_000), 2)
    y = rng.random(s.size) < 0.1 + 0.3 * (s > 1)
    small = auroc(s[:150_000], y[:150_000])
    big = auroc(np.r_[s[:150_000], s[:150_000]], np.r_[y[:150_000], y[:150_000]])
    assert big == pytest.approx(small, abs=1e-12)


def test_roc_curve_endpoints():
    fpr, tpr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1


def test_pro_perfect_and_region_weighting():
    gt = np.zeros((20, 20), bool)
    gt[2:4, 2:4] = True  # small region
    gt[10:20, 10:20] = True  # large region
    perfect = gt.astype(np.float32)
    assert pro_auc([perfect], [gt]) == pytest.approx(1.0, abs=1e-3)
    # find only the large region: per-region overlap is 1/2 at every low FPR, whatever the areas
    half = np.zeros_like(perfect)
    half[10:20, 10:20] = 1
    assert pro_auc([half], [gt]) == pytest.approx(0.5, abs=0.02)


def test_f1_and_confusion():
    pred = np.array([1, 1, 0, 0, 1], bool)
    lab = np.array([1, 0, 0, 1, 1], bool)
    c = confusion(pred, lab)
    assert c == {"tp": 2, "fp": 1, "tn": 1, "fn": 1}
    f1, macro = f1_scores(pred, lab)
    assert f1 == pytest.approx(2 / 3) and macro == pytest.approx((2 / 3 + 0.5) / 2)


def _true_frr(thr: float, mu: float, sigma: float) -> float:
    return 0.5 * math.erfc((math.log(thr) - mu) / (sigma * math.sqrt(2)))


def test_frr_threshold_is_the_point_estimate_and_its_expected_rate_is_honest_at_small_n():
    """Over many fits on 20 log-normal good scores: the threshold is the fitted quantile at the target
    (half the fits reject fewer good parts than the target, half more), and the expected rate that fit
    prints is what new good parts are rejected at on average, inside its interval about 90% of the time."""
    rng = np.random.default_rng(0)
    rates, expected, covered = [], [], 0
    for _ in range(200):
        s = np.exp(rng.normal(3.0, 0.15, 20))
        thr, est = frr_threshold(s, 0.01)
        ell = np.log(s)
        assert math.log(thr) == pytest.approx(ell.mean() + ell.std(ddof=1) * 2.3263479, rel=1e-6)
        rates.append(_true_frr(thr, 3.0, 0.15))
        expected.append(est.value)
        covered += est.low <= rates[-1] <= est.high
    assert 0.006 < np.median(rates) < 0.015  # the target, in the median
    assert np.mean(expected) > 0.01  # few images: on average it rejects more than the target, and says so
    assert np.mean(expected) == pytest.approx(np.mean(rates), rel=0.25)
    assert covered / 200 > 0.8


def test_frr_threshold_narrows_with_more_images_and_warns_when_too_few():
    rng = np.random.default_rng(1)
    _, small = frr_threshold(np.exp(rng.normal(2, 0.1, 20)), 0.01)
    thr, big = frr_threshold(np.exp(rng.normal(2, 0.1, 2000)), 0.01)
    assert small.too_few_images and not big.too_few_images
    assert big.high - big.low < small.high - small.low
    assert _true_frr(thr, 2, 0.1) == pytest.approx(0.01, abs=0.004)
    assert big.value == pytest.approx(0.01, abs=0.002) and big.target == 0.01 and big.n == 2000


@pytest.mark.parametrize("scores,target", [([1.0, 2.0], 0.01), ([1.0, 2.0, 3.0, 4.0], 0.0),
                                           ([1.0, 2.0, 3.0, 4.0], 0.7)])
def test_frr_threshold_refuses_what_it_cannot_do(scores, target):
    with pytest.raises(DataError):
        frr_threshold(scores, target)


SCORES = np.array([1.0, 2.0, 3.0, 3.5, 2.5, 4.0, 5.0, 6.0])
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)


@pytest.mark.parametrize("method,kw,check", [
    ("zero-false-reject", {}, lambda t, i: t > 3.5 and i["false_reject_rate"] == 0),
    ("recall", {"target_recall": 1.0}, lambda t, i: t <= 2.5 and i["recall"] == 1.0),
    ("recall", {"target_recall": 0.75}, lambda t, i: i["recall"] >= 0.75),
    ("f1", {}, lambda t, i: i["f1"] == pytest.approx(6 / 7) and 3.5 < t <= 4.0),
])
def test_labelled_threshold_methods(method, kw, check):
    thr, info = labelled_threshold(SCORES, LABELS, method, **kw)
    assert check(thr, info), (thr, info)


def test_labelled_threshold_needs_both_classes():
    with pytest.raises(DataError, match="both good and defect"):
        labelled_threshold([1, 2], [0, 0], "f1")


def test_binomial_interval_is_the_exact_clopper_pearson_one():
    from edge.metrics import binom_cdf, binomial_interval

    # closed forms at the ends: none seen, or all seen, in n
    assert binomial_interval(0, 10) == (0.0, pytest.approx(1 - 0.05 ** (1 / 10)))
    assert binomial_interval(10, 10) == (pytest.approx(0.05 ** (1 / 10)), 1.0)
    for k, n in ((1, 5), (3, 8), (16, 80)):
        lo, hi = binomial_interval(k, n)
        assert lo < k / n < hi
        # at its ends, seeing at least k (bottom) or at most k (top) has probability 5%
        assert 1 - binom_cdf(k - 1, n, lo) == pytest.approx(0.05) and binom_cdf(k, n, hi) == pytest.approx(0.05)
    assert binomial_interval(16, 80, 0.5)[1] < binomial_interval(16, 80)[1]  # a lower level, a narrower range
    with pytest.raises(ValueError):
        binomial_interval(3, 2)
