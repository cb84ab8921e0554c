"""PaDiM in torch on the CPU, written the way the reference implementations do it.

As in the paper's code and in anomalib's PaDiM: the backbone runs in torch eager mode; the
taps are upsampled (nearest) to the finest one, concatenated, and a random subset of d
channels is kept; *every* training embedding is stored; then per position the covariance
+ 0.01·I is computed, and all P covariances are inverted in one batched call. Scoring is
Δᵀ Σ⁻¹ Δ as a batched matmul over positions, sqrt, bilinear upsample to the image, and a
Gaussian blur with sigma 4 (kernel 2·⌊4σ+0.5⌋+1 = 33, separable, reflect padding).

It takes any torch module returning the tap tuple, and the same channel subset and input
size as the edge inspector, so the two differ only in how they compute. Torch lives here,
in benchmarks/, never in edge/.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    k = 2 * int(4.0 * sigma + 0.5) + 1
    x = torch.arange(k, dtype=torch.float32) - k // 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


class TorchPadim:
    def __init__(self, module: nn.Module, channel_idx: np.ndarray, eps: float = 0.01, sigma: float = 4.0):
        self.module = module.eval()
        self.idx = torch.as_tensor(np.asarray(channel_idx), dtype=torch.long)
        self.eps = eps
        self.kernel = gaussian_kernel1d(sigma)
        self.mean: torch.Tensor | None = None  # (d, P)
        self.inv_cov: torch.Tensor | None = None  # (P, d, d)
        self.grid: tuple[int, int] | None = None

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, d, h, w): taps upsampled to the finest, concatenated, channel subset."""
        feats = self.module(x)
        h, w = feats[0].shape[-2:]
        e = torch.cat([f if f.shape[-2:] == (h, w) else F.interpolate(f, size=(h, w), mode="nearest")
                       for f in feats], dim=1)
        return torch.index_select(e, 1, self.idx)

    @torch.no_grad()
    def fit(self, batches: Iterable[np.ndarray]) -> None:
        """Store the embedding of every training image, then mean, covariance + eps·I, inverse."""
        stored = [self.embed(torch.from_numpy(x)) for x in batches]
        emb = torch.cat(stored, dim=0)  # (N, d, h, w)
        del stored
        n, d, h, w = emb.shape
        self.grid = (h, w)
        emb = emb.reshape(n, d, h * w)
        self.mean = emb.mean(dim=0)
        cov = torch.empty(h * w, d, d)
        eye = torch.eye(d)
        for i in range(h * w):
            cov[i] = torch.cov(emb[:, :, i].T) + self.eps * eye
        self.inv_cov = torch.linalg.inv(cov)

    @torch.no_grad()
    def distances(self, xt: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → Mahalanobis distance on the grid, (B, 1, h, w)."""
        e = self.embed(xt)
        b, d, h, w = e.shape
        delta = (e.reshape(b, d, h * w) - self.mean).permute(2, 0, 1)  # (P, B, d)
        dist = (torch.matmul(delta, self.inv_cov) * delta).sum(2).permute(1, 0)  # (B, P)
        return dist.reshape(b, 1, h, w).clamp(min=0).sqrt()

    @torch.no_grad()
    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised batch (B, 3, H, W) → (anomaly maps (B, H, W), image scores (B,))."""
        xt = torch.from_numpy(x)
        amap = F.interpolate(self.distances(xt), size=xt.shape[-2:], mode="bilinear", align_corners=False)
        amap = self._blur(amap)[:, 0]
        return amap.numpy(), amap.amax(dim=(-2, -1)).numpy()

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))

    # --- persistence, so a fit in one process can be scored in another --------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "inv_cov": self.inv_cov, "grid": torch.tensor(self.grid)}

    def load_state(self, st: dict[str, torch.Tensor]) -> None:
        self.mean, self.inv_cov = st["mean"], st["inv_cov"]
        self.grid = tuple(int(v) for v in st["grid"])

    @property
    def stats_bytes(self) -> int:
        return int(self.inv_cov.numel() * self.inv_cov.element_size() + self.mean.numel() * 4)

