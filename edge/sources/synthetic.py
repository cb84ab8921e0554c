"""``synthetic``: a test pattern with planted defects, for tests and for dry runs without a camera.

Frames are the same textures as `edge-inspect demo-data`; a share of them (``defect_rate``) carries
a planted defect, and its kind is part of the frame id (``synthetic-000012-spot``), so a dry run
shows at a glance whether NG decisions land on the defective frames.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import numpy as np

from ..config.sections import SyntheticSection
from ..demo_data import DEFECTS, plant_defect, texture
from .frame import Frame


class SyntheticSource:
    live = False

    def __init__(self, cfg: SyntheticSection | None = None, clock=time.monotonic):
        self.cfg = cfg or SyntheticSection()
        self.clock = clock
        self._stop = threading.Event()

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, str | None]:
        img = texture(self.cfg.texture, tuple(self.cfg.size), rng)
        if rng.random() < self.cfg.defect_rate:
            kind = DEFECTS[int(rng.integers(len(DEFECTS)))]
            img, _ = plant_defect(img, kind, rng)
            return img, kind
        return img, None

    def __iter__(self) -> Iterator[Frame]:
        rng = np.random.default_rng(self.cfg.seed)
        period = 1.0 / self.cfg.fps if self.cfg.fps else 0.0
        next_t = self.clock()
        seq = 0
        while not self._stop.is_set():
            if period:
                wait = next_t - self.clock()
                if wait > 0 and self._stop.wait(wait):
                    return
                next_t = max(next_t + period, self.clock() - period)
            img, kind = self.make(rng)
            t = self.clock()
            yield Frame(seq, f"synthetic-{seq:06d}" + (f"-{kind}" if kind else ""), img, t, t)
            seq += 1

    def close(self) -> None:
        self._stop.set()
