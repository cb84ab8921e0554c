"""Lower-triangular precision factors in the layouts that storage and scoring want.

Scoring reads every per-position factor L_p for every image, so the bytes read decide the
speed (the matmul itself is ~0.04 GFLOP). A dense (P, d, d) array is half zeros. Two layouts
avoid them:

* **packed** (P, d(d+1)/2): row-major lower triangle, exactly half of dense; used on disk.
* **block rows**: rows of L cut into ``nb`` bands; band i keeps only columns ``:end_i``, so
  z = L y becomes ``nb`` batched matmuls over contiguous (P, rows_i, end_i) arrays. With
  bands of ~20 rows that is ~60% of dense at d=100 and runs at memory speed in plain numpy
  (BLAS per position), where a packed triangle would need a custom kernel.
"""

from __future__ import annotations

import numpy as np

from ..errors import BundleError

BAND_ROWS = 20  # rows per band; smaller bands save bytes but add per-call overhead


def packed_size(d: int) -> int:
    return d * (d + 1) // 2


def pack_lower(factor: np.ndarray) -> np.ndarray:
    """(P, d, d) lower-triangular → (P, d(d+1)/2), row-major lower triangle."""
    d = factor.shape[-1]
    r, c = np.tril_indices(d)
    return np.ascontiguousarray(factor[:, r, c])


def unpack_lower(packed: np.ndarray, d: int, dtype=np.float32) -> np.ndarray:
    """(P, d(d+1)/2) → dense (P, d, d) with zeros above the diagonal."""
    if packed.ndim != 2 or packed.shape[1] != packed_size(d):
        raise BundleError(f"packed factor has shape {packed.shape}, expected (P, {packed_size(d)}) for d={d}")
    out = np.zeros((packed.shape[0], d, d), dtype=dtype)
    r, c = np.tril_indices(d)
    out[:, r, c] = packed
    return out


def band_edges(d: int, rows: int = BAND_ROWS) -> list[int]:
    nb = max(1, round(d / rows))
    return [round(d * i / nb) for i in range(nb + 1)]


class BlockRows:
    """L as bands of rows, each truncated at its last non-zero column (see module doc)."""

    def __init__(self, bands: list[np.ndarray], edges: list[int]):
        self.bands = bands
        self.edges = edges
        self.d = edges[-1]

    @classmethod
    def from_dense(cls, factor: np.ndarray, rows: int = BAND_ROWS) -> "BlockRows":
        edges = band_edges(factor.shape[-1], rows)
        bands = [np.ascontiguousarray(factor[:, a:b, :b], dtype=np.float32) for a, b in zip(edges[:-1], edges[1:])]
        return cls(bands, edges)

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.bands)

    def apply(self, y: np.ndarray) -> np.ndarray:
        """z = L y for y of shape (P, d, B) float32; returns (P, d, B) float32."""
        z = np.empty_like(y)
        for (a, b), band in zip(zip(self.edges[:-1], self.edges[1:]), self.bands):
            np.matmul(band, y[:, :b, :], out=z[:, a:b, :])
        return z
