"""A cascade of model stages that is itself a :class:`~edge.stage.ModelStage`.

``score``, ``eval``, ``run`` and the line pipeline run it like any stage: its ``tensors`` and
``backend`` are the first stage's, and :meth:`Cascade.results` decides the first stage, then runs
each later stage on the images that pass its gate. A later stage that runs on the same backbone
pass as the first (same bundle, runtime, device, model variant and inference precision, and the
same input tensors) takes the
first stage's outputs for its images (``run_stage(outputs=)``): the backbone runs once per image.

Decision: the last stage that ran (the gate passes clean parts, the later stage judges the rest),
or, with ``vote``, NG when any / all stages say NG. The result's ``score`` is that stage's
normalised score (1.0 = its threshold, so the cascade's own threshold is 1.0) and ``stages`` holds
one entry per configured stage: ``name``, ``ran``, and for those that ran ``decision``, ``score``,
``raw_score`` and ``timings_ms`` (work beyond the shared pass).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, EdgeError
from ..stage import Inspection, ModelStage, decide, open_stage, run_stage
from ..config.cascade_spec import CascadeSpec, StageSpec, load_spec


class Cascade:
    """Stages chained by gates (or voting); see the module docstring."""

    kind = "cascade"

    def __init__(self, spec: CascadeSpec, stages: list[ModelStage], source: str = ""):
        if len(stages) != len(spec.stage) or len(stages) < 2:
            raise ConfigError("a cascade needs one opened stage per [[stage]] table, two or more")
        self.spec = spec
        self.stages = stages
        self.source = source
        self.bundle = stages[0].bundle
        self.backend = stages[0].backend
        self.warnings = [f"stage {s.name!r}: {w}" for s, st in zip(spec.stage, stages) for w in st.warnings]
        self.shared = [True] + [shares_pass(stages[0], st) for st in stages[1:]]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.spec.stage]

    @property
    def id(self) -> str:
        blob = json.dumps({"vote": self.spec.vote, "stages": [
            [s.name, st.id, s.runs_when, s.gate_value] for s, st in zip(self.spec.stage, self.stages)]})
        return "cascade-" + hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def threshold(self) -> float:
        return 1.0  # every stage's score is normalised to its own threshold

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "path": self.source, "vote": self.spec.vote,
                "stages": [{"name": s.name, "when": s.runs_when, "gate": s.gate_value if i else None,
                            "shares_first_pass": self.shared[i], **st.describe()}
                           for i, (s, st) in enumerate(zip(self.spec.stage, self.stages))]}

    def tensors(self, images: list[np.ndarray], screen: bool = True) -> np.ndarray:
        return self.stages[0].tensors(images, screen)

    def results(self, outputs: dict[str, np.ndarray], images: list[np.ndarray]) -> list[Inspection]:
        n = len(images)
        if not n:
            return []
        per_stage: list[list[Inspection | None]] = []
        t0 = time.perf_counter()
        first = self.stages[0].results(outputs, images)
        ms = round((time.perf_counter() - t0) * 1000.0 / n, 3)
        per_stage.append([dataclasses.replace(r, timings_ms={"score": ms}) for r in first])
        for k in range(1, len(self.stages)):
            spec, prev = self.spec.stage[k], per_stage[k - 1]
            if spec.runs_when == "always":
                idx = list(range(n))
            else:
                idx = [i for i in range(n) if prev[i] is not None and prev[i].score >= spec.gate_value]
            row: list[Inspection | None] = [None] * n
            if idx:
                sub = [images[i] for i in idx]
                shared = _rows(outputs, idx, n) if self.shared[k] else None
                for i, r in zip(idx, run_stage(self.stages[k], sub, outputs=shared)):
                    row[i] = r
            per_stage.append(row)
        return [self._combine([row[i] for row in per_stage]) for i in range(n)]

    def _combine(self, results: list[Inspection | None]) -> Inspection:
        ran = [k for k, r in enumerate(results) if r is not None]
        if self.spec.vote is None:
            k = ran[-1]  # the last stage that ran decides
        else:
            scores = [results[j].score for j in ran]
            k = ran[int(np.argmax(scores) if self.spec.vote == "any" else np.argmin(scores))]
        chosen, stage = results[k], self.stages[k]
        amap = chosen.anomaly_map
        if amap is not None and stage.kind == "padim":
            amap = amap / np.float32(stage.threshold)  # PaDiM maps are in raw-score units: 1.0 = threshold
        entries = []
        for s, r in zip(self.spec.stage, results):
            e: dict[str, Any] = {"name": s.name, "ran": r is not None}
            if r is not None:
                e.update(decision=r.decision, score=round(float(r.score), 5), raw_score=round(float(r.raw_score), 5),
                         timings_ms=dict(r.timings_ms))
                if r.label is not None:
                    e["label"] = r.label
            entries.append(e)
        return Inspection(raw_score=float(chosen.score), score=float(chosen.score), decision=decide(chosen.score),
                          anomaly_map=amap, mask=chosen.mask, classes=dict(chosen.classes), label=chosen.label,
                          class_masks=dict(chosen.class_masks), areas=dict(chosen.areas), stages=tuple(entries))


def _rows(outputs: dict[str, np.ndarray], idx: list[int], n: int) -> dict[str, np.ndarray]:
    """The outputs of a batch of ``n`` images cut to images ``idx`` (each image has the same rows: tiles)."""
    if len(idx) == n:
        return outputs
    out = {}
    for name, a in outputs.items():
        if a.shape[0] % n:
            raise ConfigError(f"backbone output {name!r} has {a.shape[0]} rows for {n} images; cannot share it")
        per = a.shape[0] // n
        out[name] = a.reshape(n, per, *a.shape[1:])[idx].reshape(len(idx) * per, *a.shape[1:])
    return out


RUNS_ALIKE = ("name", "device", "variant", "compute")  # what must match for two backends to compute the same


def shares_pass(a: ModelStage, b: ModelStage) -> bool:
    """Whether ``b`` can take ``a``'s backend outputs: the same bundle on the same runtime, device, model
    variant and inference precision (a stage approved for bf16 must not be fed another stage's fp32
    features, nor the reverse), fed the same tensors (checked on a probe image, so tiling or input
    differences show)."""
    if a.backend is None or b.backend is None:
        return False
    if [getattr(a.backend, k, None) for k in RUNS_ALIKE] != [getattr(b.backend, k, None) for k in RUNS_ALIKE]:
        return False
    return same_backbone_input(a, b)


def same_backbone_input(a: ModelStage, b: ModelStage) -> bool:
    """The runtime-free half of :func:`shares_pass`: the same bundle fed the same tensors (an inspector
    that registers each image to its reference view feeds per-image tensors: never shared)."""
    if a.bundle.id != b.bundle.id:
        return False
    if getattr(a, "registration", None) is not None or getattr(b, "registration", None) is not None:
        return False
    spec = a.bundle.input
    probe = np.random.default_rng(0).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
    ta, tb = a.tensors([probe], screen=False), b.tensors([probe], screen=False)  # a probe, not a part
    return ta.shape == tb.shape and bool(np.array_equal(ta, tb))


def open_stages(spec: CascadeSpec, backend: str = "auto", device: str | None = None,
                precision: str | None = None, threads: int | None = None, factor_precision: str = "auto",
                open_runtime: bool = True) -> list[ModelStage]:
    """Open every stage of a (resolved) spec; an ``inspector =`` stage must be a PaDiM inspector."""
    out = []
    for i, s in enumerate(spec.stage):
        try:
            st = open_stage(s.path, backend, device, s.precision or precision, threads,
                            factor_precision=factor_precision, open_runtime=open_runtime)
        except EdgeError as e:  # say which stage, keep the error's kind (and exit code) and hint
            raise type(e)(f"cascade stage {s.name!r}: {e.message}", hint=e.hint) from None
        if s.inspector is not None and st.kind != "padim":
            raise ConfigError(f"stage[{i}].inspector: {s.path} is a {st.kind} bundle, not a PaDiM inspector",
                              hint=f"write model = \"{s.path}\" for a {st.kind}")
        out.append(st)
    return out


def open_cascade(path: str | Path | CascadeSpec, backend: str = "auto", device: str | None = None,
                 precision: str | None = None, threads: int | None = None, factor_precision: str = "auto",
                 open_runtime: bool = True, source: str = "") -> Cascade:
    """Open a cascade from its TOML file (or an already resolved spec) with all its stages."""
    if isinstance(path, CascadeSpec):
        spec = path
    else:
        spec, source = load_spec(path), str(path)
    stages = open_stages(spec, backend, device, precision, threads, factor_precision, open_runtime)
    return Cascade(spec, stages, source)


__all__ = ["Cascade", "StageSpec", "open_cascade", "open_stages", "same_backbone_input", "shares_pass"]
