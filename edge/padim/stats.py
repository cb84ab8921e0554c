"""The fitted Gaussian: what scoring needs, stored as .npz (never pickle)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BundleError
from .moments import Moments, ledoit_wolf, precision_factor

SHRINKAGES = ("none", "ledoit-wolf", "auto")


@dataclass(frozen=True)
class GaussianStats:
    """Per-position mean and precision factor on a (gh, gw) grid of P positions."""

    mean: np.ndarray  # (P, d) float32
    factor: np.ndarray  # (P, d, d) float32, lower triangular, Lᵀ L = Σ⁻¹
    channel_idx: np.ndarray  # (d,) int64
    grid: tuple[int, int]
    n: int
    eps: float
    shrinkage: str  # what was applied: "none" | "ledoit-wolf"
    shrink_mean: float  # mean Ledoit–Wolf intensity (0 if none)

    def __post_init__(self):
        p = self.grid[0] * self.grid[1]
        d = self.channel_idx.size
        if self.mean.shape != (p, d) or self.factor.shape != (p, d, d):
            raise BundleError(f"statistics shapes disagree: mean {self.mean.shape}, factor {self.factor.shape}, "
                              f"grid {self.grid}, d={d}")

    @property
    def d(self) -> int:
        return int(self.channel_idx.size)

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, factor=self.factor, channel_idx=self.channel_idx,
                 grid=np.array(self.grid, dtype=np.int64), n=np.array(self.n), eps=np.array(self.eps),
                 shrinkage=np.array(self.shrinkage), shrink_mean=np.array(self.shrink_mean))

    @classmethod
    def load(cls, path: Path) -> "GaussianStats":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(mean=z["mean"], factor=z["factor"], channel_idx=z["channel_idx"],
                           grid=tuple(int(v) for v in z["grid"]), n=int(z["n"]), eps=float(z["eps"]),
                           shrinkage=str(z["shrinkage"]), shrink_mean=float(z["shrink_mean"]))
        except (KeyError, ValueError, OSError) as e:
            raise BundleError(f"{path}: not a valid statistics file ({e})") from None


def gaussian_from_moments(m: Moments, channel_idx: np.ndarray, grid: tuple[int, int], eps: float = 0.01,
                          shrinkage: str = "auto") -> GaussianStats:
    """Σ_p = (shrunk) sample covariance + eps·I, as in the PaDiM paper; factor L_p = chol(Σ_p)⁻¹.

    ``auto`` applies Ledoit–Wolf when there are fewer images than dimensions (n ≤ d), where the
    sample covariance is singular and eps alone gives over-confident, noisy maps.
    """
    if shrinkage not in SHRINKAGES:
        raise ValueError(shrinkage)
    mean, cov = m.mean_cov()
    d = cov.shape[-1]
    if m.n > 1:
        cov = cov * (m.n / (m.n - 1))  # unbiased, as the paper's reference does
    use_lw = shrinkage == "ledoit-wolf" or (shrinkage == "auto" and m.n <= d)
    shrink_mean = 0.0
    if use_lw:
        ml = cov * ((m.n - 1) / m.n) if m.n > 1 else cov
        shrunk, s = ledoit_wolf(ml, m.sum_fourth_centered(), m.n)
        cov = shrunk * (m.n / (m.n - 1)) if m.n > 1 else shrunk
        shrink_mean = float(s.mean())
    cov = cov + eps * np.eye(d)
    factor = precision_factor(cov)
    return GaussianStats(mean.astype(np.float32), factor.astype(np.float32), channel_idx.astype(np.int64), grid,
                         m.n, float(eps), "ledoit-wolf" if use_lw else "none", shrink_mean)
