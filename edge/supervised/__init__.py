"""Supervised models on the device: classifier, segmenter and multitask bundles as model stages.

    stage = open_supervised("bundles/cast-seg")      # or edge.stage.open_stage, which dispatches
    results = run_stage(stage, images)

``stage.py`` turns outputs into decisions, ``heads.py`` reads each output as its manifest says,
``calibration.py`` owns the thresholds block, ``calibrate.py`` sets it from labelled images and
``rle.py`` writes masks as run-length CSV.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BundleError
from .calibration import SupervisedCalibration, read_calibration
from .heads import defect_channels
from .stage import SupervisedStage

__all__ = ["SupervisedCalibration", "SupervisedStage", "open_supervised"]

SUPERVISED_KINDS = ("classifier", "segmenter", "multitask")


def open_supervised(path: str | Path, backend: str = "onnxruntime", device: str | None = None,
                    precision: str | None = None, threads: int | None = None,
                    open_runtime: bool = True) -> SupervisedStage:
    """Open (hash-verified) a classifier, segmenter or multitask bundle and, with ``open_runtime``,
    its model on ``backend``/``device``; ``precision`` picks the model variant (default the most precise)."""
    from ..backends import open_backend
    from ..bundle import load_bundle

    b = load_bundle(path)
    if b.kind not in SUPERVISED_KINDS:
        raise BundleError(f"{path} is a {b.kind} bundle, not a classifier, segmenter or multitask model",
                          hint="fit an inspector on a backbone with `edge-inspect fit --good DIR --backbone DIR`")
    mask = [o for o in b.outputs if o.role == "mask"]
    defects = [n for _, n in defect_channels(mask[0])] if mask else []
    cal = read_calibration(b, defects)
    stage = SupervisedStage(b, cal)  # checks the heads before a runtime is opened
    if open_runtime:
        stage.backend = open_backend(b, backend, device, precision, threads)
    return stage
