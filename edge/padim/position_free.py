"""Position-free statistics ("texture" mode): one covariance shared by every position of every image.

Per-position PaDiM learns what belongs *where*, from N samples per position. On a texture, or on a
surface that shifts and rotates under the camera, there is no "where": every cell should look like
the texture, and N samples per position waste the data. Here one (d, d) covariance is pooled over
all N·P feature vectors; only the mean stays per position (P·d numbers), because the backbone's
zero padding makes cells at the image border differ from the interior on every image — with one
global mean, the corners of every good image would be its most "anomalous" spot.

    Σ = Σ_p Σ_i (x_ip − μ_p)(x_ip − μ_p)ᵀ / (P·(n − 1)) + eps·I

Border cells also *vary* more than the interior, so each position keeps one more number: its
spread relative to the pooled one, s_p = sqrt(tr Σ_p / tr Σ̄) (well estimated from N·d values even
at N = 20), and its distances are divided by it.

The result is a :class:`GaussianStats` with per-position means and scales and a single (1, d, d)
factor. Memory is P·(d + 1) + d² whatever N; scoring is one (d, d) × (d, P) product per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BundleError, DataError
from .blas_threads import one_blas_thread
from .moments import precision_factor
from .stats import GaussianStats

KIND = "pooled"  # moments.npz "kind" for these sums


@dataclass
class PooledMoments:
    """Sums for the pooled covariance, shifted per position by K_p: n, S1_p = Σ_i y_ip, S2 = Σ_p Σ_i y yᵀ,
    Q_p = Σ_i |y_ip|²."""

    n: int
    shift: np.ndarray  # (P, d) float64
    s1: np.ndarray  # (P, d)
    s2: np.ndarray  # (d, d)
    q: np.ndarray  # (P,)

    @classmethod
    def empty(cls, shift: np.ndarray) -> "PooledMoments":
        p, d = shift.shape
        return cls(0, shift.astype(np.float64), np.zeros((p, d)), np.zeros((d, d)), np.zeros(p))

    def add(self, emb: np.ndarray) -> None:
        """Add embeddings (B, d, P)."""
        p, d = self.shift.shape
        if emb.ndim != 3 or emb.shape[1:] != (d, p):
            raise ValueError(f"embeddings of shape {emb.shape} do not match moments of (d, P)=({d}, {p})")
        y = emb.astype(np.float64) - self.shift.T[None]  # (B, d, P)
        self.s1 += y.sum(axis=0).T
        self.q += np.einsum("bdp,bdp->p", y, y)
        flat = y.transpose(1, 0, 2).reshape(d, -1)
        self.s2 += flat @ flat.T
        self.n += emb.shape[0]

    def merge(self, other: "PooledMoments") -> "PooledMoments":
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("moments with different shifts cannot be added")
        self.n += other.n
        self.s1 += other.s1
        self.s2 += other.s2
        self.q += other.q
        return self

    def minus(self, other: "PooledMoments") -> "PooledMoments":
        if not np.array_equal(self.shift, other.shift) or other.n > self.n:
            raise ValueError("only moments that were added into these can be subtracted")
        return PooledMoments(self.n - other.n, self.shift, self.s1 - other.s1, self.s2 - other.s2, self.q - other.q)

    def copy(self) -> "PooledMoments":
        return PooledMoments(self.n, self.shift, self.s1.copy(), self.s2.copy(), self.q.copy())

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"kind": np.array(KIND), "n": np.array(self.n, dtype=np.int64), "shift": self.shift, "s1": self.s1,
                "s2": self.s2, "q": self.q}

    @classmethod
    def from_arrays(cls, a) -> "PooledMoments":
        try:
            return cls(int(a["n"]), np.asarray(a["shift"], np.float64), np.asarray(a["s1"], np.float64),
                       np.asarray(a["s2"], np.float64), np.asarray(a["q"], np.float64))
        except (KeyError, ValueError) as e:
            raise BundleError(f"moments file is malformed: {e}") from None


def gaussian_from_pooled(m: PooledMoments, channel_idx: np.ndarray, grid: tuple[int, int],
                         eps: float = 0.01) -> GaussianStats:
    """Per-position means and the pooled covariance + eps·I (see module doc)."""
    if m.n < 2:
        raise DataError("position-free statistics need at least 2 images")
    p, d = m.s1.shape
    scatter = m.s2 - m.s1.T @ m.s1 / m.n
    cov = scatter / (p * (m.n - 1)) + eps * np.eye(d)
    mean = (m.shift + m.s1 / m.n).astype(np.float32)
    factor = precision_factor(cov[None])[0].astype(np.float32)[None]
    spread = np.maximum(m.q - np.einsum("pd,pd->p", m.s1, m.s1) / m.n, 0.0)  # tr of each position's scatter
    scale = np.sqrt((spread + 1e-12) / (spread.mean() + 1e-12)).astype(np.float32)
    return GaussianStats(mean, factor, channel_idx.astype(np.int64), tuple(grid), m.n, float(eps), "none", 0.0,
                         scale)


def distances(emb: np.ndarray, stats: GaussianStats) -> np.ndarray:
    """Embeddings (B, d, P) → Mahalanobis distance of each position under the shared factor, (B, P) float32."""
    if stats.factor.shape[0] != 1:
        raise ValueError("position-free statistics hold one shared factor")
    b, _, p = emb.shape
    m = np.empty((b, p), np.float32)
    lm = stats.factored_mean
    with one_blas_thread():  # a (d, d) × (d, P) product: BLAS threads on a busy 2-core CPU cost ~20x (blas_threads.py)
        for i in range(b):  # L·x − L·μ: one product per image, no centred or transposed copy
            z = stats.factor[0] @ emb[i]
            z -= lm
            np.square(z, out=z)
            np.sqrt(z.sum(axis=0), out=m[i])
    return m  # score.distance_maps divides by the position scale

