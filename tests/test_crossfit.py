"""Cross-fitted held-out scores equal refits without each image (aligned) or fold (texture)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.padim.crossfit import FoldMoments, LeaveOneOut
from edge.padim.moments import Moments
from edge.padim.score import mahalanobis
from edge.padim.stats import gaussian_from_moments

GRID = (3, 4)


def _moments(x: np.ndarray) -> Moments:
    m = Moments.empty(x.mean(axis=0).T.astype(np.float64))
    m.add(x)
    return m


def _data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    x = np.einsum("de,bep->bdp", mix, rng.normal(size=(n, d, GRID[0] * GRID[1]))) + 3.0
    return x.astype(np.float32)


@pytest.mark.parametrize("n,d", [(30, 6), (8, 12)])  # more images than dimensions, and fewer
def test_leave_one_out_equals_refit_without_each_image(n, d):
    x = _data(n, d)
    idx = np.arange(d)
    loo = LeaveOneOut(_moments(x), idx, GRID, eps=0.01)
    fast = loo.own(x)
    for i in range(n):
        rest = np.delete(x, i, axis=0)
        refit = gaussian_from_moments(_moments(rest), idx, GRID, eps=0.01, shrinkage="none")
        slow = mahalanobis(x[i:i + 1], refit, "fp32")[0]
        np.testing.assert_allclose(fast[i], slow, rtol=2e-3)


def test_leave_one_out_scores_new_vectors_as_the_refit_would():
    n, d = 10, 8
    x = _data(n, d, seed=1)
    y = x + np.random.default_rng(2).normal(0, 0.5, size=x.shape).astype(np.float32)
    idx = np.arange(d)
    loo = LeaveOneOut(_moments(x), idx, GRID, eps=0.01)
    fast = loo.other(y, x)
    for i in range(n):
        refit = gaussian_from_moments(_moments(np.delete(x, i, axis=0)), idx, GRID, eps=0.01, shrinkage="none")
        np.testing.assert_allclose(fast[i], mahalanobis(y[i:i + 1], refit, "fp32")[0], rtol=2e-3)


@pytest.mark.parametrize("n,g,d", [(12, 4, 6), (5, 4, 12), (6, 9, 5)])  # an image gives g samples per position
def test_leave_one_image_out_removes_all_its_samples(n, g, d):
    """Tiles or --stats-cell cells sharing statistics: every one of an image's g samples is left out
    together, as a refit without that image would (not just the one sample being scored)."""
    x = _data(n * g, d, seed=4)
    idx = np.arange(d)
    loo = LeaveOneOut(_moments(x), idx, GRID, eps=0.01, group=g)
    fast = loo.own(x)
    y = x + np.random.default_rng(5).normal(0, 0.5, size=x.shape).astype(np.float32)
    other = loo.other(y, x)
    for i in range(n):
        rows = slice(i * g, (i + 1) * g)
        refit = gaussian_from_moments(_moments(np.delete(x, np.r_[rows], axis=0)), idx, GRID, eps=0.01,
                                      shrinkage="none")
        np.testing.assert_allclose(fast[rows], mahalanobis(x[rows], refit, "fp32"), rtol=2e-3)
        np.testing.assert_allclose(other[rows], mahalanobis(y[rows], refit, "fp32"), rtol=2e-3)
    # neighbouring cells of one image look alike: leaving out only the scored sample keeps its look-alikes
    # in the statistics and scores the image as if seen (the bug this guards against)
    alike = np.repeat(_data(n, d, seed=6), g, axis=0)
    alike = alike + np.random.default_rng(7).normal(0, 0.05, size=alike.shape).astype(np.float32)
    grouped = LeaveOneOut(_moments(alike), idx, GRID, eps=0.01, group=g).own(alike)
    single = LeaveOneOut(_moments(alike), idx, GRID, eps=0.01).own(alike)
    assert np.median(single) < 0.8 * np.median(grouped)


def test_fold_held_out_gaussian_equals_the_direct_formula_without_the_fold():
    """Position-free: per-position means and spreads, one covariance pooled over positions, other folds only."""
    n, d, k = 9, 5, 3
    x = _data(n, d, seed=3).astype(np.float64)
    idx = np.arange(d)
    folds = FoldMoments(k, GRID)
    for i in range(n):
        folds.add(folds.fold_of(i), x[i:i + 1].astype(np.float32))
    for f in range(k):
        rest = x[[i for i in range(n) if folds.fold_of(i) != f]]  # (n_r, d, P)
        mu = rest.mean(axis=0)  # (d, P)
        c = (rest - mu).transpose(1, 0, 2).reshape(d, -1)
        cov = c @ c.T / (GRID[0] * GRID[1] * (rest.shape[0] - 1)) + 0.01 * np.eye(d)
        inv = np.linalg.inv(cov)
        for i in (i for i in range(n) if folds.fold_of(i) == f):
            v = x[i] - mu
            spread = ((rest - mu) ** 2).sum(axis=(0, 1))  # per position
            scale = np.sqrt(spread / spread.mean())
            direct = np.sqrt(np.einsum("dp,de,ep->p", v, inv, v)) / scale
            np.testing.assert_allclose(folds.distances(f, x[i:i + 1].astype(np.float32), idx, 0.01)[0], direct,
                                       rtol=1e-4)
