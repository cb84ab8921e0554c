"""The one model-stage face: images → tensors → backend → outputs → result → decision.

Every model that decides on an image implements :class:`ModelStage`: the PaDiM inspector
(:class:`edge.inspector.Inspector`), and the supervised classifier, segmenter and multitask
stages. ``score``, ``eval``, the line runtime and cascades call this face and nothing beneath it:

    x = stage.tensors(images)                       # preprocessing (numpy/OpenCV)
    y = stage.backend.infer({stage.backend.input_name: x})
    results = stage.results(y, images)

:func:`run_stage` does the three with timings, and the line pipeline runs them on three threads.
Every result is an :class:`Inspection`, whatever the model: the score is normalised so that 1.0 is
the stage's own threshold, and ``decision`` is OK or NG. The timing keys are the same on every
path (:data:`TIMING_KEYS`), so records from ``score`` and ``run`` carry the same ``timings_ms``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .backends import Backend
from .bundle import Bundle

# per-image milliseconds of each step; the line runtime adds "trigger_to_decision"
TIMING_KEYS = ("preprocess", "infer", "score")


@dataclass(frozen=True)
class Inspection:
    """What one stage (or a cascade) concluded about one image. Maps are the size of the input image.

    ``raw_score`` is in the model's own units (Mahalanobis distance, P(NG), defect area);
    ``score`` is ``raw_score`` over the stage's threshold, so 1.0 is the threshold on every stage.
    ``anomaly_map`` is float32 (higher = more anomalous) and ``mask`` uint8 0/255; a classifier
    without a mask output has neither. Supervised models add per-class detail: ``classes``
    (class name → probability or score), ``label`` (the predicted class), ``class_masks`` and
    ``areas`` (defect class → 0/255 mask and its area in input-image pixels). A cascade adds
    ``stages``: one entry per configured stage (name, ran, and for stages that ran decision,
    score and timings). ``map_threshold``: where a map's units differ from the score's (a
    segmenter's probabilities), the map value that counts as defective (overlays scale by it).
    """

    raw_score: float
    score: float
    decision: str
    anomaly_map: np.ndarray | None
    mask: np.ndarray | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    classes: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    class_masks: dict[str, np.ndarray] = field(default_factory=dict)
    areas: dict[str, int] = field(default_factory=dict)
    stages: tuple[dict[str, Any], ...] = ()
    map_threshold: float | None = None  # anomaly_map value that counts as defective, when not the threshold

    def __post_init__(self):
        if self.decision not in ("OK", "NG"):
            raise ValueError(f"an inspection decides OK or NG, not {self.decision!r}")
        for name, a in (("anomaly_map", self.anomaly_map), ("mask", self.mask)):
            if a is not None and a.ndim != 2:
                raise ValueError(f"{name} must be a 2-D map, not shape {a.shape}")
        if self.anomaly_map is not None and self.mask is not None and self.anomaly_map.shape != self.mask.shape:
            raise ValueError(f"mask {self.mask.shape} and anomaly map {self.anomaly_map.shape} differ in size")


def decide(score: float) -> str:
    """The one rule from a normalised score to a decision: at or above the threshold (1.0) is NG."""
    return "NG" if score >= 1.0 else "OK"


@runtime_checkable
class ModelStage(Protocol):
    """What ``score``, ``eval``, the line runtime and cascades need of a model."""

    kind: str  # "padim" | "classifier" | "segmenter" | "multitask"
    bundle: Bundle  # the model bundle its backend runs (an inspector's is its backbone)
    backend: Backend | None  # None when opened without a runtime (info, validation)
    warnings: list[str]

    @property
    def id(self) -> str:
        """Short hash that names this exact artifact in every record."""

    @property
    def threshold(self) -> float:
        """The image threshold in raw-score units (score = raw_score / threshold)."""

    def tensors(self, images: list[np.ndarray], screen: bool = True) -> np.ndarray:
        """BGR uint8 images → the backend's input batch (rows may be tiles of one image). A stage that
        screens its inputs (a PaDiM inspector's capture check) raises ImageError for a refused image;
        ``screen=False`` skips that for a probe the runtime makes itself (warm-up, shared-pass check)."""

    def results(self, outputs: dict[str, np.ndarray], images: list[np.ndarray]) -> list[Inspection]:
        """The backend's outputs for a batch → one result per image, maps at each image's (h, w).

        ``images`` are the batch's BGR images (a stage needs their sizes; a cascade runs its later
        stages on them)."""

    def describe(self) -> dict[str, Any]:
        """What this stage is, for `info`, logs and reports (kind, bundle, thresholds, ...)."""


def run_stage(stage: ModelStage, images: list[np.ndarray],
              outputs: dict[str, np.ndarray] | None = None, screen: bool = True) -> list[Inspection]:
    """Run one stage over a batch of BGR images, with per-image timings under :data:`TIMING_KEYS`.

    ``outputs``: backend outputs already computed for exactly these images (a cascade whose
    stages share one backbone passes them, so the backbone runs once). ``screen=False``: the
    images are the runtime's own probes (``ModelStage.tensors``).
    """
    if not images:
        return []
    if outputs is None:
        outputs, timings = infer_stage(stage, images, screen)
    else:
        timings = {"preprocess": 0.0, "infer": 0.0}
    return finish_stage(stage, outputs, images, timings)


def infer_stage(stage: ModelStage, images: list[np.ndarray],
                screen: bool = True) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The first half of :func:`run_stage`: preprocess + backend, with their per-image timings. `score`
    runs the halves on different threads, so one batch is scored while the next one is inferred."""
    per = 1000.0 / len(images)
    t0 = time.perf_counter()
    x = stage.tensors(images, screen)
    t1 = time.perf_counter()
    outputs = stage.backend.infer({stage.backend.input_name: x})
    t2 = time.perf_counter()
    return outputs, {"preprocess": round((t1 - t0) * per, 3), "infer": round((t2 - t1) * per, 3)}


def finish_stage(stage: ModelStage, outputs: dict[str, np.ndarray], images: list[np.ndarray],
                 timings: dict[str, float]) -> list[Inspection]:
    """The second half: outputs → one Inspection per image, timings complete."""
    t2 = time.perf_counter()
    res = stage.results(outputs, images)
    timings = {**timings, "score": round((time.perf_counter() - t2) * 1000.0 / len(images), 3)}
    return [dataclasses.replace(r, timings_ms={**timings, **r.timings_ms}) for r in res]


def held_out_good(stage: ModelStage, normalised: bool = True) -> np.ndarray | None:
    """The held-out good scores fit recorded for a PaDiM stage (each good image scored by statistics
    that never saw it: how the line's good parts will score), normalised as the stage's scores are
    (1.0 = its threshold) or raw; None for a stage without them (a supervised model)."""
    scores = getattr(getattr(stage, "calibration", None), "held_out_good_scores", None)
    return scores(normalised) if scores is not None else None


def stage_kind(path: str | Path) -> str:
    """What a directory holds, from its manifest: "padim" (an inspector) or a bundle kind."""
    from .bundle import read_manifest
    from .inspector_dir import is_inspector

    if is_inspector(path):
        return "padim"
    return str(read_manifest(path).get("kind", "backbone"))


def open_stage(path: str | Path, backend: str = "auto", device: str | None = None,
               precision: str | None = None, threads: int | None = None, factor_precision: str = "auto",
               open_runtime: bool = True, inference_precision: str = "auto") -> ModelStage:
    """Open whatever decides on images at ``path``: an inspector directory (PaDiM) or a supervised
    bundle (classifier, segmenter, multitask). A plain backbone bundle is refused with what to do."""
    from .errors import BundleError

    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path} does not exist",
                          hint="fit an inspector with `edge-inspect fit --good DIR --out DIR`, or give a "
                               "classifier/segmenter bundle from `edge-export`")
    kind = stage_kind(path)
    if kind == "padim":
        from .inspector import Inspector

        return Inspector.load(path, backend, device, precision, threads, open_runtime=open_runtime,
                              factor_precision=factor_precision, inference_precision=inference_precision)
    if kind == "backbone":
        raise BundleError(f"{path} is a backbone bundle: it has features, not decisions",
                          hint=f"fit an inspector on it first: edge-inspect fit --good DIR --backbone {path}")
    from .supervised import open_supervised  # classifier | segmenter | multitask

    return open_supervised(path, backend, device, precision, threads, open_runtime=open_runtime)
