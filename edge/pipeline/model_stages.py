"""The inspector, cut into the pipeline's stages: preprocess → infer → score.

These are the steps of :meth:`edge.inspector.Inspector.inspect`, run on separate threads so
that preprocessing of the next batch overlaps inference of this one (tests check that both
give the same scores). A batch keeps the inspector it started with, so a reload (SIGHUP) swaps
inspectors between batches without mixing them inside one.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..inspector import Inspection, Inspector
from ..log_format import log_event
from ..sources.frame import Frame

log = logging.getLogger("edge.pipeline")


@dataclass
class Batch:
    """Frames travelling through the model stages together (internal to the pipeline)."""

    frames: list[Frame]
    inspector: Inspector
    results: list[Inspection | str | None] = field(default_factory=list)  # str = why it failed
    rows: list[int] = field(default_factory=list)  # which frames are in the tensor
    tensor: np.ndarray | None = None
    features: dict | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)  # per frame
    t_start: float = 0.0

    def fail_pending(self, why: str) -> None:
        self.results = [why if r is None else r for r in self.results]
        self.rows = []
        self.tensor = self.features = None


def preprocess(b: Batch) -> None:
    tensors = []
    b.results = [None] * len(b.frames)
    for i, f in enumerate(b.frames):
        if f.image is None:
            b.results[i] = f.error or "no image"
            continue
        try:
            tensors.append(b.inspector.tiling.tensors(f.image, b.inspector.bundle.input))
            b.rows.append(i)
        except Exception as e:
            b.results[i] = f"preprocessing failed: {type(e).__name__}: {e}"
    b.tensor = np.concatenate(tensors) if tensors else None  # one row per tile


def infer(b: Batch) -> None:
    if b.tensor is None:
        return
    be = b.inspector.backend
    b.features = be.infer({be.input_name: b.tensor})
    b.tensor = None


def score(b: Batch) -> None:
    if b.features is None:
        return
    insp = b.inspector
    grid = insp.grid_from_features(b.features)
    b.features = None
    for i, g in zip(b.rows, grid):
        b.results[i] = insp.decide(g, b.frames[i].image.shape[:2])


class InspectorSlot:
    """Holds the current inspector; :meth:`reload` loads (and warms up) a new one beside it, then swaps,
    so the first parts after a start or a reload do not pay for the runtime's first inference."""

    def __init__(self, load: Callable[[], Inspector]):
        self._load = load
        self._lock = threading.Lock()
        self._current = _announce(load())
        self.reloads = 0

    @property
    def current(self) -> Inspector:
        with self._lock:
            return self._current

    def reload(self) -> tuple[bool, str]:
        """(True, new id) after a swap; (False, why) and the old inspector stays."""
        old = self.current.id
        t0 = time.perf_counter()
        try:
            new = _announce(self._load())
        except Exception as e:  # any load failure keeps the running inspector
            log_event(log, logging.ERROR, "reload failed; keeping the running inspector", inspector=old,
                      error=f"{type(e).__name__}: {e}")
            return False, str(e)
        with self._lock:
            self._current = new
            self.reloads += 1
        log_event(log, logging.INFO, "inspector reloaded", old=old, new=new.id,
                  load_ms=round((time.perf_counter() - t0) * 1000, 1))
        return True, new.id


def apply_threshold_overrides(insp: Inspector, image: float | None, pixel: float | None) -> Inspector:
    if image is None and pixel is None:
        return insp
    c = insp.calibration
    insp.calibration = dataclasses.replace(
        c, image_threshold=image if image is not None else c.image_threshold,
        pixel_threshold=pixel if pixel is not None else c.pixel_threshold,
        details={**c.details, "overridden_by_config": {"image": c.image_threshold, "pixel": c.pixel_threshold}})
    return insp


def _announce(insp: Inspector) -> Inspector:
    """Warm the runtime up (the first inference allocates and, with TensorRT, builds engines), then log."""
    t0 = time.perf_counter()
    spec = insp.bundle.input
    insp.inspect([np.full((spec.height, spec.width, 3), 128, np.uint8)])
    c = insp.calibration
    log_event(log, logging.INFO, "inspector loaded", inspector=insp.id, path=str(insp.root),
              backend=getattr(insp.backend, "name", "?"), image_threshold=round(c.image_threshold, 5),
              pixel_threshold=round(c.pixel_threshold, 5), warm_up_ms=round((time.perf_counter() - t0) * 1000, 1))
    return insp
