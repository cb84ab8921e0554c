"""The fitted Gaussian: what scoring needs, stored as .npz (read with allow_pickle=False)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import BundleError, DataError
from .blas_threads import one_blas_thread
from . import kernel
from .factor import BlockRows, pack_lower, unpack_lower
from .kernel import BlockedFactor
from .moments import Moments, ledoit_wolf, precision_factor

SHRINKAGES = ("none", "ledoit-wolf", "auto")


FACTOR_FORMATS = ("dense", "packed-lower")
FINALISE_CHUNK = 256  # positions per step when turning moments into a Gaussian


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
    position_scale: np.ndarray | None = None  # (P,) float32: distances are divided by it (score.distance_maps)

    def __post_init__(self):
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise BundleError(f"statistics grid {self.grid} is not two positive sizes")
        p = self.grid[0] * self.grid[1]
        d = self.channel_idx.size
        # a factor per position, or one shared by all positions (position-free statistics)
        if self.mean.shape != (p, d) or self.factor.shape not in ((p, d, d), (1, d, d)):
            raise BundleError(f"statistics shapes disagree: mean {self.mean.shape}, factor {self.factor.shape}, "
                              f"grid {self.grid}, d={d}")
        if self.position_scale is not None and (self.position_scale.shape != (p,)
                                                or not np.isfinite(self.position_scale).all()
                                                or self.position_scale.min() <= 0):
            raise BundleError(f"statistics position scale must be {p} positive numbers "
                              f"(shape {self.position_scale.shape})")
        for name in ("mean", "factor"):
            a = getattr(self, name)
            if a.dtype.kind != "f":
                raise BundleError(f"statistics {name} has dtype {a.dtype}, expected floating point")
        if self.channel_idx.dtype.kind not in "iu" or d < 1 or self.channel_idx.min() < 0 \
                or np.unique(self.channel_idx).size != d:
            raise BundleError(f"statistics channel index must be {d} distinct non-negative integers "
                              f"(dtype {self.channel_idx.dtype})")
        if self.n < 1:
            raise BundleError(f"statistics were fitted on n={self.n} samples")

    @property
    def d(self) -> int:
        return int(self.channel_idx.size)

    @cached_property
    def factored_mean(self) -> np.ndarray:
        """L·μ_p for every position (d, P) float32, under the one shared factor of position-free statistics:
        their distance is then |L·x − L·μ_p| with one product per image and no centred copy."""
        return np.ascontiguousarray(self.factor[0] @ np.ascontiguousarray(self.mean.T), dtype=np.float32)

    @cached_property
    def block_rows(self) -> BlockRows:
        """The factor in the layout scoring reads (built once, on first use)."""
        return BlockRows.from_dense(self.factor)

    def scorer(self, precision: str = "auto") -> BlockedFactor | None:
        """The factors in the native kernel's layout at ``precision`` (built once per precision), or
        None when the kernel is not available (scoring then uses :attr:`block_rows`)."""
        if kernel.library() is None:
            return None
        prec = kernel.resolve_precision(precision)
        cache = self.__dict__.setdefault("_scorers", {})
        if prec not in cache:
            cache[prec] = BlockedFactor.from_dense(self.factor, self.mean, prec)
        return cache[prec]

    def save(self, path: Path, factor_format: str = "packed-lower") -> None:
        """Write .npz; the factor is stored as its packed lower triangle (half the bytes of dense)."""
        if factor_format not in FACTOR_FORMATS:
            raise ValueError(factor_format)
        fac = {"factor": self.factor} if factor_format == "dense" else {"factor_packed": pack_lower(self.factor)}
        np.savez(path, mean=self.mean, **fac, factor_format=np.array(factor_format), channel_idx=self.channel_idx,
                 grid=np.array(self.grid, dtype=np.int64), n=np.array(self.n), eps=np.array(self.eps),
                 shrinkage=np.array(self.shrinkage), shrink_mean=np.array(self.shrink_mean),
                 **({} if self.position_scale is None else {"position_scale": self.position_scale}))

    @classmethod
    def load(cls, path: Path) -> "GaussianStats":
        """Read either factor format; files without ``factor_format`` (schema 1) are dense."""
        try:
            with np.load(path, allow_pickle=False) as z:
                fmt = str(z["factor_format"]) if "factor_format" in z.files else "dense"
                idx = z["channel_idx"]
                if fmt == "dense":
                    factor = z["factor"]
                elif fmt == "packed-lower":
                    factor = unpack_lower(z["factor_packed"], int(idx.size))
                else:
                    raise BundleError(f"{path}: unknown factor format {fmt!r} (known: {', '.join(FACTOR_FORMATS)})",
                                      hint="this statistics file is newer than this edge-inspect; upgrade it")
                return cls(mean=z["mean"], factor=factor, channel_idx=idx,
                           grid=tuple(int(v) for v in z["grid"]), n=int(z["n"]), eps=float(z["eps"]),
                           shrinkage=str(z["shrinkage"]), shrink_mean=float(z["shrink_mean"]),
                           position_scale=z["position_scale"] if "position_scale" in z.files else None)
        except (KeyError, ValueError, OSError) as e:
            raise BundleError(f"{path}: not a valid statistics file ({e})") from None


def gaussian_from_moments(m: Moments, channel_idx: np.ndarray, grid: tuple[int, int], eps: float = 0.01,
                          shrinkage: str = "none", chunk: int = FINALISE_CHUNK) -> GaussianStats:
    """Σ_p = (shrunk) sample covariance + eps·I, as in the PaDiM paper; factor L_p = chol(Σ_p)⁻¹.

    ``auto`` applies Ledoit–Wolf when there are fewer images than dimensions (n ≤ d). The default is
    ``none`` (eps·I alone), which separated good from defective parts better on real photographs.
    Works through ``chunk`` positions at a time: the float64 temporaries (covariance, Cholesky,
    inverse) stay a few MB, so the only large allocation is the float32 result.
    """
    return _finalise(m, channel_idx, grid, eps, shrinkage, chunk, leave_one_out=False)[0]


def leave_one_out_base(m: Moments, channel_idx: np.ndarray, grid: tuple[int, int], eps: float = 0.01,
                       shrinkage: str = "none", chunk: int = FINALISE_CHUNK, group: int = 1
                       ) -> tuple[GaussianStats, np.ndarray]:
    """The Gaussian that leave-one-out scoring starts from (see padim/crossfit.py).

    Each image gave ``group`` samples to every position (1; or its tiles and cells when they share
    statistics). Removing an image's samples U = [u_1..u_g] (u = x − μ) from n leaves n' = n − g and
    the covariance B − s·U G Uᵀ, where B = S/(n'−1) + eps·I (S the scatter of all n),
    s = 1/(n'−1) and G = I + 11ᵀ/n'. Returns (B's Gaussian with the all-image mean, s per position).
    With Ledoit–Wolf, the intensity ρ is held at its all-image value (s is scaled by 1−ρ), an
    approximation; without shrinkage the identity is exact.
    """
    if m.n < group + 2:
        raise DataError(f"leave-one-out needs at least 3 images, got {m.n // max(group, 1)}")
    return _finalise(m, channel_idx, grid, eps, shrinkage, chunk, leave_one_out=group)


def _finalise(m: Moments, channel_idx, grid, eps, shrinkage, chunk, leave_one_out: int):
    if shrinkage not in SHRINKAGES:
        raise ValueError(shrinkage)
    if m.n < 1:
        raise DataError("no images were accumulated")
    p, d = m.s1.shape
    use_lw = shrinkage == "ledoit-wolf" or (shrinkage == "auto" and m.n <= d)
    mean = np.empty((p, d), np.float32)
    factor = np.empty((p, d, d), np.float32)
    shrink = np.zeros(p)
    with one_blas_thread():
        for a in range(0, p, chunk):
            _finalise_chunk(m.positions(slice(a, a + chunk)), m.n, eps, use_lw, mean[a:a + chunk],
                            factor[a:a + chunk], shrink[a:a + chunk], leave_one_out)
    stats = GaussianStats(mean, factor, channel_idx.astype(np.int64), grid, m.n, float(eps),
                          "ledoit-wolf" if use_lw else "none", float(shrink.mean()) if use_lw else 0.0)
    n = m.n
    s = (1.0 - shrink) / (n - leave_one_out - 1) if leave_one_out else None
    return stats, s


def _finalise_chunk(part: Moments, n: int, eps: float, use_lw: bool, mean_out: np.ndarray, factor_out: np.ndarray,
                    shrink_out: np.ndarray, leave_one_out: int = 0) -> None:
    mu, cov = part.mean_cov()  # maximum likelihood: S/n
    if use_lw:
        cov, shrink_out[...] = ledoit_wolf(cov, part.sum_fourth_centered(), n)
    if leave_one_out:
        cov *= n / (n - leave_one_out - 1)  # S/(n'−1): n' = n − group samples remain, before the downdate
    elif n > 1:
        cov *= n / (n - 1)  # unbiased, as the paper's reference does
    cov += eps * np.eye(cov.shape[-1])
    mean_out[...] = mu
    factor_out[...] = precision_factor(cov)
