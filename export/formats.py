"""The table of formats: one producer per (format, precision), and the edge runtime that checks it.

Every variant is made from the FP32 ONNX master, which is always in the bundle. A variant is an
:class:`edge.bundle.ModelFile`, the type the device reads back from the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edge.bundle import ModelFile

from .errors import ExportError
from .onnx_format import embed_onnx_metadata, export_onnx_fp16
from .openvino_format import export_openvino
from .quantize import quantize_onnx_int8, quantize_openvino_int8

FORMATS = ("onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")


def _onnx_fp16(root: Path, v: ModelFile, master: Path, calib: np.ndarray, desc: dict) -> None:
    export_onnx_fp16(master, root / v.path)
    embed_onnx_metadata(root / v.path, desc)


def _onnx_int8(root: Path, v: ModelFile, master: Path, calib: np.ndarray, desc: dict) -> None:
    quantize_onnx_int8(master, root / v.path, calib)
    embed_onnx_metadata(root / v.path, desc)


def _openvino(root: Path, v: ModelFile, master: Path, calib: np.ndarray, desc: dict) -> None:
    export_openvino(master, root / v.path, desc, v.precision)


def _openvino_int8(root: Path, v: ModelFile, master: Path, calib: np.ndarray, desc: dict) -> None:
    quantize_openvino_int8(master, root / v.path, calib, desc)


Producer = Callable[[Path, ModelFile, Path, np.ndarray, dict], None]
TABLE: dict[tuple[str, str], tuple[ModelFile, Producer | None]] = {
    ("onnx", "fp32"): (ModelFile("onnx", "fp32", "model.onnx"), None),  # the master, written first
    ("onnx", "fp16"): (ModelFile("onnx", "fp16", "model_fp16.onnx"), _onnx_fp16),
    ("onnx", "int8"): (ModelFile("onnx", "int8", "model_int8.onnx"), _onnx_int8),
    ("openvino", "fp32"): (ModelFile("openvino", "fp32", "model.xml", "model.bin"), _openvino),
    ("openvino", "fp16"): (ModelFile("openvino", "fp16", "model_fp16.xml", "model_fp16.bin"), _openvino),
    ("openvino", "int8"): (ModelFile("openvino", "int8", "model_int8.xml", "model_int8.bin"), _openvino_int8),
}


def plan_variants(formats: list[str], precisions: list[str]) -> list[ModelFile]:
    """All requested (format, precision) pairs, ONNX FP32 first and always included."""
    bad = [f for f in formats if f not in FORMATS] + [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ExportError(f"unknown format/precision: {', '.join(bad)}",
                          hint=f"formats: {', '.join(FORMATS)}; precisions: {', '.join(PRECISIONS)}")
    keys = [("onnx", "fp32")] + [(f, p) for f in formats for p in precisions]
    return [TABLE[k][0] for k in dict.fromkeys(keys)]


def produce(root: Path, v: ModelFile, master: Path, calib: np.ndarray, desc: dict) -> None:
    producer = TABLE[(v.format, v.precision)][1]
    if producer is not None:
        producer(root, v, master, calib, {**desc, "format": v.format, "precision": v.precision})


def open_runtime(root: Path, v: ModelFile, declared_outputs: list[str], threads: int | None = None):
    """The edge backend a device would use for this variant (so parity is measured where it runs)."""
    if v.format == "onnx":
        from edge.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(root / v.path, "cpu", threads)
    from edge.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(root / v.path, "CPU", threads, hint="f32" if v.precision == "fp32" else None,
                           declared_outputs=declared_outputs)
