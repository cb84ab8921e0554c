"""Held-out scores for every good image, from the additive moments (cross-fitting).

A threshold set from good images needs their scores as *new* parts would get them: from statistics
that never saw them. The moments are sums, so "all images but these" is the total minus theirs.

* **Per-position (aligned) statistics: leave-one-out in closed form.** Refitting without image x
  moves the mean to μ₋ = μ − u/(n−1) and the covariance to B − c·u uᵀ (u = x − μ, B and c from
  :func:`~edge.padim.stats.leave_one_out_base`). Sherman–Morrison then gives x's held-out distance
  from one factor of B: m₋² = a²·q/(1 − c·q) with q = |L_B u|² and a = n/(n−1). So all N images get
  the score a refit on the other N−1 would give (to float tolerance; tests compare against refits),
  with one extra finalisation and no fold moments: memory stays one set of P·d² sums.
* **Position-free (texture) statistics: K folds.** The covariance is one (d, d) matrix, so the
  sums of K folds cost K·(P·d + d²) and the fold held-out Gaussian (total − fold) is cheap to finalise.

Held-out statistics come from N−1 images (aligned) or N·(K−1)/K (texture) rather than N, so the
scores run a little higher than those of the final fit: a small, conservative bias.

* **How far good parts stray, per position (aligned).** Even with a Gaussian per position, good
  parts stray further from it in some places than in others: where the part's edge moves a little,
  at the frame's border (registration brings content in from outside the photo), where a highlight
  comes and goes. Those places raise good parts' scores and hide defects elsewhere. The held-out
  distances say where: :class:`PositionScale` divides each position's distances by their mean over
  the held-out good images (relative to the mean over all positions, so the units stay those of
  the distance). Each good image's own held-out map is divided by the scale of the *other* images,
  so its score stays held-out.
"""

from __future__ import annotations

import numpy as np

from .moments import Moments
from .position_free import PooledMoments, gaussian_from_pooled
from .score import _centred, distance_maps, mahalanobis
from .stats import GaussianStats, leave_one_out_base

MIN_DENOMINATOR = 1e-9  # 1 − c·q > 0 in exact arithmetic (the downdated covariance is positive definite)


class LeaveOneOut:
    """Leave-one-out distances from one set of per-position moments (see module doc).

    ``group``: the samples one image gave each position (its rows of ``Tiling.samples``: 1, or its
    tiles and cells when they share statistics); all of them are left out together, by Woodbury's
    identity on a group×group system per position (with 1, Sherman–Morrison as above)."""

    def __init__(self, total: Moments, channel_idx: np.ndarray, grid: tuple[int, int], eps: float,
                 shrinkage: str = "none", group: int = 1):
        self.n, self.group = total.n, int(group)
        self.base, s = leave_one_out_base(total, channel_idx, grid, eps, shrinkage, group=self.group)
        self.s = s.astype(np.float64)  # (P,)
        self.c = self.s * self.n / (self.n - 1)  # the rank-one case: s·G with G = n/(n−1)
        self.a = self.n / (self.n - 1)

    def own(self, emb: np.ndarray) -> np.ndarray:
        """Held-out distance maps (B, gh, gw) of images whose embeddings ``emb`` are in the moments."""
        if self.group > 1:
            return self._per_image(emb, emb)
        # fp32 factors: 1 − c·q can be small when n ≤ d, and fp16's ~1e-4 would show in it
        q = mahalanobis(emb, self.base, "fp32").astype(np.float64) ** 2
        c = self.c.reshape(self.base.grid)
        den = np.maximum(1.0 - c * q, MIN_DENOMINATOR)
        return np.sqrt(self.a ** 2 * q / den).astype(np.float32)

    def other(self, emb_y: np.ndarray, emb_x: np.ndarray) -> np.ndarray:
        """Distance maps of new vectors y scored by the statistics without image x (pairwise, (B, gh, gw))."""
        if self.group > 1:
            return self._per_image(emb_x, emb_y)
        rows = self.base.block_rows
        zu = rows.apply(_centred(emb_x, self.base)).astype(np.float64)  # L_B u, (P, d, B)
        zy = rows.apply(_centred(emb_y, self.base)).astype(np.float64)  # L_B (y − μ)
        zv = zy + zu / (self.n - 1)  # L_B (y − μ₋)
        q = np.einsum("pdb,pdb->pb", zu, zu)
        cross = np.einsum("pdb,pdb->pb", zu, zv)
        c = self.c[:, None]
        den = np.maximum(1.0 - c * q, MIN_DENOMINATOR)
        m2 = np.einsum("pdb,pdb->pb", zv, zv) + c * cross ** 2 / den
        return np.sqrt(m2).T.reshape(emb_x.shape[0], *self.base.grid).astype(np.float32)

    def _per_image(self, emb_x: np.ndarray, emb_y: np.ndarray) -> np.ndarray:
        """:meth:`_grouped` one image (``group`` rows) at a time, so its float64 temporaries stay a few
        hundred MB even for a photo's 56 windows sharing one Gaussian per position."""
        g, rows = self.group, self.base.block_rows
        out = []
        for a in range(0, emb_x.shape[0], g):
            zx = rows.apply(_centred(emb_x[a:a + g], self.base)).astype(np.float64)
            zy = zx if emb_y is emb_x else rows.apply(_centred(emb_y[a:a + g], self.base)).astype(np.float64)
            out.append(self._grouped(zx, zy))
        return np.concatenate(out)

    def _grouped(self, zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
        """Distances of the samples y of each image (rows b·g + j) under the statistics without the g
        samples x of that image, both given as L_B(· − μ), (P, d, B·g). With Z = L_B U, w = L_B(y − μ')
        = z_y + Z·1/n' and M = G⁻¹/s − ZᵀZ: m² = |w|² + (Zᵀw)ᵀ M⁻¹ (Zᵀw)."""
        g = self.group
        p, d, rows = zx.shape
        b = rows // g
        zx = zx.reshape(p, d, b, g)
        n1 = self.n - g
        w = zy.reshape(p, d, b, g) + zx.sum(axis=3, keepdims=True) / n1
        ginv = np.eye(g) - np.ones((g, g)) / (n1 + g)  # (I + 11ᵀ/n')⁻¹
        m = ginv / self.s[:, None, None, None] - np.einsum("pdbi,pdbj->pbij", zx, zx)
        ztw = np.einsum("pdbi,pdbj->pbij", zx, w)  # column j: Zᵀ w_j
        m2 = np.einsum("pdbj,pdbj->pbj", w, w) + np.einsum("pbij,pbij->pbj", ztw, np.linalg.solve(m, ztw))
        dist = np.sqrt(np.maximum(m2, 0.0)).transpose(1, 2, 0).reshape(rows, *self.base.grid)
        return dist.astype(np.float32)


class FoldMoments:
    """Position-free sums kept per fold (image i goes to fold i mod K); K·(P·d + d²) floats."""

    def __init__(self, folds: int, grid: tuple[int, int]):
        self.k, self.grid = folds, tuple(grid)
        self.parts: list[PooledMoments | None] = [None] * folds
        self._held_out: dict[int, GaussianStats] = {}

    def fold_of(self, index: int) -> int:
        return index % self.k

    def add(self, fold: int, emb: np.ndarray) -> None:
        if self.parts[fold] is None:
            ref = next((p.shift for p in self.parts if p is not None), None)
            self.parts[fold] = PooledMoments.empty(ref if ref is not None else emb.mean(axis=0).T.astype(np.float64))
        self.parts[fold].add(emb)

    def total(self) -> PooledMoments:
        parts = [p for p in self.parts if p is not None]
        out = parts[0].copy()
        for p in parts[1:]:
            out.merge(p)
        return out

    def held_out(self, fold: int, channel_idx: np.ndarray, eps: float) -> GaussianStats:
        """The Gaussian of every fold but ``fold`` (finalised once, then kept)."""
        if fold not in self._held_out:
            rest = self.total()
            if self.parts[fold] is not None:
                rest = rest.minus(self.parts[fold])
            self._held_out[fold] = gaussian_from_pooled(rest, channel_idx, self.grid, eps)
        return self._held_out[fold]

    def distances(self, fold: int, emb: np.ndarray, channel_idx: np.ndarray, eps: float) -> np.ndarray:
        st = self.held_out(fold, channel_idx, eps)
        return distance_maps(emb, st, "texture", st.grid).reshape(emb.shape[0], -1)


class PositionScale:
    """Per-position mean of held-out distances over good images, for dividing distance maps by it.

    ``add(k, grids)``: the held-out distance grids (rows, gh, gw) of good image ``k`` (several rows
    when its tiles or cells share the statistics; they count as one image). ``scale(k)``: the scale
    without image ``k`` (its own maps are divided by this); ``scale()``: with every image, for the
    final statistics. Both have mean 1 over the positions of the full scale.
    """

    def __init__(self, grid: tuple[int, int]):
        self.grid = tuple(grid)
        self.per_image: dict[int, np.ndarray] = {}
        self._sum: np.ndarray | None = None

    def add(self, k: int, grids: np.ndarray) -> None:
        if k in self.per_image:
            raise ValueError(f"image {k} was already added")
        g = np.asarray(grids, np.float64).reshape(-1, *self.grid).mean(axis=0)
        self.per_image[k] = g
        self._sum = g.copy() if self._sum is None else self._sum + g

    @property
    def n(self) -> int:
        return len(self.per_image)

    def _norm(self) -> float:
        return float(self._sum.mean()) / self.n

    def scale(self, without: int | None = None) -> np.ndarray | None:
        """(gh, gw) float32, or None with fewer than 2 images (no spread to measure)."""
        if self.n < 2 or self._norm() <= 0:
            return None
        if without is None or without not in self.per_image:
            mean = self._sum / self.n
        else:
            mean = (self._sum - self.per_image[without]) / (self.n - 1)
        return np.maximum(mean / self._norm(), MIN_SCALE).astype(np.float32)


MIN_SCALE = 0.05  # no position's distances are multiplied by more than 20
