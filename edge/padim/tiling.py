"""Tiling for large photos: cut each image into rows × cols tiles at the model's input size.

A 3872×3200 photo resized to 256×256 loses defects a few pixels wide. With tiles, the image
is resized to (rows·H, cols·W) and cut into tiles the backbone sees at full detail; the tiles'
feature grids are stitched back into one (rows·gh, cols·gw) grid, so the anomaly map, the
score and the mask cover the whole photo.

Two kinds of statistics:
* ``per-tile`` (default): every position of the stitched grid has its own Gaussian, as if the
  model saw the whole image at once — right for positioned parts (an assembly, a casting).
  Memory grows with the number of tiles.
* ``shared``: one Gaussian per position *within a tile*, fitted on every tile of every image —
  right for textures and strip, where any tile looks like any other; memory as without tiles.

With 1 × 1 (the default) everything here is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..bundle import InputSpec
from ..errors import ConfigError
from ..preprocess import to_tensor

MODES = ("per-tile", "shared")


@dataclass(frozen=True)
class Tiling:
    rows: int = 1
    cols: int = 1
    mode: str = "per-tile"

    def __post_init__(self):
        if self.rows < 1 or self.cols < 1 or self.rows * self.cols > 64:
            raise ConfigError(f"tiles {self.rows}x{self.cols}: rows and cols must be ≥ 1, at most 64 tiles")
        if self.mode not in MODES:
            raise ConfigError(f"tile mode {self.mode!r} is unknown; choose {' or '.join(MODES)}")

    @classmethod
    def parse(cls, text: str | None, mode: str = "per-tile") -> "Tiling":
        """'2x3' → 2 rows, 3 columns."""
        if not text:
            return cls(1, 1, mode)
        try:
            r, c = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ConfigError(f"tiles {text!r}: write ROWSxCOLS, e.g. 2x2") from None
        return cls(r, c, mode)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def shared(self) -> bool:
        return self.mode == "shared" and self.count > 1

    def to_dict(self) -> dict:
        return {"rows": self.rows, "cols": self.cols, "mode": self.mode}

    def tensors(self, img_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
        """One image → (tiles, 3, H, W), tiles in row-major order."""
        if self.count == 1:
            return to_tensor(img_bgr, spec)[None]
        h, w = spec.height, spec.width
        big_h, big_w = self.rows * h, self.cols * w
        ih, iw = img_bgr.shape[:2]
        if (ih, iw) != (big_h, big_w):
            shrink = ih > big_h and iw > big_w
            img_bgr = cv2.resize(img_bgr, (big_w, big_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return np.stack([to_tensor(img_bgr[r * h:(r + 1) * h, c * w:(c + 1) * w], spec)
                         for r in range(self.rows) for c in range(self.cols)])

    def batch(self, images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
        """Images → one input batch, each image's tiles in order (the one place tiles are batched)."""
        return np.concatenate([self.tensors(im, spec) for im in images])

    def stats_grid(self, tile_grid: tuple[int, int]) -> tuple[int, int]:
        if self.shared:
            return tile_grid
        return self.rows * tile_grid[0], self.cols * tile_grid[1]

    def samples(self, emb: np.ndarray, tile_grid: tuple[int, int]) -> np.ndarray:
        """Tile embeddings (B·T, d, gh·gw) → what the statistics are fitted on and scored against:
        shared: the tiles themselves; per-tile: one stitched (B, d, rows·gh·cols·gw) embedding per image."""
        if self.count == 1 or self.shared:
            return emb
        gh, gw = tile_grid
        bt, d, _ = emb.shape
        e = emb.reshape(bt // self.count, self.rows, self.cols, d, gh, gw).transpose(0, 3, 1, 4, 2, 5)
        return np.ascontiguousarray(e.reshape(bt // self.count, d, self.rows * gh * self.cols * gw))

    def stitch(self, grids: np.ndarray) -> np.ndarray:
        """Distance maps of ``samples`` → one (B, rows·gh, cols·gw) map per image."""
        if self.count == 1 or not self.shared:
            return grids
        bt, gh, gw = grids.shape
        g = grids.reshape(bt // self.count, self.rows, self.cols, gh, gw).transpose(0, 1, 3, 2, 4)
        return g.reshape(bt // self.count, self.rows * gh, self.cols * gw)
