"""Mahalanobis maps and their post-processing (upsample, blur, threshold, clean)."""

from __future__ import annotations

import cv2
import numpy as np

from . import position_free
from .blas_threads import one_blas_thread
from .stats import GaussianStats

MODES = ("aligned", "texture")  # per-position Gaussians (PaDiM) | one position-free Gaussian (position_free.py)


def _centred(emb: np.ndarray, stats: GaussianStats) -> np.ndarray:
    """(B, d, P) → x − μ as a C-contiguous (P, d, B) float32 array (BLAS wants each position contiguous)."""
    b, d, p = emb.shape
    out = np.empty((p, d, b), np.float32)
    np.subtract(emb.transpose(2, 1, 0), stats.mean[:, :, None], out=out)
    return out


def mahalanobis(emb: np.ndarray, stats: GaussianStats, precision: str = "auto",
                threads: int | None = None) -> np.ndarray:
    """Embedding (B, d, P) → distance map (B, gh, gw), float32.

    m_p = |L_p (x_p − μ_p)|. The speed is bound by reading the factors, and the B images of a
    batch share one read. With the native kernel (kernel.py) the factors are read as fp16 or
    fp32 row blocks (``precision``: auto | fp16 | fp32) on ``threads`` cores; without it, in
    numpy as fp32 bands (:class:`~edge.padim.factor.BlockRows`, ~60% of the dense bytes).
    """
    scorer = stats.scorer(precision)
    if scorer is not None:
        return scorer.distances(emb, threads).reshape(emb.shape[0], *stats.grid)
    return mahalanobis_bands(emb, stats)


def distance_maps(emb: np.ndarray, stats: GaussianStats, mode: str, sample_grid: tuple[int, int],
                  precision: str = "auto", threads: int | None = None) -> np.ndarray:
    """Embeddings (B, d, P) → distance maps (B, *sample_grid) under the inspector's model ``mode``."""
    if mode == "texture":
        return position_free.distances(emb, stats).reshape(emb.shape[0], *stats.grid)
    if mode != "aligned":
        raise ValueError(f"unknown mode {mode!r}")
    return mahalanobis(emb, stats, precision, threads)


def mahalanobis_bands(emb: np.ndarray, stats: GaussianStats) -> np.ndarray:
    """The same distance in numpy (fp32 bands of rows): the path without the native kernel."""
    with one_blas_thread():  # P small products: threading each costs more than it saves
        z = stats.block_rows.apply(_centred(emb, stats))
    m2 = np.einsum("pdb,pdb->bp", z, z)
    return np.sqrt(m2, out=m2).reshape(emb.shape[0], *stats.grid)


def mahalanobis_dense(emb: np.ndarray, stats: GaussianStats) -> np.ndarray:
    """The same distance with one dense batched matmul (reads every zero above the diagonal too)."""
    with one_blas_thread():
        z = np.matmul(stats.factor, _centred(emb, stats))
    m2 = np.einsum("pdb,pdb->bp", z, z)
    return np.sqrt(m2, out=m2).reshape(emb.shape[0], *stats.grid)


def full_res_map(grid_map: np.ndarray, out_hw: tuple[int, int], sigma: float = 4.0,
                 inside: np.ndarray | None = None) -> np.ndarray:
    """Grid map → bilinear upsample to the image's own (h, w) → Gaussian blur (sigma in output pixels).

    ``inside`` (bool (h, w), a region of interest): the map is 0 outside it, before the blur (nothing
    outside bleeds in) and after (nothing leaks out)."""
    h, w = out_hw
    up = cv2.resize(grid_map.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if inside is not None:
        up[~inside] = 0.0
    if sigma > 0:
        up = cv2.GaussianBlur(up, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        if inside is not None:
            up[~inside] = 0.0
    return up


def image_score(amap: np.ndarray) -> float:
    """The one definition of an image's score: the maximum of its blurred full-size anomaly map.

    Fitting (the threshold), scoring (the decision) and export's parity check all use it, so the
    threshold and the score agree by construction.
    """
    return float(amap.max())


def anomaly_mask(amap: np.ndarray, threshold: float, open_radius: int = 4, keep_peak: bool = False) -> np.ndarray:
    """Pixels at or above ``threshold``, cleaned by a morphological opening with a disk; uint8 0/255.

    With ``keep_peak`` (used for NG images), a region the opening would remove entirely is kept,
    so an NG decision always comes with a mask that shows where.
    """
    m = (amap >= threshold).astype(np.uint8) * 255
    if open_radius > 0 and m.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * open_radius + 1, 2 * open_radius + 1))
        opened = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
        if keep_peak and not opened.any():
            # the opening removes specks; it must not erase the only evidence of an NG part
            return m
        m = opened
    return m
