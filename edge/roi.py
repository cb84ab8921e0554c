"""Region of interest: the part of the photo that is inspected. Outside it nothing is scored and
nothing is masked (the anomaly map is 0 there, before and after the blur, so a bright fixture
next to the part can neither raise the score nor bleed into the mask).

Given as a mask image (`--roi roi.png`: white = inspect, black = ignore; any size, it is scaled
to each photo) or as polygons in photo pixels (station config ``inspector.roi_polygon``). `fit`
copies it into the inspector (``roi.png``), so scoring and the line runtime use it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import ConfigError, ImageError

ROI_FILE = "roi.png"


@dataclass(frozen=True, eq=False)
class Roi:
    """``mask``: uint8, nonzero = inside (scaled to each photo by nearest neighbour); or ``polygons``:
    vertex lists (x, y) in the pixels of the photos being scored."""

    mask: np.ndarray | None = None
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.mask is None and not self.polygons:
            raise ConfigError("a region of interest needs a mask image or at least one polygon")
        if self.mask is not None and not self.mask.any():
            raise ConfigError("the ROI mask has no white pixel: nothing would be inspected",
                              hint="white (nonzero) marks what to inspect, black what to ignore")
        for poly in self.polygons:
            if len(poly) < 3:
                raise ConfigError(f"ROI polygon {list(poly)} needs at least 3 points (x, y)")

    @classmethod
    def load(cls, path: str | Path) -> "Roi":
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ImageError(f"cannot read the ROI mask {path}", hint="give a PNG: white = inspect, black = ignore")
        return cls(mask=(img > 127).astype(np.uint8) * 255)

    @classmethod
    def from_polygons(cls, polygons) -> "Roi":
        return cls(polygons=tuple(tuple((float(x), float(y)) for x, y in poly) for poly in polygons))

    def inside(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean (h, w): True where the photo is inspected. Cached per size."""
        key = (int(shape[0]), int(shape[1]))
        hit = self._cache.get(key)
        if hit is None:
            h, w = key
            if self.mask is not None:
                m = cv2.resize(self.mask, (w, h), interpolation=cv2.INTER_NEAREST)
            else:
                m = np.zeros((h, w), np.uint8)
                cv2.fillPoly(m, [np.round(np.asarray(p)).astype(np.int32) for p in self.polygons], 255)
            hit = m > 0
            if not hit.any():
                raise ConfigError(f"the region of interest covers no pixel of a {w}x{h} photo",
                                  hint="polygon points are (x, y) in the photo's pixels")
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def save(self, path: Path, shape: tuple[int, int] | None = None) -> None:
        """As a mask PNG (polygons drawn at ``shape``, the fitted photos' size)."""
        m = self.mask if self.mask is not None else self.inside(shape).astype(np.uint8) * 255
        if not cv2.imwrite(str(path), m):
            raise ImageError(f"cannot write {path}")
