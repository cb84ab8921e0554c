"""Inference backends. Each moves named tensors in and out, and nothing else.

    backend = open_backend(bundle, "onnxruntime", device="cpu")
    outputs = backend.infer({"image": batch})   # dict[str, np.ndarray]

Runtimes are imported lazily, so a device without OpenVINO never needs it installed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..bundle import Bundle
from ..errors import BackendError, BundleError

BACKENDS = ("onnxruntime", "openvino")


class Backend(Protocol):
    name: str
    variant: str  # which model file of the bundle runs, "format/precision" (set by open_backend)
    input_name: str
    output_names: list[str]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> str: ...


def open_backend(bundle: Bundle, backend: str = "onnxruntime", device: str | None = None,
                 precision: str | None = None, threads: int | None = None) -> Backend:
    """Open the bundle's model with a runtime.

    backend: "onnxruntime" (device: cpu | cuda | tensorrt) or "openvino" (device: CPU | GPU | NPU | AUTO).
    precision: fp32 | fp16 | int8 picks the model variant; default the most precise one available.
    """
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        mf = bundle.model("onnx", precision)
        be = OnnxRuntimeBackend(bundle.root / mf.path, device or "cpu", threads)
        be.variant = f"{mf.format}/{mf.precision}"
        return be
    if backend == "openvino":
        from .openvino_backend import OpenVinoBackend

        try:
            mf = bundle.model("openvino", precision)
        except BundleError:  # no IR of that precision: OpenVINO reads the ONNX variant directly
            mf = bundle.model("onnx", precision)
        declared = [t.name for t in bundle.taps] + [o.name for o in bundle.outputs]
        be = OpenVinoBackend(bundle.root / mf.path, device or "CPU", threads, exact=mf.precision == "fp32",
                             declared_outputs=declared)
        be.variant = f"{mf.format}/{mf.precision}"
        return be
    raise BackendError(f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
