"""The table of formats: one producer per (format, precision), and the edge runtime that checks it.

Every variant is made from the FP32 ONNX master, which is always in the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ExportError
from .onnx_format import embed_onnx_metadata, export_onnx_fp16
from .openvino_format import export_openvino
from .quantize import quantize_onnx_int8, quantize_openvino_int8

FORMATS = ("onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Variant:
    format: str
    precision: str
    path: str
    weights: str | None = None

    @property
    def key(self) -> str:
        return f"{self.format}/{self.precision}"

    def manifest_entry(self) -> dict:
        d = {"format": self.format, "precision": self.precision, "path": self.path}
        if self.weights:
            d["weights"] = self.weights
        return d


def _onnx_fp16(root: Path, v: Variant, master: Path, calib: np.ndarray, desc: dict) -> None:
    export_onnx_fp16(master, root / v.path)
    embed_onnx_metadata(root / v.path, desc)


def _onnx_int8(root: Path, v: Variant, master: Path, calib: np.ndarray, desc: dict) -> None:
    quantize_onnx_int8(master, root / v.path, calib)
    embed_onnx_metadata(root / v.path, desc)


def _openvino(root: Path, v: Variant, master: Path, calib: np.ndarray, desc: dict) -> None:
    export_openvino(master, root / v.path, desc, v.precision)


def _openvino_int8(root: Path, v: Variant, master: Path, calib: np.ndarray, desc: dict) -> None:
    quantize_openvino_int8(master, root / v.path, calib, desc)


Producer = Callable[[Path, Variant, Path, np.ndarray, dict], None]
TABLE: dict[tuple[str, str], tuple[Variant, Producer | None]] = {
    ("onnx", "fp32"): (Variant("onnx", "fp32", "model.onnx"), None),  # the master, written first
    ("onnx", "fp16"): (Variant("onnx", "fp16", "model_fp16.onnx"), _onnx_fp16),
    ("onnx", "int8"): (Variant("onnx", "int8", "model_int8.onnx"), _onnx_int8),
    ("openvino", "fp32"): (Variant("openvino", "fp32", "model.xml", "model.bin"), _openvino),
    ("openvino", "fp16"): (Variant("openvino", "fp16", "model_fp16.xml", "model_fp16.bin"), _openvino),
    ("openvino", "int8"): (Variant("openvino", "int8", "model_int8.xml", "model_int8.bin"), _openvino_int8),
}


def plan_variants(formats: list[str], precisions: list[str]) -> list[Variant]:
    """All requested (format, precision) pairs, ONNX FP32 first and always included."""
    bad = [f for f in formats if f not in FORMATS] + [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ExportError(f"unknown format/precision: {', '.join(bad)}",
                          hint=f"formats: {', '.join(FORMATS)}; precisions: {', '.join(PRECISIONS)}")
    keys = [("onnx", "fp32")] + [(f, p) for f in formats for p in precisions]
    return [TABLE[k][0] for k in dict.fromkeys(keys)]


def produce(root: Path, v: Variant, master: Path, calib: np.ndarray, desc: dict) -> None:
    producer = TABLE[(v.format, v.precision)][1]
    if producer is not None:
        producer(root, v, master, calib, {**desc, "format": v.format, "precision": v.precision})


def open_runtime(root: Path, v: Variant, declared_outputs: list[str], threads: int | None = None):
    """The edge backend a device would use for this variant (so parity is measured where it runs)."""
    if v.format == "onnx":
        from edge.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(root / v.path, "cpu", threads)
    from edge.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(root / v.path, "CPU", threads, exact=v.precision == "fp32",
                           declared_outputs=declared_outputs)
