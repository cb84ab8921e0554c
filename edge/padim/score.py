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
    """Embeddings (B, d, P) → distance maps (B, *sample_grid) under the inspector's model ``mode``,
    divided by the statistics' position scale when they have one (texture: each position's spread;
    aligned: how far held-out good images strayed there, crossfit.PositionScale)."""
    if mode == "texture":
        maps = position_free.distances(emb, stats).reshape(emb.shape[0], *stats.grid)
    elif mode == "aligned":
        maps = mahalanobis(emb, stats, precision, threads)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    if stats.position_scale is not None:
        maps /= stats.position_scale.reshape(stats.grid)[None]
    return maps


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


def work_scale(grid_hw: tuple[int, int], out_hw: tuple[int, int], sigma: float) -> int:
    """How much coarser than the image the map is blurred: r with every grid cell still ≥ 4 pixels wide
    and the blur ≥ 1 pixel at 1/r of the image's size (1: at the image's own size). A 3872x3200 photo in
    512-px windows has 8-pixel cells: r = 2. Images at the model's input (4-pixel cells) get 1."""
    cell = min(out_hw[0] / max(1, grid_hw[0]), out_hw[1] / max(1, grid_hw[1]))
    return max(1, min(int(cell // 4), int(sigma) if sigma > 0 else 1))


def full_res_map(grid_map: np.ndarray, out_hw: tuple[int, int], sigma: float = 4.0,
                 inside: np.ndarray | None = None) -> np.ndarray:
    """Grid map → bilinear upsample to the image's own (h, w) → Gaussian blur (sigma in output pixels).

    ``inside`` (bool (h, w), a region of interest): the map is 0 outside it, before the blur (nothing
    outside bleeds in) and after (nothing leaks out).

    The map is smooth at the grid's resolution, so where the cells are large (big photos: work_scale
    r > 1) the upsample and blur run at 1/r of the image's size with sigma / r and the result is
    upsampled to (h, w); the neighbourhood of its peak is then computed at full size, so the image score
    (the maximum) is that of the full-size blur (to float noise, unless two peaks are within ~0.5% of
    each other) and masks stay within a few % IoU of it (tested). A 3872x3200 photo: ~110 -> ~45 ms.
    """
    h, w = out_hw
    r = work_scale(grid_map.shape, out_hw, sigma)
    if r == 1:
        return _blurred(grid_map, out_hw, sigma, inside)
    wh, ww = max(1, round(h / r)), max(1, round(w / r))
    small = _blurred(grid_map, (wh, ww), sigma / r, None if inside is None else
                     cv2.resize(inside.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST) > 0)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if inside is not None:
        up[~inside] = 0.0
    iy, ix = np.unravel_index(int(np.argmax(small)), small.shape)
    cell = max(h / grid_map.shape[0], w / grid_map.shape[1])
    _exact_patch(up, grid_map, (int((iy + 0.5) * h / wh), int((ix + 0.5) * w / ww)),
                 int(2 * cell + 2 * sigma), sigma, inside)
    return up


def _blurred(grid_map: np.ndarray, out_hw: tuple[int, int], sigma: float, inside: np.ndarray | None) -> np.ndarray:
    h, w = out_hw
    up = cv2.resize(grid_map.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if inside is not None:
        up[~inside] = 0.0
    if sigma > 0:
        up = cv2.GaussianBlur(up, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        if inside is not None:
            up[~inside] = 0.0
    return up


def _bilinear_rows(n_out: int, n_src: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of output pixels lo..hi-1 along one axis, as cv2.resize INTER_LINEAR
    places them (pixel centres aligned, clamped at the edges)."""
    f = (np.arange(lo, hi, dtype=np.float64) + 0.5) * (n_src / n_out) - 0.5
    i0 = np.floor(f)
    a = (f - i0).astype(np.float32)
    i0 = i0.astype(np.int64)
    a[i0 < 0] = 0.0
    a[i0 >= n_src - 1] = 0.0
    i0 = np.clip(i0, 0, n_src - 1)
    return i0, np.minimum(i0 + 1, n_src - 1), a


def _exact_patch(up: np.ndarray, grid_map: np.ndarray, centre: tuple[int, int], half: int, sigma: float,
                 inside: np.ndarray | None) -> None:
    """Overwrite up[centre ± half] with the full-size upsample + blur of the grid there: computed on the
    patch plus the blur's reach (the image's own edges where it touches them, so its border rule holds)."""
    h, w = up.shape
    rad = (int(round(sigma * 8 + 1)) | 1) // 2  # OpenCV's kernel size for float images
    (cy, cx), g = centre, grid_map.astype(np.float32)
    y0, y1, x0, x1 = max(0, cy - half), min(h, cy + half + 1), max(0, cx - half), min(w, cx + half + 1)
    ya, yb, xa, xb = max(0, y0 - rad), min(h, y1 + rad), max(0, x0 - rad), min(w, x1 + rad)
    r0, r1, ry = _bilinear_rows(h, g.shape[0], ya, yb)
    c0, c1, rx = _bilinear_rows(w, g.shape[1], xa, xb)
    rows = g[r0] * (1 - ry)[:, None] + g[r1] * ry[:, None]
    patch = rows[:, c0] * (1 - rx)[None, :] + rows[:, c1] * rx[None, :]
    pin = None if inside is None else inside[ya:yb, xa:xb]
    if pin is not None:
        patch[~pin] = 0.0
    patch = cv2.GaussianBlur(patch, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if pin is not None:
        patch[~pin] = 0.0
    up[y0:y1, x0:x1] = patch[y0 - ya:y1 - ya, x0 - xa:x1 - xa]


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

    The opening runs on the bounding box of the pixels above the threshold, grown by twice the radius
    (clipped to the image): outside it nothing is set before or after, so the mask is the same as an
    opening of the whole image, which on a 3872x3200 photo cost ~35 ms where a defect covers a few
    thousand pixels (and nothing when none is above the threshold).
    """
    m = (amap >= threshold).view(np.uint8)  # 0/1, no copy
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return np.zeros(m.shape, np.uint8)
    m = m * np.uint8(255)
    if open_radius > 0:
        cols = np.flatnonzero(m[rows[0]:rows[-1] + 1].any(axis=0))
        pad = 2 * open_radius
        y0, y1 = max(0, rows[0] - pad), min(m.shape[0], rows[-1] + 1 + pad)
        x0, x1 = max(0, cols[0] - pad), min(m.shape[1], cols[-1] + 1 + pad)
        box = m[y0:y1, x0:x1]
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * open_radius + 1, 2 * open_radius + 1))
        opened = cv2.morphologyEx(box, cv2.MORPH_OPEN, k)
        if keep_peak and not opened.any():
            # the opening removes specks; it must not erase the only evidence of an NG part
            return m
        box[...] = opened
    return m
