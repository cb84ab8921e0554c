"""A model stage (edge/stage.py), cut into the pipeline's threads: preprocess → infer → score.

These are the steps of :func:`edge.stage.run_stage`, run on separate threads so that
preprocessing of the next batch overlaps inference of this one (tests check that both give the
same scores). A batch keeps the stage it started with, so a reload (SIGHUP) swaps stages between
batches without mixing them inside one. Any :class:`~edge.stage.ModelStage` runs here: a PaDiM
inspector, a classifier or segmenter bundle, or a cascade.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ImageError
from ..inspector import Inspector
from ..log_format import Throttle, log_event
from ..sources.frame import Frame
from ..stage import Inspection, ModelStage, run_stage

log = logging.getLogger("edge.pipeline")
_refusals = Throttle(30.0)  # warnings about frames a stage refused (capture check, shape)


@dataclass
class Batch:
    """Frames travelling through the model stages together (internal to the pipeline)."""

    frames: list[Frame]
    stage: ModelStage
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
            tensors.append(b.stage.tensors([f.image]))  # one frame at a time: a bad frame fails alone
            b.rows.append(i)
        except ImageError as e:  # the stage refused the frame itself (its shape, the capture check)
            b.results[i] = str(e)
            held = _refusals.check("refused")
            if held is not None:  # a failed lamp refuses every frame: one line per interval, with the count
                log_event(log, logging.WARNING, "frame refused before inference; its decision is ERROR",
                          image=f.id, error=e.message, since_last_report=held)
        except Exception as e:
            b.results[i] = f"preprocessing failed: {type(e).__name__}: {e}"
    b.tensor = np.concatenate(tensors) if tensors else None  # one row per tile


def infer(b: Batch) -> None:
    if b.tensor is None:
        return
    be = b.stage.backend
    b.features = be.infer({be.input_name: b.tensor})
    b.tensor = None


def score(b: Batch) -> None:
    if b.features is None:
        return
    res = b.stage.results(b.features, [b.frames[i].image for i in b.rows])
    b.features = None
    for i, r in zip(b.rows, res):
        b.results[i] = r


class StageSlot:
    """Holds the current model stage; :meth:`reload` loads (and warms up) a new one beside it, then swaps,
    so the first parts after a start or a reload do not pay for the runtime's first inference."""

    def __init__(self, load: Callable[[], ModelStage]):
        self._load = load
        self._lock = threading.Lock()
        self._current = _announce(load())
        self.reloads = 0

    @property
    def current(self) -> ModelStage:
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


def apply_threshold_overrides(insp: ModelStage, image: float | None, pixel: float | None) -> ModelStage:
    if image is None and pixel is None:
        return insp
    if not isinstance(insp, Inspector):
        from ..errors import ConfigError

        raise ConfigError("inspector.image_threshold / pixel_threshold override a PaDiM inspector's calibration; "
                          f"{insp.kind} stages take their thresholds from their own calibration")
    c = insp.calibration
    insp.calibration = dataclasses.replace(
        c, image_threshold=image if image is not None else c.image_threshold,
        pixel_threshold=pixel if pixel is not None else c.pixel_threshold,
        details={**c.details, "overridden_by_config": {"image": c.image_threshold, "pixel": c.pixel_threshold}})
    return insp


def _announce(stage: ModelStage) -> ModelStage:
    """Warm the runtime up (the first inference allocates and, with TensorRT, builds engines), then log."""
    t0 = time.perf_counter()
    # a cascade's later stages may not see the probe (the gate passes it): warm each stage itself
    for st in getattr(stage, "stages", [stage]):
        spec = st.bundle.input
        probe = [np.full((spec.height, spec.width, 3), 128, np.uint8)]
        run_stage(st, probe, screen=False)  # a flat grey probe is no part: not screened
    d = stage.describe()
    log_event(log, logging.INFO, "model stage loaded", kind=stage.kind, inspector=stage.id, path=d.get("path"),
              backend=getattr(stage.backend, "name", "?"), device=getattr(stage.backend, "device", "?"),
              backend_reason=getattr(stage.backend, "reason", ""), image_threshold=round(stage.threshold, 5),
              warm_up_ms=round((time.perf_counter() - t0) * 1000, 1))
    return stage


InspectorSlot = StageSlot  # the name before stages other than PaDiM existed
