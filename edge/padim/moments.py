"""Streaming per-position moments in float64, and the Gaussian they define.

Instead of storing N x d x P embeddings (tens of GB for peers' users), keep sums of the
data shifted by a fixed reference K (the first batch's mean):

    n, S1 = Σ y, S2 = Σ y yᵀ, S3 = Σ |y|² y, S4 = Σ |y|⁴        with y = x − K

All are additive, so batches merge by addition and `fit --update` just keeps adding. The
shift keeps the sums well conditioned (the "shifted data" variance algorithm). S3 and S4
are what Ledoit–Wolf shrinkage needs; they cost O(P·d) next to S2's O(P·d²).
Memory is O(P·d²) and does not grow with the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BundleError, DataError
from .blas_threads import one_blas_thread


@dataclass
class Moments:
    n: int
    shift: np.ndarray  # (P, d) float64
    s1: np.ndarray  # (P, d)
    s2: np.ndarray  # (P, d, d)
    s3: np.ndarray  # (P, d)
    s4: np.ndarray  # (P,)

    @classmethod
    def empty(cls, shift: np.ndarray) -> "Moments":
        p, d = shift.shape
        return cls(0, shift.astype(np.float64), np.zeros((p, d)), np.zeros((p, d, d)), np.zeros((p, d)),
                   np.zeros(p))

    def add(self, emb: np.ndarray, chunk: int = 128) -> None:
        """Add a batch of embeddings, shape (B, d, P).

        Works on ``chunk`` positions at a time, so the float64 temporaries stay a few MB
        whatever P and B are; the cost is one read-modify-write of S2 per call, so callers
        should pass batches of a few dozen images rather than one at a time.
        """
        p, d = self.shift.shape
        if emb.ndim != 3 or emb.shape[1:] != (d, p):
            raise ValueError(f"embeddings of shape {emb.shape} do not match moments of (d, P)=({d}, {p})")
        scratch = np.empty((min(chunk, p), d, d))
        with one_blas_thread():
            self._add_chunks(emb, chunk, scratch)
        self.n += emb.shape[0]

    def _add_chunks(self, emb: np.ndarray, chunk: int, scratch: np.ndarray) -> None:
        p = self.shift.shape[0]
        for a in range(0, p, chunk):
            sl = slice(a, min(a + chunk, p))
            y = emb[:, :, sl].astype(np.float64).transpose(2, 0, 1) - self.shift[sl, None, :]  # (c, B, d)
            sq = np.einsum("pbd,pbd->pb", y, y)  # |y|² per sample
            out = scratch[: y.shape[0]]
            np.matmul(y.transpose(0, 2, 1), y, out=out)
            self.s2[sl] += out
            self.s1[sl] += y.sum(axis=1)
            self.s3[sl] += np.einsum("pb,pbd->pd", sq, y)
            self.s4[sl] += (sq * sq).sum(axis=1)

    def positions(self, sl: slice) -> "Moments":
        """The moments of a range of positions, as views (no copy)."""
        return Moments(self.n, self.shift[sl], self.s1[sl], self.s2[sl], self.s3[sl], self.s4[sl])

    def merge(self, other: "Moments") -> "Moments":
        """Add ``other`` into self, in place (no copy of the large arrays); returns self."""
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("moments with different shifts cannot be added")
        self.n += other.n
        self.s1 += other.s1
        self.s2 += other.s2
        self.s3 += other.s3
        self.s4 += other.s4
        return self

    def minus(self, other: "Moments") -> "Moments":
        """A new Moments of self without ``other`` (which must have been added into self)."""
        if not np.array_equal(self.shift, other.shift) or other.n > self.n:
            raise ValueError("only moments that were added into these can be subtracted")
        return Moments(self.n - other.n, self.shift, self.s1 - other.s1, self.s2 - other.s2, self.s3 - other.s3,
                       self.s4 - other.s4)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (P, d) and the maximum-likelihood covariance (1/n) Σ (x-μ)(x-μ)ᵀ, (P, d, d)."""
        if self.n < 1:
            raise DataError("no images were accumulated")
        c = self.s1 / self.n
        cov = self.s2 / self.n - c[:, :, None] * c[:, None, :]
        return self.shift + c, cov

    def sum_fourth_centered(self) -> np.ndarray:
        """Σ_k |x_k − μ|⁴ per position, from the shifted sums (needed by Ledoit–Wolf)."""
        n = self.n
        c = self.s1 / n  # μ − K
        cc = np.einsum("pd,pd->p", c, c)
        c_s2_c = np.einsum("pd,pde,pe->p", c, self.s2, c)
        tr_s2 = np.einsum("pdd->p", self.s2)
        return (self.s4 + 4 * c_s2_c + n * cc * cc - 4 * np.einsum("pd,pd->p", c, self.s3)
                + 2 * cc * tr_s2 - 4 * cc * np.einsum("pd,pd->p", c, self.s1))

    # --- persistence (.npz read with allow_pickle=False: no code runs on load) -----------
    def to_arrays(self) -> dict[str, np.ndarray]:
        p, d = self.s1.shape
        iu = np.triu_indices(d)
        return {"n": np.array(self.n, dtype=np.int64), "shift": self.shift, "s1": self.s1,
                "s2_upper": self.s2[:, iu[0], iu[1]], "s3": self.s3, "s4": self.s4}

    @classmethod
    def from_arrays(cls, a) -> "Moments":
        try:
            shift = np.asarray(a["shift"], dtype=np.float64)
            p, d = shift.shape
            iu = np.triu_indices(d)
            s2 = np.zeros((p, d, d))
            s2[:, iu[0], iu[1]] = a["s2_upper"]
            s2[:, iu[1], iu[0]] = a["s2_upper"]
            want = {"s2_upper": (p, iu[0].size), "s1": (p, d), "s3": (p, d), "s4": (p,)}
            for key, shape in want.items():
                arr = a[key]
                if arr.shape != shape or arr.dtype.kind != "f":
                    raise ValueError(f"{key} is {arr.dtype}{list(arr.shape)}, expected float{list(shape)}")
            return cls(int(a["n"]), shift, np.asarray(a["s1"]), s2, np.asarray(a["s3"]), np.asarray(a["s4"]))
        except (KeyError, ValueError) as e:
            raise BundleError(f"moments file is malformed: {e}") from None


def ledoit_wolf(cov: np.ndarray, fourth: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ledoit–Wolf shrinkage of each (d, d) covariance towards a scaled identity.

    ``cov`` is the ML covariance; ``fourth`` = Σ_k |x_k − μ|⁴. Returns (shrunk, intensity per position).
    Same estimator as Ledoit & Wolf (2004) / scikit-learn's ``ledoit_wolf``.
    """
    d = cov.shape[-1]
    mu = np.einsum("pdd->p", cov) / d
    fro2 = np.einsum("pde,pde->p", cov, cov)  # |S|²_F
    delta = (fro2 - 2 * mu * mu * d + d * mu * mu) / d  # |S − μI|²_F / d
    beta = (fourth / n - fro2) / (n * d)
    beta = np.minimum(np.maximum(beta, 0.0), delta)
    shrink = np.where(delta > 0, beta / np.where(delta > 0, delta, 1.0), 0.0)
    eye = np.eye(d)
    shrunk = (1 - shrink)[:, None, None] * cov + (shrink * mu)[:, None, None] * eye
    return shrunk, shrink


def precision_factor(cov: np.ndarray) -> np.ndarray:
    """Lower-triangular L with Lᵀ L = Σ⁻¹, so that (x−μ)ᵀ Σ⁻¹ (x−μ) = |L (x−μ)|².

    With Σ = C Cᵀ (Cholesky), L = C⁻¹.
    """
    try:
        c = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise DataError("a covariance matrix is not positive definite",
                        hint="raise --eps or use --shrinkage ledoit-wolf (too few or identical images?)") from None
    return np.tril(np.linalg.inv(c))  # inv() leaves ~1e-17 above the diagonal; L is exactly triangular
